package guest

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"vhpc/guestproto"
)

// ModuleList is the file in the initramfs that lists the kernel modules to
// load, one path per line, in dependency order (written by vmimages).
const ModuleList = "/lib/modules/load.list"

// Init is hpc-guest's PID 1, in the tiny image's initramfs (rdinit=) and
// on a Debian image's root disk (init=, after the image's initramfs
// mounted the root): it sets up the guest, runs the job from the
// job share, writes exit.json and powers the guest off. It returns only if
// power-off itself fails. log writes to the console (the host's console log).
func Init(log *slog.Logger) {
	err := initAndRun(log)
	if err != nil {
		log.Error("hpc-guest failed", "err", err)
	}
	unix.Sync()
	for _, m := range []string{guestproto.ScratchMount, guestproto.ShareMount} {
		_ = unix.Unmount(m, 0)
	}
	unix.Sync()
	log.Info("powering off")
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		log.Error("power off", "err", err)
	}
	select {} // PID 1 must never exit: that panics the kernel.
}

func initAndRun(log *slog.Logger) error {
	if err := mountBase(); err != nil {
		return err
	}
	if err := loadModules(log, ModuleList); err != nil {
		return err
	}
	if err := mountShare(); err != nil {
		return err
	}
	// From here on every failure is reported in exit.json too.
	fail := func(code int, err error) error {
		_ = guestproto.WriteExit(guestproto.ShareMount, guestproto.Exit{ExitCode: code, Error: err.Error(), BootSeconds: uptime()})
		return err
	}
	req, err := guestproto.ReadRequest(guestproto.ShareMount)
	if err != nil {
		return fail(126, err)
	}
	if err := req.Validate(); err != nil {
		return fail(126, err)
	}
	work := filepath.Join(guestproto.ShareMount, guestproto.WorkDir)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return fail(126, fmt.Errorf("create work dir: %w", err))
	}
	if err := chownTree(work, req.UID, req.GID); err != nil {
		return fail(126, err)
	}
	if req.Scratch {
		if err := mountScratch(log, req.UID, req.GID); err != nil {
			return fail(126, err)
		}
	}
	for _, d := range req.Datasets {
		dir := filepath.Join(guestproto.DatasetsMount, d.Name)
		if err := mount9p(d.Tag, dir, unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID); err != nil {
			return fail(126, fmt.Errorf("dataset %s: %w", d.Name, err))
		}
	}
	outFile, err := os.OpenFile(filepath.Join(guestproto.ShareMount, guestproto.OutputFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fail(126, fmt.Errorf("open output log: %w", err))
	}
	defer outFile.Close()
	out := &lockedWriter{w: io.MultiWriter(outFile, os.Stdout)}

	run := RunJob
	if req.Network != nil {
		nj, err := startNetworkJob(log, req, out, work, defaultNetPaths())
		if err != nil {
			return fail(126, err)
		}
		defer nj.Close()
		run = nj.job.Run
	}

	stop := make(chan struct{})
	go watchPowerButton(log, stop)

	boot := uptime()
	log.Info("starting job", "alloc_id", req.AllocID, "boot_seconds", boot)
	if err := guestproto.WriteStarted(guestproto.ShareMount, guestproto.Started{BootSeconds: boot}); err != nil {
		return fail(126, err)
	}
	sampling, stopSampling := context.WithCancel(context.Background())
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		if err := SampleGPUs(sampling, guestproto.ShareMount, 5*time.Second); err != nil {
			log.Warn("GPU sampling", "err", err)
		}
	}()
	e := run(context.Background(), req, JobOptions{WorkDir: work, ScriptDir: "/run", Out: out, Stop: stop})
	stopSampling()
	<-sampled
	e.BootSeconds = boot
	_ = outFile.Sync()
	log.Info("job ended", "exit_code", e.ExitCode, "run_seconds", e.RunSeconds, "stopped", e.Stopped)
	if err := guestproto.WriteExit(guestproto.ShareMount, e); err != nil {
		return fmt.Errorf("write exit status: %w", err)
	}
	return nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func mountBase() error {
	const nosuid, nodev = unix.MS_NOSUID, unix.MS_NOSUID | unix.MS_NODEV
	mounts := []struct {
		src, dst, fstype string
		flags            uintptr
		data             string
	}{
		{"proc", "/proc", "proc", nosuid, ""},
		{"sysfs", "/sys", "sysfs", nosuid, ""},
		{"devtmpfs", "/dev", "devtmpfs", nosuid, "mode=0755"},
		// POSIX shared memory (shm_open: MPI's and UCX's intra-node
		// transports, Python's multiprocessing) and ptys, as on any Linux.
		{"tmpfs", "/dev/shm", "tmpfs", nodev, "mode=1777"},
		{"devpts", "/dev/pts", "devpts", nosuid | unix.MS_NOEXEC, "mode=0620,ptmxmode=0666"},
		{"tmpfs", "/run", "tmpfs", nodev, "mode=0755"},
		{"tmpfs", "/tmp", "tmpfs", nodev, "mode=1777"},
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			return fmt.Errorf("mkdir %s: %w", m.dst, err)
		}
		if isMountPoint(m.dst) {
			// On a Debian image the initramfs moved /proc, /sys, /dev
			// and /run into the root before it started us.
			continue
		}
		if err := unix.Mount(m.src, m.dst, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.dst, err)
		}
	}
	return nil
}

// isMountPoint reports whether dir is on another file system than its
// parent: then something is already mounted there.
func isMountPoint(dir string) bool {
	var d, parent unix.Stat_t
	if unix.Stat(dir, &d) != nil || unix.Stat(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return d.Dev != parent.Dev
}

// loadModules loads every module listed in list, in order, with
// finit_module. Modules already present (built in or loaded) are fine.
func loadModules(log *slog.Logger, list string) error {
	f, err := os.Open(list)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // a kernel with everything built in
		}
		return fmt.Errorf("open module list: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		if err := loadModule(p); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read module list: %w", err)
	}
	log.Debug("modules loaded")
	return nil
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open module: %w", err)
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load module %s: %w", filepath.Base(path), err)
	}
	return nil
}

func mountShare() error {
	if err := mount9p(guestproto.ShareTag, guestproto.ShareMount, 0); err != nil {
		return fmt.Errorf("job share: %w", err)
	}
	return nil
}

// mount9p mounts the 9p share tag at dir (created) with flags.
func mount9p(tag, dir string, flags uintptr) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mkdir %s: %w", dir, err)
	}
	// The virtio devices are probed when their driver loads; a short
	// bounded retry covers asynchronous probing.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := unix.Mount(tag, dir, "9p", flags, "trans=virtio,version=9p2000.L,msize=262144")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mount 9p tag %q on %s: %w", tag, dir, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mountScratch finds the disk whose virtio serial is ScratchSerial and
// mounts it at ScratchMount. The host formats it as ext4; if it carries no
// filesystem, it is formatted here with busybox mke2fs (ext2, mounted by
// the ext4 driver).
func mountScratch(log *slog.Logger, uid, gid int) error {
	dev, err := findDiskBySerial(guestproto.ScratchSerial, 5*time.Second)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(guestproto.ScratchMount, 0o755); err != nil {
		return fmt.Errorf("mkdir %s: %w", guestproto.ScratchMount, err)
	}
	if err := unix.Mount(dev, guestproto.ScratchMount, "ext4", unix.MS_NOATIME, ""); err != nil {
		log.Info("scratch has no usable filesystem, formatting", "dev", dev, "err", err)
		out, ferr := exec.Command("/bin/mke2fs", "-q", "-F", dev).CombinedOutput()
		if ferr != nil {
			return fmt.Errorf("format scratch %s: %w: %s", dev, ferr, out)
		}
		if err := unix.Mount(dev, guestproto.ScratchMount, "ext4", unix.MS_NOATIME, ""); err != nil {
			return fmt.Errorf("mount scratch %s: %w", dev, err)
		}
	}
	if err := os.Chown(guestproto.ScratchMount, uid, gid); err != nil {
		return fmt.Errorf("chown scratch: %w", err)
	}
	return nil
}

func findDiskBySerial(serial string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		ents, _ := os.ReadDir("/sys/block")
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join("/sys/block", e.Name(), "serial"))
			if err == nil && strings.TrimSpace(string(b)) == serial {
				return "/dev/" + e.Name(), nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no disk with serial %q in /sys/block", serial)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func chownTree(root string, uid, gid int) error {
	return filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", p, err)
		}
		return nil
	})
}

func uptime() float64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// watchPowerButton closes stop when any input device reports KEY_POWER
// (the ACPI power button the host presses for a graceful shutdown).
func watchPowerButton(log *slog.Logger, stop chan<- struct{}) {
	const evKey, keyPower = 1, 116
	var once sync.Once
	ents, err := filepath.Glob("/dev/input/event*")
	if err != nil || len(ents) == 0 {
		log.Debug("no input devices; ACPI shutdown will not be graceful")
		return
	}
	for _, p := range ents {
		go func(p string) {
			f, err := os.Open(p)
			if err != nil {
				return
			}
			defer f.Close()
			// struct input_event on 64-bit: timeval (16 bytes), type u16, code u16, value s32.
			buf := make([]byte, 24)
			for {
				if _, err := io.ReadFull(f, buf); err != nil {
					return
				}
				typ := binary.LittleEndian.Uint16(buf[16:])
				code := binary.LittleEndian.Uint16(buf[18:])
				val := int32(binary.LittleEndian.Uint32(buf[20:]))
				if typ == evKey && code == keyPower && val == 1 {
					log.Info("power button pressed: stopping the job")
					once.Do(func() { close(stop) })
					return
				}
			}
		}(p)
	}
}
