package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// memLimitShare is the part of the container's memory limit the Go heap is
// told it may use: the rest is for stacks, the runtime and memory the
// collector has not returned yet. Near the limit the collector works
// harder instead of letting the kernel kill the container; a ledger of 1M
// live entries peaked at 752 MiB without it and 512 MiB with it
// (docs/benchmarks.md).
const memLimitShare = 0.9

// cgroupMemoryFiles are where cgroup v2 and v1 say a container's memory
// limit.
var cgroupMemoryFiles = []string{
	"/sys/fs/cgroup/memory.max",
	"/sys/fs/cgroup/memory/memory.limit_in_bytes",
}

// setMemoryLimit sets the Go runtime's soft memory limit to memLimitShare
// of the container's memory limit, unless GOMEMLIMIT is set or there is no
// limit, and returns what it set (0: nothing).
func setMemoryLimit(files []string) (int64, error) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0, nil // the operator's choice
	}
	limit, err := containerMemoryLimit(files)
	if err != nil || limit == 0 {
		return 0, err
	}
	soft := int64(float64(limit) * memLimitShare)
	debug.SetMemoryLimit(soft)
	return soft, nil
}

// containerMemoryLimit reads the first of files that exists: a byte count,
// or "max" (no limit, 0). cgroup v1 says "no limit" with a huge number,
// which is treated as none too.
func containerMemoryLimit(files []string) (int64, error) {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("reading the container's memory limit: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0, nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("the container's memory limit in %s is %q, not a byte count", f, s)
		}
		if n >= 1<<62 {
			return 0, nil
		}
		return n, nil
	}
	return 0, nil
}
