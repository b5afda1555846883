package kms

// SchemeSecret is the scheme of software keys kept in Kubernetes Secrets.
const SchemeSecret = "secret"

// SecretKey names a software CA key kept in PEM form in a Kubernetes
// Secret, beside its certificate (cert-manager's TLS layout: tls.key,
// tls.crt, ca.crt). castore builds it from an issuer's spec.ca, reads the
// Secret itself, and opens the key through the backend pkg/kms/softkey
// registers for this scheme: a backend never gets an API client, so the
// caller hands it the key's bytes in PEM.
type SecretKey struct {
	Namespace string
	Name      string

	// PEM is the Secret's tls.key, read by the caller; empty in a
	// SecretKey that only names the key. It is never printed: String and
	// GoString show the Secret's name alone.
	PEM []byte
}

// Scheme returns "secret".
func (SecretKey) Scheme() string { return SchemeSecret }

// String returns "secret:<namespace>/<name>".
func (k SecretKey) String() string { return SchemeSecret + ":" + k.Namespace + "/" + k.Name }

// GoString keeps %#v from printing the key.
func (k SecretKey) GoString() string { return k.String() }
