package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// report writes the markdown: settings and machine, one row per run, and
// the PKCS#11/software ratios of each cell.
func report(w io.Writer, o options, loadStart, loadEnd string, results []result) {
	var goroutines, algs []string
	for _, g := range o.goroutines {
		goroutines = append(goroutines, fmt.Sprint(g))
	}
	for _, a := range o.algorithms {
		algs = append(algs, a.flag)
	}
	tokenFlag := ""
	if o.tokenObject {
		tokenFlag = " -token-object"
	}
	fmt.Fprintf(w, "Command: `go run ./hack/bench/signing -goroutines %s -algorithms %s -duration %s -warmup %s -sessions %d%s`\n\n",
		strings.Join(goroutines, ","), strings.Join(algs, ","), o.duration, o.warmup, o.sessions, tokenFlag)
	fmt.Fprintf(w, "- Machine: %d CPUs (GOMAXPROCS %d), %s, %s memory\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), cpuModel(), memTotal())
	fmt.Fprintf(w, "- %s, %s, %s\n", runtime.Version(), toolVersion("SoftHSM", "softhsm2-util", "--version"), toolVersion("", "openssl", "version"))
	fmt.Fprintf(w, "- PKCS#11: %s, pkcs11.Config.MaxSessions %d per key; %q signs with a session copy of the token key (the default)", o.module, o.sessions, backendPKCS11)
	if o.tokenObject {
		fmt.Fprintf(w, ", %q with the token object (DisableSessionCopy)", backendToken)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "- Load average (1, 5, 15 min): %s at start, %s at end\n\n", loadStart, loadEnd)

	fmt.Fprintln(w, "| backend | algorithm | goroutines | signatures | sig/s | p50 | p99 | max | CPU/sig | cores busy |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range results {
		fmt.Fprintf(w, "| %s | %s | %d | %d | %.0f | %s | %s | %s | %s | %.2f |\n",
			r.backend, r.algorithm, r.goroutines, r.signatures, r.rate(), formatLatency(r.p50),
			formatLatency(r.p99), formatLatency(r.max), formatLatency(r.cpuPerSignature()), r.coresBusy())
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "| algorithm | goroutines | software sig/s | PKCS#11 sig/s | PKCS#11/software sig/s | PKCS#11/software p50 | PKCS#11/software CPU/sig |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|")
	for _, sw := range results {
		if sw.backend != backendSoftware {
			continue
		}
		if hsm, ok := find(results, backendPKCS11, sw); ok {
			fmt.Fprintf(w, "| %s | %d | %.0f | %.0f | %.2f× | %.1f× | %.1f× |\n",
				sw.algorithm, sw.goroutines, sw.rate(), hsm.rate(), hsm.rate()/sw.rate(),
				hsm.p50.Seconds()/sw.p50.Seconds(), hsm.cpuPerSignature().Seconds()/sw.cpuPerSignature().Seconds())
		}
	}
	if !o.tokenObject {
		return
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "| algorithm | goroutines | software sig/s | token object sig/s | token object/software | session copy sig/s | session copy/software | copy/token object sig/s | copy/token object CPU/sig |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, sw := range results {
		if sw.backend != backendSoftware {
			continue
		}
		hsm, ok1 := find(results, backendPKCS11, sw)
		tok, ok2 := find(results, backendToken, sw)
		if !ok1 || !ok2 {
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %.0f | %.2f× | %.0f | %.2f× | %.2f× | %.2f× |\n",
			sw.algorithm, sw.goroutines, sw.rate(), tok.rate(), tok.rate()/sw.rate(), hsm.rate(), hsm.rate()/sw.rate(),
			hsm.rate()/tok.rate(), hsm.cpuPerSignature().Seconds()/tok.cpuPerSignature().Seconds())
	}
}

// find returns the run of backend in the same cell as like.
func find(results []result, backend string, like result) (result, bool) {
	for _, r := range results {
		if r.backend == backend && r.cell == like.cell {
			return r, true
		}
	}
	return result{}, false
}

func formatLatency(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// loadAverage is the first three fields of /proc/loadavg, or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

func cpuModel() string {
	if v := procField("/proc/cpuinfo", "model name"); v != "" {
		return v
	}
	return "unknown CPU"
}

func memTotal() string {
	var kib int
	if _, err := fmt.Sscanf(procField("/proc/meminfo", "MemTotal"), "%d kB", &kib); err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%.1f GiB", float64(kib)/(1<<20))
}

// procField returns the value of the first "name : value" line of file.
func procField(file, name string) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// toolVersion runs a tool's version command and returns its first line
// after prefix, or "<tool> version unknown".
func toolVersion(prefix, tool string, args ...string) string {
	out, err := exec.Command(tool, args...).Output()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if err != nil || line == "" {
		return tool + " version unknown"
	}
	return strings.TrimSpace(prefix + " " + line)
}
