package guest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Paths of the remote-start service inside a guest.
const (
	// RshName is the name of the launcher client: hpc-guest run under
	// this name (a symlink) is the client, as `hpc-guest rsh` is.
	RshName = "vhpc-rsh"
	// RshPath is the symlink to hpc-guest that hpc-guest creates at
	// startup of a networked job; OpenMPI and Hydra are pointed at it.
	RshPath = "/usr/local/bin/" + RshName
	// RunDir holds the guest's job-network files.
	RunDir = "/run/vhpc"
	// LauncherConfigPath is the client's configuration (port and secret),
	// readable by root and the job's user only.
	LauncherConfigPath = RunDir + "/launcher.json"
	// HostfilePath is the MPI hostfile (VHPC_HOSTFILE).
	HostfilePath = RunDir + "/hostfile"
	// MPIBinDir comes first in an MPI job's PATH: mpirun, mpiexec, mpicc,
	// ... of the job's MPI (Debian installs both flavours side by side as
	// mpirun.openmpi, mpirun.mpich, ..., with mpirun an alternative that
	// names only one of them). Not under RunDir: /run is mounted noexec.
	MPIBinDir = "/usr/local/lib/vhpc/mpi-bin"
)

// RshRetry is how long the client keeps trying to reach a launcher that
// does not answer yet (a peer still booting under TCG).
const RshRetry = 5 * time.Minute

// LauncherConfig is the content of LauncherConfigPath.
type LauncherConfig struct {
	Port   int    `json:"port"`
	Secret string `json:"secret"`
}

// WriteLauncherConfig writes c to path with mode 0400, owned by uid:gid
// (the job's user, who runs mpirun and hence the client).
func WriteLauncherConfig(path string, c LauncherConfig, uid, gid int) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode launcher config: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	if err := os.WriteFile(tmp, b, 0o400); err != nil {
		return fmt.Errorf("write launcher config: %w", err)
	}
	if err := os.Chown(tmp, uid, gid); err != nil {
		return fmt.Errorf("chown launcher config: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write launcher config: %w", err)
	}
	return nil
}

// ReadLauncherConfig reads the client's configuration.
func ReadLauncherConfig(path string) (LauncherConfig, error) {
	var c LauncherConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read launcher config (is this a guest of a multi-node job?): %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("decode %s: %w", path, err)
	}
	if c.Port < 1 || c.Port > 65535 {
		return c, fmt.Errorf("%s: port %d", path, c.Port)
	}
	return c, nil
}

// rshArgs is a parsed ssh-style command line.
type rshArgs struct {
	host    string
	command []string
	noStdin bool // -n
}

// ssh's options: those that take an argument, and flags.
const (
	sshOptsWithArg = "BbcDEeFIiJLlmOopQRSWw"
	sshFlags       = "46AaCfGgKkMNnqsTtVvXxYy"
)

// parseRshArgs parses `[ssh options] [user@]HOST COMMAND [ARGS...]` as
// ssh does, ignoring every option but -n (stdin from /dev/null); -l and
// user@ are ignored too (commands run as the job's user).
func parseRshArgs(args []string) (rshArgs, error) {
	var r rshArgs
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		for j := 1; j < len(a); j++ {
			c := a[j]
			switch {
			case strings.IndexByte(sshOptsWithArg, c) >= 0:
				if j+1 == len(a) { // the argument is the next word
					if i+1 >= len(args) {
						return r, fmt.Errorf("option -%c needs an argument", c)
					}
					i++
				}
				j = len(a) // the rest of this word is the argument
			case strings.IndexByte(sshFlags, c) >= 0:
				if c == 'n' {
					r.noStdin = true
				}
			default:
				return r, fmt.Errorf("unknown option -%c", c)
			}
		}
	}
	if i >= len(args) {
		return r, errors.New("no host")
	}
	r.host = args[i]
	if at := strings.LastIndexByte(r.host, '@'); at >= 0 {
		r.host = r.host[at+1:]
	}
	if r.host == "" {
		return r, errors.New("empty host")
	}
	r.command = args[i+1:]
	if len(r.command) == 0 {
		return r, errors.New("no command (interactive sessions are not supported)")
	}
	return r, nil
}

// Rsh is the launcher client, `hpc-guest rsh` or vhpc-rsh: args are its
// arguments (without the program name), ssh-style. It runs the command on
// HOST's launcher through the job's network, relays stdio and returns
// the exit code to end with: the remote command's, or 255 when it could
// not run there (as ssh). HOST is an address or a name in hostsFile (the
// job's /etc/hosts). cmd/hpc-guest's main calls it.
func Rsh(args []string, stdin io.Reader, stdout, stderr io.Writer, configPath, hostsFile string) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "%s: %v\n", RshName, err)
		return 255
	}
	a, err := parseRshArgs(args)
	if err != nil {
		return fail(fmt.Errorf("%w\nusage: %s [ssh options] HOST COMMAND [ARGS...]", err, RshName))
	}
	cfg, err := ReadLauncherConfig(configPath)
	if err != nil {
		return fail(err)
	}
	key, err := SecretKey(cfg.Secret)
	if err != nil {
		return fail(err)
	}
	dir, _ := os.Getwd()
	rc := RemoteCommand{Argv: a.command, Shell: true, Env: ForwardedEnv(os.Environ()), Dir: dir, Stdout: stdout, Stderr: stderr}
	if !a.noStdin {
		rc.Stdin = stdin
	}
	ap, err := resolveHost(a.host, cfg.Port, hostsFile)
	if err != nil {
		return fail(err)
	}
	lc := LauncherClient{Key: key, RetryFor: RshRetry}
	code, err := lc.Exec(ap.String(), rc)
	if err != nil {
		var re *RemoteError
		fmt.Fprintf(stderr, "%s: %v\n", RshName, err)
		if errors.As(err, &re) && re.Code != 0 {
			return re.Code
		}
		return 255
	}
	return code
}
