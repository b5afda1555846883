// Package backends registers every key backend Quill ships with pkg/kms.
// quill-controller and quillctl import it once each; a new backend is one
// more import line here. A backend that needs cgo is listed all the same:
// its own stub refuses with a clear "needs cgo" error, which tells a user
// more than an unknown scheme would.
package backends

import (
	// pkcs11: URIs, keys on PKCS#11 tokens (RFC 7512).
	_ "github.com/quill-pki/quill/pkg/kms/pkcs11kms"
	// Software keys in Kubernetes Secrets (castore imports it too: it
	// cannot load a Secret-held CA without it).
	_ "github.com/quill-pki/quill/pkg/kms/softkey"
)
