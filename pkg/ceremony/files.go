package ceremony

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrOutputExists is returned when an output file exists and the operation
// was not told to replace it.
var ErrOutputExists = errors.New("output file already exists")

var errOutput = errors.New("cannot write output")

// Output is one file an operation writes.
type Output struct {
	// Path is where the file goes; its folder must exist.
	Path string
	// Data is the whole content.
	Data []byte
	// Mode is the file's permission bits: 0o600 for private keys, 0o644
	// for certificates and requests. It is set exactly, whatever the umask.
	Mode fs.FileMode
}

// WriteFiles writes outs all or nothing. Each file is written to a
// temporary file in its destination folder, flushed to disk, and only then
// moved into place, so a reader never sees a partial file and a failure
// leaves no output behind.
//
// Without replace, an existing output is an error wrapping ErrOutputExists
// and nothing is written; the check is repeated atomically when each file
// is moved into place (a hard link, which fails if the name is taken), so
// a file created meanwhile is not overwritten either. With replace,
// existing files are replaced; if moving a later file fails, the earlier
// ones stay replaced.
func WriteFiles(replace bool, outs ...Output) (err error) {
	if err := preflight(replace, outs, nil); err != nil {
		return err
	}
	temps := make([]string, len(outs))
	defer func() {
		for _, t := range temps {
			if t != "" {
				_ = os.Remove(t) // already moved into place, or abandoned
			}
		}
	}()
	for i, o := range outs {
		t, err := writeTemp(o)
		if err != nil {
			return err
		}
		temps[i] = t
	}

	var placed []string // new files, removed again if a later one fails
	defer func() {
		if err != nil {
			for _, p := range placed {
				_ = os.Remove(p)
			}
		}
	}()
	for i, o := range outs {
		_, statErr := os.Lstat(o.Path)
		existed := statErr == nil
		if err := place(temps[i], o.Path, replace); err != nil {
			return err
		}
		if !existed {
			placed = append(placed, o.Path)
		}
	}
	for dir := range folders(outs) {
		syncDir(dir)
	}
	return nil
}

// preflight checks outs before anything is written: names given and
// distinct, no folder in the way, no existing file unless replace, and no
// output that is one of the operation's inputs (replacing its own input
// would destroy a key or a certificate the user still needs).
func preflight(replace bool, outs []Output, inputs []string) error {
	seen := map[string]bool{}
	for _, o := range outs {
		if o.Path == "" {
			return fmt.Errorf("%w: no file name given", errOutput)
		}
		abs, err := filepath.Abs(o.Path)
		if err != nil {
			return fmt.Errorf("%w %s: %w", errOutput, o.Path, err)
		}
		if seen[abs] {
			return fmt.Errorf("%w: %s is named for two outputs", errOutput, o.Path)
		}
		seen[abs] = true
		for _, in := range inputs {
			if sameFile(o.Path, in) {
				return fmt.Errorf("%w: %s is also an input", errOutput, o.Path)
			}
		}
		fi, err := os.Lstat(o.Path)
		switch {
		case err == nil && fi.IsDir():
			return fmt.Errorf("%w: %s is a folder", errOutput, o.Path)
		case err == nil && !replace:
			return fmt.Errorf("%w: %s", ErrOutputExists, o.Path)
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("%w: %w", errOutput, err)
		}
		if fi, err := os.Stat(filepath.Dir(o.Path)); err != nil || !fi.IsDir() {
			return fmt.Errorf("%w %s: the folder %s does not exist", errOutput, o.Path, filepath.Dir(o.Path))
		}
	}
	return nil
}

// writeTemp writes o to a new temporary file beside o.Path and returns its
// name.
func writeTemp(o Output) (name string, err error) {
	dir, base := filepath.Split(o.Path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("%w %s: %w", errOutput, o.Path, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	// CreateTemp makes the file 0600, so a key is never readable by others,
	// not even while it is being written.
	if err := f.Chmod(o.Mode.Perm()); err != nil {
		return "", fmt.Errorf("%w %s: %w", errOutput, o.Path, err)
	}
	if _, err := f.Write(o.Data); err != nil {
		return "", fmt.Errorf("%w %s: %w", errOutput, o.Path, err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("%w %s: %w", errOutput, o.Path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("%w %s: %w", errOutput, o.Path, err)
	}
	return f.Name(), nil
}

// place moves temp to path. Without replace it links, which fails when
// path exists; where the file system has no hard links, it checks and
// renames, which leaves a small window.
func place(temp, path string, replace bool) error {
	if replace {
		if err := os.Rename(temp, path); err != nil {
			return fmt.Errorf("%w %s: %w", errOutput, path, err)
		}
		return nil
	}
	err := os.Link(temp, path)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%w: %s", ErrOutputExists, path)
	}
	if _, statErr := os.Lstat(path); statErr == nil {
		return fmt.Errorf("%w: %s", ErrOutputExists, path)
	}
	if err := os.Rename(temp, path); err != nil {
		return fmt.Errorf("%w %s: %w", errOutput, path, err)
	}
	return nil
}

func folders(outs []Output) map[string]bool {
	dirs := map[string]bool{}
	for _, o := range outs {
		dirs[filepath.Dir(o.Path)] = true
	}
	return dirs
}

// syncDir makes the new directory entries durable. A CA key that vanishes
// after a power cut at the end of a ceremony is worse than a slow write; a
// file system that cannot sync directories is not an error, though.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}

// sameFile reports whether paths a and b name one existing file, so that
// an operation never writes its output over its own input.
func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}
