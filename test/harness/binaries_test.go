package harness

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestBinaryRefusesStaleBuilds: Quill's own binaries must be at least as
// new as the Go sources they are built from (tests beside them do not
// count); pinned tools are not compared with Quill's sources.
func TestBinaryRefusesStaleBuilds(t *testing.T) {
	root := t.TempDir()
	t0 := time.Now().Add(-time.Hour)
	write := func(rel string, at time.Time) {
		t.Helper()
		path := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, at, at); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"go.mod", "go.sum", "api/v1alpha1/types.go", "pkg/ledger/segment.go", "cmd/quillctl/main.go", "controllers/setup.go"} {
		write(f, t0)
	}
	write("bin/quillctl", t0.Add(time.Minute))
	write("bin/etcd", t0.Add(-time.Hour))
	e := &Env{Root: root}

	if _, err := e.binary("quillctl"); err != nil {
		t.Fatalf("a binary newer than its sources: %v", err)
	}
	write("pkg/ledger/segment_test.go", t0.Add(time.Hour))
	if _, err := e.binary("quillctl"); err != nil {
		t.Fatalf("a newer test file made the binary stale: %v", err)
	}
	write("controllers/issuance/request.go", t0.Add(time.Hour))
	if _, err := e.binary("quillctl"); !errors.Is(err, errStaleBinary) {
		t.Fatalf("a source newer than the binary: %v, want %v", err, errStaleBinary)
	}
	if _, err := e.binary("etcd"); err != nil {
		t.Fatalf("a pinned tool was compared with Quill's sources: %v", err)
	}
	if _, err := e.binary("kubectl"); !errors.Is(err, errMissingBinary) {
		t.Fatalf("a missing binary: %v, want %v", err, errMissingBinary)
	}
}
