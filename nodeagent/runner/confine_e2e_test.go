package runner

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"vhpc/nodeagent/guestid"
	"vhpc/nodeagent/vm"
	"vhpc/scheduler/model"
)

// qemuProc is what /proc says of a running guest's QEMU.
type qemuProc struct {
	pid      int
	uids     []string // real, effective, saved, filesystem
	cgroup   string
	label    string // LSM label (/proc/PID/attr/current)
	openJobs []string
	jobDir   string
	id       guestid.ID
}

// TestE2EGuestConfinement (issue 16, part 5) boots two guests side by side
// and inspects their QEMU processes on the host: neither runs as root,
// each runs as its own uid (the uid of its domain's DAC label), each in a
// cgroup of its own under machine.slice, each with its own MAC label where
// the host has AppArmor or SELinux; every file of a job directory that a
// QEMU holds open is in its own job directory, and the other guest's uid
// is refused when it opens the first guest's scratch disk or share while
// the owner's uid is not.
func TestE2EGuestConfinement(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root (libvirt's system instance and guest uids)")
	}
	r, cfg := newE2ERunner(t, nil)
	if r.ids.pool == nil {
		t.Fatal("guests have no ids of their own on this host (see the runner's log)")
	}
	const job = 16
	var wg sync.WaitGroup
	running := make([]chan struct{}, 2)
	ended := make(chan struct{}, 2)
	for i := range 2 {
		ph := newPhases()
		running[i] = ph.chanFor(PhaseRunning)
		tk := task("16.0."+strconv.Itoa(i), job, []int{i}, "/bin/sh", "-c", "echo up; sleep 25")
		tk.Rank = i
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { ended <- struct{}{} }()
			res, err := r.Run(context.Background(), tk, ph.report)
			if err != nil || res.State != model.AllocCompleted {
				t.Errorf("guest %d: %+v %v", i, res, err)
			}
		}()
	}
	defer wg.Wait()
	for i, c := range running {
		select {
		case <-c:
		case <-ended:
			t.Fatalf("a guest ended before guest %d was running", i)
		case <-time.After(180 * time.Second):
			t.Fatalf("guest %d not running within 180s", i)
		}
	}
	procs := make([]qemuProc, 2)
	for i := range procs {
		procs[i] = inspectQEMU(t, r, vm.Name(r.ns, job, 0, i), filepath.Join(cfg.StateDir, "jobs", "16.0."+strconv.Itoa(i)))
	}
	lsm := activeLSM()
	for i, p := range procs {
		t.Logf("guest %d: pid %d uids %v label %q cgroup %s open job files %v", i, p.pid, p.uids, p.label, p.cgroup, p.openJobs)
		for _, u := range p.uids {
			if u != strconv.Itoa(p.id.UID) || u == "0" {
				t.Errorf("guest %d: QEMU uids %v, want all %d (its DAC label), never root", i, p.uids, p.id.UID)
			}
		}
		if !strings.Contains(p.cgroup, "machine") || !strings.Contains(p.cgroup, "vhpc") {
			t.Errorf("guest %d: cgroup %q is not a machine scope of its own", i, p.cgroup)
		}
		if lsm != "" && (p.label == "" || strings.HasPrefix(p.label, "unconfined")) {
			t.Errorf("guest %d: %s is active but QEMU's label is %q", i, lsm, p.label)
		}
		if len(p.openJobs) == 0 {
			t.Errorf("guest %d: QEMU holds no file of its job directory open (its scratch disk at least)", i)
		}
		for _, f := range p.openJobs {
			if !strings.HasPrefix(f, p.jobDir+string(filepath.Separator)) {
				t.Errorf("guest %d: QEMU holds %s open, outside its job directory %s", i, f, p.jobDir)
			}
		}
	}
	if procs[0].id.UID == procs[1].id.UID {
		t.Errorf("both guests run as uid %d", procs[0].id.UID)
	}
	if procs[0].cgroup == procs[1].cgroup {
		t.Errorf("both guests share cgroup %s", procs[0].cgroup)
	}
	if lsm != "" && procs[0].label == procs[1].label {
		t.Errorf("both guests carry the %s label %q", lsm, procs[0].label)
	}
	if lsm == "" {
		t.Logf("no AppArmor or SELinux on this host: the per-guest uid (DAC) is the confinement")
	}
	// The other guest's uid cannot open this guest's files; its own can.
	a, b := procs[0], procs[1]
	scratch := ""
	for _, f := range a.openJobs {
		if strings.HasSuffix(f, ".img") {
			scratch = f
		}
	}
	if scratch == "" {
		t.Fatalf("guest 0 holds no scratch disk open: %v", a.openJobs)
	}
	share := filepath.Join(a.jobDir, "share", "job.json")
	for _, f := range []string{scratch, share} {
		if err := openAs(f, b.id); err == nil {
			t.Errorf("uid %d (the other guest) opened %s", b.id.UID, f)
		}
		if err := openAs(f, a.id); err != nil {
			t.Errorf("uid %d (the owner) cannot open %s: %v", a.id.UID, f, err)
		}
	}
}

// inspectQEMU reads the QEMU process of domain name from /proc.
func inspectQEMU(t *testing.T, r *Runner, name, jobDir string) qemuProc {
	t.Helper()
	d, err := r.doms.XML(context.Background(), name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	id, ok := dacID(d)
	if !ok {
		t.Fatalf("%s: live definition has no DAC label: %+v", name, d.SecLabel)
	}
	raw, err := os.ReadFile(filepath.Join("/run/libvirt/qemu", name+".pid"))
	if err != nil {
		t.Fatalf("%s: pid file: %v", name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("%s: pid file %q", name, raw)
	}
	p := qemuProc{pid: pid, id: id, jobDir: jobDir}
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			p.uids = strings.Fields(rest)
		}
	}
	cg, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	p.cgroup = strings.TrimSpace(string(cg))
	if lb, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "attr", "current")); err == nil {
		p.label = strings.TrimRight(string(lb), "\x00\n")
	}
	fds, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	jobs := filepath.Dir(jobDir)
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, jobs+string(filepath.Separator)) {
			p.openJobs = append(p.openJobs, target)
		}
	}
	return p
}

// activeLSM names the MAC module libvirt's sVirt would use on this host,
// "" when there is none.
func activeLSM() string {
	if b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled"); err == nil && strings.TrimSpace(string(b)) == "Y" {
		if _, err := os.Stat("/sys/kernel/security/apparmor"); err == nil {
			return "AppArmor"
		}
	}
	if _, err := os.Stat("/sys/fs/selinux/enforce"); err == nil {
		return "SELinux"
	}
	return ""
}

// openAs opens path for reading in a process running as id (no
// supplementary groups), as the other guest's QEMU would.
func openAs(path string, id guestid.ID) error {
	cmd := exec.Command("head", "-c", "1", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(id.UID), Gid: uint32(id.GID), Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return &exec.Error{Name: strings.TrimSpace(string(out)), Err: err}
	}
	return nil
}
