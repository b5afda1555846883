package main

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestContainerMemoryLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string // "" means no file
		want    int64
		wantErr bool
	}{
		{name: "cgroup-v2-limit", content: "536870912\n", want: 536870912},
		{name: "cgroup-v2-max", content: "max\n", want: 0},
		{name: "cgroup-v1-unlimited", content: "9223372036854771712\n", want: 0},
		{name: "no-cgroup-file", content: "", want: 0},
		{name: "garbage", content: "lots\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := filepath.Join(t.TempDir(), "memory.max")
			if tc.content != "" {
				if err := os.WriteFile(f, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := containerMemoryLimit([]string{f})
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("containerMemoryLimit = %d, %v; want %d (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestSetMemoryLimit: 90% of the container's limit becomes the Go runtime's
// soft limit. Not parallel: it sets the process's limit, and restores it.
func TestSetMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	t.Setenv("GOMEMLIMIT", "")
	f := filepath.Join(t.TempDir(), "memory.max")
	if err := os.WriteFile(f, []byte("536870912\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := setMemoryLimit([]string{f})
	if err != nil {
		t.Fatal(err)
	}
	limit := float64(536870912)
	if want := int64(limit * memLimitShare); set != want || debug.SetMemoryLimit(-1) != want {
		t.Errorf("set %d, runtime limit %d; want %d", set, debug.SetMemoryLimit(-1), want)
	}
}
