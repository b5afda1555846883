package ledger

// TEMPORARY SHIM (helper "readers", issue #15): the ledger archive's
// reader and writer belong to helper "compactor" (pkg/ledger/archive.go).
// This file stands in for them, with the names and signatures of the
// shared design (LEDGER-SPEC.md), only so that quillctl and its tests build
// and run before that branch is merged. THE LEAD DELETES THIS FILE AT MERGE.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// Archive is the shim's archive: <Dir>/<ArchiveDirName(k)>/<segment>.jsonl.gz.
type Archive struct{ Dir string }

// Append writes entries as the archive file of segment (shim: no fsync).
func (a *Archive) Append(k quillv1.IssuerID, segment string, entries []Entry) error {
	data, err := EncodeEntries(entries)
	if err != nil {
		return err
	}
	dir := filepath.Join(a.Dir, ArchiveDirName(k))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, segment+".jsonl.gz"), data, 0o640)
}

// ArchiveDirName is the shim's issuer directory name.
func ArchiveDirName(k quillv1.IssuerID) string {
	if k.IsCluster() {
		return "clusterissuer." + k.Name
	}
	return "issuer." + k.Namespace + "." + k.Name
}

func parseArchiveDirName(s string) (quillv1.IssuerID, bool) {
	if name, ok := strings.CutPrefix(s, "clusterissuer."); ok && name != "" {
		return quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: name}, true
	}
	if rest, ok := strings.CutPrefix(s, "issuer."); ok {
		ns, name, ok := strings.Cut(rest, ".")
		if ok && ns != "" && name != "" {
			return quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: ns, Name: name}, true
		}
	}
	return quillv1.IssuerID{}, false
}

// ReadArchive calls fn for every entry archived for k (k zero: every
// issuer), file by file in name order.
func ReadArchive(dir string, k quillv1.IssuerID, fn func(*Entry) error) error {
	var dirs []string
	if k != (quillv1.IssuerID{}) {
		dirs = []string{ArchiveDirName(k)}
	} else {
		des, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, de := range des {
			if _, ok := parseArchiveDirName(de.Name()); ok && de.IsDir() {
				dirs = append(dirs, de.Name())
			}
		}
	}
	for _, d := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, d, "*.jsonl.gz"))
		if err != nil {
			return err
		}
		sort.Strings(files)
		for _, name := range files {
			if err := readArchiveFile(name, fn); err != nil {
				return err
			}
		}
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func readArchiveFile(name string, fn func(*Entry) error) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := DecodeEntriesFrom(f, fn); err != nil {
		return fmt.Errorf("archive file %s: %w", name, err)
	}
	return nil
}
