package harness

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// quillBinaries are the binaries in bin/ built from this module's own
// sources, and the make target that builds each. A test or benchmark that
// ran one older than the sources would measure code that no longer
// exists, so binary refuses it.
var quillBinaries = map[string]string{"quill-controller": "make build", "quillctl": "make build"}

// sourceDirs are the directories whose Go files go into Quill's binaries.
var sourceDirs = []string{"api", "cmd", "controllers", "pkg"}

type sourceFile struct {
	path    string
	modTime time.Time
}

// newestGoSource is the most recently modified non-test Go file under
// root's sourceDirs, or go.mod or go.sum if newer. It walks a few hundred
// files, each time a binary starts: cheaper than remembering when to look
// again.
func newestGoSource(root string) (sourceFile, error) {
	var newest sourceFile
	consider := func(path string, info fs.FileInfo) {
		if info.ModTime().After(newest.modTime) {
			newest = sourceFile{path: path, modTime: info.ModTime()}
		}
	}
	for _, name := range []string{"go.mod", "go.sum"} {
		info, err := os.Stat(filepath.Join(root, name))
		if err != nil {
			return newest, err
		}
		consider(name, info)
	}
	for _, dir := range sourceDirs {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			consider(rel, info)
			return nil
		})
		if err != nil {
			return newest, err
		}
	}
	return newest, nil
}

var errStaleBinary = errors.New("binary older than its sources")

// binary is the path of bin/name, after checking that it exists and, for
// Quill's own binaries, that it is not older than the sources it is built
// from.
func (e *Env) binary(name string) (string, error) {
	path := filepath.Join(e.Root, "bin", name)
	info, err := os.Stat(path)
	if err != nil {
		target, ours := quillBinaries[name]
		if !ours {
			target = "make tools"
		}
		return "", fmt.Errorf("%w: %s: run `%s` to build it", errMissingBinary, path, target)
	}
	target, ours := quillBinaries[name]
	if !ours {
		return path, nil // a pinned tool, rebuilt by make tools when its inputs change
	}
	newest, err := newestGoSource(e.Root)
	if err != nil {
		return "", fmt.Errorf("finding the newest source of %s: %w", name, err)
	}
	if info.ModTime().Before(newest.modTime) {
		return "", fmt.Errorf("%w: %s (%s) is older than %s (%s): run `%s`", errStaleBinary, path,
			info.ModTime().UTC().Format(time.RFC3339), newest.path, newest.modTime.UTC().Format(time.RFC3339), target)
	}
	return path, nil
}
