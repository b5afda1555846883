package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// benchTLS is the benchmark's binary, built once by TestMain: the
// benchmark re-runs its own executable as the server, which a test binary
// cannot stand in for.
var benchTLS string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "bench-tls-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	benchTLS = filepath.Join(dir, "bench-tls")
	build := exec.Command("go", "build", "-o", benchTLS, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the benchmark:", err)
		return 1
	}
	return m.Run()
}

// TestBenchTLS runs the benchmark briefly and checks the table: every
// scenario and kind is there, the hybrid key exchange costs exactly
// ML-KEM-768's key share and ciphertext in bytes (give or take the few
// bytes by which two ECDSA signatures differ), and the ML-DSA chain makes
// the server's flight larger than the ECDSA one.
func TestBenchTLS(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(benchTLS, "-handshakes", "20", "-requests", "20")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench-tls: %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	row := regexp.MustCompile(`(?m)^\s*(classical|hybrid|post-quantum)\s+(X25519|X25519MLKEM768)\s+(ECDSA P-256|ML-DSA-65)\s+(full handshake|resumed handshake|request, reused conn)\s+([\d.]+) ms\s+([\d.]+) ms\s+(\d+)\s+(\d+)\s+(\d+)\s*$`)
	rows := row.FindAllStringSubmatch(out, -1)
	if len(rows) != 9 {
		t.Fatalf("want 9 rows (3 scenarios × 3 kinds), got %d:\n%s", len(rows), out)
	}
	bytesOf := map[string]int{}
	received := map[string]int{}
	for _, m := range rows {
		sent, _ := strconv.Atoi(m[7])
		recv, _ := strconv.Atoi(m[8])
		bytesOf[m[1]+"/"+m[4]] = sent + recv
		received[m[1]+"/"+m[4]] = recv
		if cpu, _ := strconv.ParseFloat(m[5], 64); cpu <= 0 {
			t.Errorf("%s %s: client CPU %s", m[1], m[4], m[5])
		}
	}
	if d := bytesOf["hybrid/full handshake"] - bytesOf["classical/full handshake"]; d < mlkem768Bytes-16 || d > mlkem768Bytes+16 {
		t.Errorf("hybrid adds %d bytes per full handshake, want about %d", d, mlkem768Bytes)
	}
	if received["post-quantum/full handshake"] < received["hybrid/full handshake"]+3*3000 {
		t.Errorf("ML-DSA-65 chain flight %d bytes, ECDSA %d: want three ML-DSA-65 signatures (3,309 bytes each) more",
			received["post-quantum/full handshake"], received["hybrid/full handshake"])
	}
	for _, want := range []string{"hybrid (the seed)", "+0.250 ms", "+0.230 ms", "+2356", "+2272"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestBadFlags checks that a run the benchmark cannot do stops before it
// starts, with status 2 and one line saying why.
func TestBadFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
	}{
		{name: "no-handshakes", args: []string{"-handshakes", "0"}},
		{name: "no-requests", args: []string{"-requests", "0"}},
		{name: "stray-argument", args: []string{"tls"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(benchTLS, tt.args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 2 {
				t.Fatalf("exit %v, want status 2", err)
			}
			if stdout.Len() != 0 || !strings.Contains(stderr.String(), "bad flag") || strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("stdout %q, stderr %q; want nothing and one line saying bad flag", stdout.String(), stderr.String())
			}
		})
	}
}
