package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of /proc CPU times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// groupCPU is the CPU time used so far by the processes of process group
// pgid (a responder and, for openssl -multi, its workers), counting
// children they have already reaped.
func groupCPU(pgid int) time.Duration {
	var ticks int64
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range dirs {
		f, ok := statFields(p)
		if !ok || len(f) < 15 {
			continue
		}
		if pg, _ := strconv.Atoi(f[2]); pg != pgid {
			continue
		}
		for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
			v, _ := strconv.ParseInt(f[i], 10, 64)
			ticks += v
		}
	}
	return time.Duration(ticks) * clockTick
}

// selfCPU is this process's CPU time (the load generator).
func selfCPU() time.Duration {
	f, ok := statFields("/proc/self/stat")
	if !ok || len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * clockTick
}

// statFields splits /proc/<pid>/stat after the command name, so field 0 is
// the state (the third field of proc(5)).
func statFields(path string) ([]string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, false
	}
	return strings.Fields(s[i+1:]), true
}

// machineBusy is the CPU time all processes of the machine spent, from
// /proc/stat: user, nice and system. Interrupt and softirq time (loopback
// TCP is mostly softirq) is left out: it belongs to no process, and it
// grows with the requests the benchmark itself sends.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy int64
	for _, v := range f[1:4] {
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * clockTick
}
