package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// Archive is the ledger archive: entries that retention removed from the
// live ledger, on a volume outside etcd, one file per archived segment at
// <Dir>/<ArchiveDirName(issuer)>/<segment>.jsonl.gz in the segments'
// gzip+jsonl/v1 format. It lives outside etcd because it only grows: a
// 5,000-pod estate on 1-hour certificates archives 120k entries a day.
// Files are written whole (temporary name, fsync, rename, directory fsync)
// and never changed except by rewriting the same segment, so a reader sees
// each file complete or not at all. Only the leader writes.
type Archive struct {
	// Dir is the archive's root directory.
	Dir string
}

// archiveExt ends the name of every archive file.
const archiveExt = ".jsonl.gz"

// maxFileName is the longest file name common file systems accept.
const maxFileName = 255

// ArchiveDirName names issuer k's directory in the archive:
// "QuillIssuer_<namespace>_<name>" or "QuillClusterIssuer_<name>"
// (Kubernetes names never hold "_"), with a digest of the name instead
// when that is too long for a file name.
func ArchiveDirName(k quillv1.IssuerID) string {
	name := k.Name
	build := func() string {
		if k.Namespace == "" {
			return k.Kind + "_" + name
		}
		return k.Kind + "_" + k.Namespace + "_" + name
	}
	if d := build(); len(d) <= maxFileName {
		return d
	}
	sum := sha256.Sum256([]byte(k.Name))
	name = "sha256-" + hex.EncodeToString(sum[:16])
	return build()
}

// IssuerOfArchiveDir is the inverse of ArchiveDirName, for readers that
// walk the whole archive and want each file's issuer. It reports false for
// a name that is not an issuer's directory, and for the digest form of an
// over-long issuer name, which cannot be reversed.
func IssuerOfArchiveDir(dirName string) (quillv1.IssuerID, bool) {
	parts := strings.Split(dirName, "_")
	var k quillv1.IssuerID
	switch {
	case len(parts) == 2 && parts[0] == quillv1.ClusterIssuerKind:
		k = quillv1.IssuerID{Kind: parts[0], Name: parts[1]}
	case len(parts) == 3 && parts[0] == quillv1.IssuerKind && parts[1] != "":
		k = quillv1.IssuerID{Kind: parts[0], Namespace: parts[1], Name: parts[2]}
	default:
		return quillv1.IssuerID{}, false
	}
	if k.Name == "" || strings.HasPrefix(k.Name, "sha256-") {
		return quillv1.IssuerID{}, false
	}
	return k, true
}

var errBadSegmentName = errors.New("not a ledger segment name")

// Append writes entries as the archive file of issuer k's segment. Writing
// the same segment again replaces its file whole, so a retention step
// repeated after a crash is harmless. It returns only once the file and
// its directory entry are on disk.
func (a *Archive) Append(k quillv1.IssuerID, segment string, entries []Entry) error {
	if segment == "" || strings.HasPrefix(segment, ".") || strings.ContainsAny(segment, `/\`) {
		return fmt.Errorf("%w: %q", errBadSegmentName, segment)
	}
	data, err := EncodeEntries(entries)
	if err != nil {
		return err
	}
	dir := filepath.Join(a.Dir, ArchiveDirName(k))
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("ledger archive: %w", err)
		}
		// The new directory's own entry must survive a crash too.
		if err := syncDir(a.Dir); err != nil {
			return err
		}
	}
	tmp, err := os.CreateTemp(dir, "."+segment+".*.tmp")
	if err != nil {
		return fmt.Errorf("ledger archive: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("ledger archive: writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("ledger archive: syncing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("ledger archive: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, segment+archiveExt)); err != nil {
		return fmt.Errorf("ledger archive: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("ledger archive: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("ledger archive: syncing directory %s: %w", dir, err)
	}
	return nil
}

// ReadArchive calls fn for every line of issuer k's archive files under
// dir, file by file in name order (oldest segment first); the zero k reads
// every issuer's. Lines are as stored: the same serial may appear more
// than once (an issued entry and a later revocation line), so readers
// merge by serial with EntryRevocation.Wins. A missing archive reads as
// empty. An error from fn ends the walk and is returned as is; a file that
// does not decode is skipped and reported, wrapping ErrCorruptSegment,
// after the others are read.
func ReadArchive(dir string, k quillv1.IssuerID, fn func(*Entry) error) error {
	var dirs []string
	if k != (quillv1.IssuerID{}) {
		dirs = []string{filepath.Join(dir, ArchiveDirName(k))}
	} else {
		des, err := os.ReadDir(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("ledger archive: %w", err)
		}
		for _, de := range des {
			if de.IsDir() && !strings.HasPrefix(de.Name(), ".") {
				dirs = append(dirs, filepath.Join(dir, de.Name()))
			}
		}
	}
	var corrupt []error
	for _, d := range dirs {
		des, err := os.ReadDir(d)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return fmt.Errorf("ledger archive: %w", err)
		}
		names := make([]string, 0, len(des))
		for _, de := range des {
			if n := de.Name(); de.Type().IsRegular() && !strings.HasPrefix(n, ".") && strings.HasSuffix(n, archiveExt) {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		for _, n := range names {
			err := readArchiveFile(filepath.Join(d, n), fn)
			if errors.Is(err, ErrCorruptSegment) {
				corrupt = append(corrupt, err)
				continue
			}
			if err != nil {
				return err
			}
		}
	}
	return errors.Join(corrupt...)
}

// fnError marks an error returned by ReadArchive's fn, so that it is not
// taken for a decoding error.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

func readArchiveFile(path string, fn func(*Entry) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("ledger archive: %w", err)
	}
	defer f.Close()
	err = DecodeEntriesFrom(f, func(e *Entry) error {
		if err := fn(e); err != nil {
			return fnError{err}
		}
		return nil
	})
	var fe fnError
	if errors.As(err, &fe) {
		return fe.err
	}
	if err != nil {
		return fmt.Errorf("ledger archive file %s: %w", path, err)
	}
	return nil
}
