package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
)

// findProcs maps the executable names of this process's children to their
// PIDs. The machine is shared: other people's kube-apiservers must not be
// measured, hence children only (the harness execs the control plane
// straight from its wrapper scripts).
func findProcs() map[string]int {
	self := os.Getpid()
	out := map[string]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || ppid(pid) != self {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil {
			out[filepath.Base(exe)] = pid
		}
	}
	return out
}

// waitChild waits for a child process named name to appear.
func waitChild(name string, timeout time.Duration) int {
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if pid := findProcs()[name]; pid != 0 {
			return pid
		}
	}
	return 0
}

func ppid(pid int) int {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: fields start
	// after its closing parenthesis.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// rss reads a memory figure (VmRSS, VmHWM) of pid in bytes; 0 when unknown.
func rss(pid int, field string) int64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// etcdDBSize is the size of etcd's database file, found through its
// --data-dir flag; 0 when unknown.
func etcdDBSize(pid int) int64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return 0
	}
	args := strings.Split(string(b), "\x00")
	for i, a := range args {
		dir, ok := strings.CutPrefix(a, "--data-dir=")
		if !ok && a == "--data-dir" && i+1 < len(args) {
			dir, ok = args[i+1], true
		}
		if ok {
			if st, err := os.Stat(filepath.Join(dir, "member", "snap", "db")); err == nil {
				return st.Size()
			}
		}
	}
	return 0
}

// apiHeap reads kube-apiserver's Go heap in use from its /metrics
// (go_memstats_heap_inuse_bytes), which unlike its RSS does not keep pages
// the runtime has not yet returned; 0 when unknown.
func apiHeap(cfg *rest.Config) int64 {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return 0
	}
	resp, err := hc.Get(strings.TrimSuffix(cfg.Host, "/") + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f)
		}
	}
	return 0
}
