package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat;
// the kernel fixes it at 100 for user space on every architecture Quill
// runs on.
const clockTicks = 100

// procNames are the processes whose CPU time the report shows, in order:
// the children the harness started, and the benchmark itself.
var procNames = []string{"kube-apiserver", "etcd", "cert-manager-controller", "quill-controller", "benchmark"}

// procSet maps process names to PIDs. The harness does not hand out PIDs,
// so they are found by looking for this process's children in /proc; the
// machine is shared, and other people's kube-apiservers must not be
// measured, hence children only.
type procSet map[string]int

func findProcs() *procSet {
	self := os.Getpid()
	ps := procSet{"benchmark": self}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.ppid != self {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil {
			continue
		}
		name := filepath.Base(exe)
		for _, want := range procNames {
			if name == want {
				ps[want] = pid
			}
		}
	}
	return &ps
}

// machineKey is the CPU time of the whole machine in cpuTimes: busy time
// summed over all CPUs, from /proc/stat. The machine is shared, so what is
// not the benchmark's is other people's work, and noise.
const machineKey = "(machine)"

// cpuTimes is user+system CPU time by process name, and machineKey.
type cpuTimes map[string]time.Duration

func (c cpuTimes) minus(o cpuTimes) cpuTimes {
	out := cpuTimes{}
	for k, v := range c {
		if ov, ok := o[k]; ok {
			out[k] = v - ov
		}
	}
	return out
}

// total is the CPU time of the benchmark's processes.
func (c cpuTimes) total() time.Duration {
	var t time.Duration
	for k, v := range c {
		if k != machineKey {
			t += v
		}
	}
	return t
}

// others is the CPU time of every other process on the machine (and of
// the kernel's interrupt handling). Process times are sampled a moment
// apart from the machine's, so a quiet machine can come out a tick below
// zero; that reads as zero.
func (c cpuTimes) others() time.Duration { return max(0, c[machineKey]-c.total()) }

func (ps *procSet) read() cpuTimes {
	out := cpuTimes{}
	for name, pid := range *ps {
		if st, err := readStat(pid); err == nil {
			out[name] = st.cpu
		}
	}
	if busy, err := machineBusy(); err == nil {
		out[machineKey] = busy
	}
	return out
}

// machineBusy is the time all CPUs spent neither idle nor waiting for I/O
// since boot, from the first line of /proc/stat.
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 6 || fields[0] != "cpu" {
		return 0, os.ErrInvalid
	}
	var busy int64
	for i, f := range fields[1:] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, err
		}
		// user nice system idle iowait irq softirq steal (guest time is
		// already in user and nice)
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		busy += v
	}
	return time.Duration(busy) * time.Second / clockTicks, nil
}

type procStat struct {
	ppid int
	cpu  time.Duration
}

// readStat reads the parent PID and utime+stime of a process. The command
// name in field 2 may hold spaces and parentheses, so fields are counted
// from the last ')'.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	// fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
	if len(fields) < 13 {
		return procStat{}, os.ErrInvalid
	}
	ppid, _ := strconv.Atoi(fields[1])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return procStat{ppid: ppid, cpu: time.Duration(utime+stime) * time.Second / clockTicks}, nil
}
