//go:build !cgo

package pkcs11kms_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/quill-pki/quill/pkg/kms"
	_ "github.com/quill-pki/quill/pkg/kms/pkcs11kms"
)

// TestNoCGO: a build without cgo still knows pkcs11: references, and
// refuses to use them with ErrNotAllowed and a message that says why.
func TestNoCGO(t *testing.T) {
	t.Parallel()
	r, err := kms.Default.Parse("pkcs11:token=t;object=k?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = kms.Default.Open(context.Background(), r, kms.Options{})
	if !errors.Is(err, kms.ErrNotAllowed) || !strings.Contains(err.Error(), "cgo") {
		t.Fatalf("Open: %v, want ErrNotAllowed saying cgo is needed", err)
	}
}
