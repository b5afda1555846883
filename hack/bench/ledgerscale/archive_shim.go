package main

import (
	"os"
	"path/filepath"
	"strings"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/hack/bench/ledgerfill"
	"github.com/quill-pki/quill/pkg/ledger"
)

// shimArchive stands in for pkg/ledger's Archive until helper "compactor"'s
// branch lands: the same layout (<dir>/<issuer dir>/<segment>.jsonl.gz, the
// segment's entries gzip JSON lines, written to a temporary name and renamed)
// without the fsyncs. TEMPORARY: replaced by &ledger.Archive{Dir: dir}.
type shimArchive struct{ dir string }

func newArchive(dir string) ledgerfill.Appender { return &shimArchive{dir: dir} }

func (a *shimArchive) Append(k quillv1.IssuerID, segment string, entries []ledger.Entry) error {
	data, err := ledger.EncodeEntries(entries)
	if err != nil {
		return err
	}
	dir := filepath.Join(a.dir, strings.ToLower(k.Kind+"."+k.Name))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+segment+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, segment+".jsonl.gz"))
}
