package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestBenchTLS runs `quillctl bench tls` briefly and checks the table: every
// scenario and kind is there, the hybrid key exchange costs exactly
// ML-KEM-768's key share and ciphertext in bytes (give or take the few
// bytes by which two ECDSA signatures differ), and the ML-DSA chain makes
// the server's flight larger than the ECDSA one.
func TestBenchTLS(t *testing.T) {
	t.Parallel()
	r := mustRun(t, t.TempDir(), nil, "bench", "tls", "--handshakes", "20", "--requests", "20")
	row := regexp.MustCompile(`(?m)^\s*(classical|hybrid|post-quantum)\s+(X25519|X25519MLKEM768)\s+(ECDSA P-256|ML-DSA-65)\s+(full handshake|resumed handshake|request, reused conn)\s+([\d.]+) ms\s+([\d.]+) ms\s+(\d+)\s+(\d+)\s+(\d+)\s*$`)
	rows := row.FindAllStringSubmatch(r.stdout, -1)
	if len(rows) != 9 {
		t.Fatalf("want 9 rows (3 scenarios × 3 kinds), got %d:\n%s", len(rows), r.stdout)
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
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
}
