package ceremony

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestWriteFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		existing map[string]string // files present before
		outs     []Output          // paths relative to the test folder
		replace  bool
		wantErr  error
		want     map[string]string // contents after
	}{
		{
			name: "new-files",
			outs: []Output{{Path: "a.key", Data: []byte("key"), Mode: 0o600}, {Path: "a.crt", Data: []byte("crt"), Mode: 0o644}},
			want: map[string]string{"a.key": "key", "a.crt": "crt"},
		},
		{
			name:     "existing-file-refused",
			existing: map[string]string{"a.crt": "old"},
			outs:     []Output{{Path: "a.key", Data: []byte("key"), Mode: 0o600}, {Path: "a.crt", Data: []byte("crt"), Mode: 0o644}},
			wantErr:  ErrOutputExists,
			want:     map[string]string{"a.crt": "old"},
		},
		{
			name:     "existing-file-replaced",
			existing: map[string]string{"a.crt": "old"},
			outs:     []Output{{Path: "a.crt", Data: []byte("new"), Mode: 0o644}},
			replace:  true,
			want:     map[string]string{"a.crt": "new"},
		},
		{
			name:    "one-name-twice",
			outs:    []Output{{Path: "a.crt", Data: []byte("1"), Mode: 0o644}, {Path: "./a.crt", Data: []byte("2"), Mode: 0o644}},
			wantErr: errOutput,
			want:    map[string]string{},
		},
		{
			name:    "missing-folder",
			outs:    []Output{{Path: "a.key", Data: []byte("key"), Mode: 0o600}, {Path: "absent/a.crt", Data: []byte("crt"), Mode: 0o644}},
			wantErr: errOutput,
			want:    map[string]string{},
		},
		{
			name:    "empty-name",
			outs:    []Output{{Path: "", Data: []byte("crt"), Mode: 0o644}},
			wantErr: errOutput,
			want:    map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for name, content := range tt.existing {
				writeTestFile(t, dir, name, []byte(content))
			}
			outs := slices.Clone(tt.outs)
			for i := range outs {
				if outs[i].Path != "" {
					outs[i].Path = filepath.Join(dir, outs[i].Path)
				}
			}
			err := WriteFiles(tt.replace, outs...)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want an error wrapping %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			names := dirNames(t, dir)
			var want []string
			for name := range tt.want {
				want = append(want, name)
			}
			slices.Sort(want)
			if !slices.Equal(names, want) {
				t.Fatalf("the folder holds %q, want %q (no temporary files)", names, want)
			}
			for name, content := range tt.want {
				data, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil || string(data) != content {
					t.Errorf("%s = %q (%v), want %q", name, data, err, content)
				}
			}
			if tt.wantErr == nil {
				for _, o := range outs {
					fi, err := os.Stat(o.Path)
					if err != nil || fi.Mode().Perm() != o.Mode {
						t.Errorf("%s has mode %v (%v), want %v", o.Path, fi.Mode().Perm(), err, o.Mode)
					}
				}
			}
		})
	}
}

func TestWriteFilesRefusesFolder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "a.crt"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := WriteFiles(true, Output{Path: filepath.Join(dir, "a.crt"), Data: []byte("x"), Mode: 0o644})
	if !errors.Is(err, errOutput) {
		t.Fatalf("got %v, want an output error", err)
	}
}

func TestPreflightRefusesInputAsOutput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := writeTestFile(t, dir, "sub.key", []byte("key"))
	err := preflight(true, []Output{{Path: filepath.Join(dir, ".", "sub.key")}}, []string{in})
	if !errors.Is(err, errOutput) {
		t.Fatalf("got %v, want an output error", err)
	}
}
