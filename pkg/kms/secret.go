package kms

// SchemeSecret is the scheme of software keys kept in Kubernetes Secrets.
const SchemeSecret = "secret"

// SecretKey names a software CA key kept in PEM form in a Kubernetes
// Secret, beside its certificate (cert-manager's TLS layout: tls.key,
// tls.crt, ca.crt). castore reads and parses it with the certificate
// (pkg/issuance does both, and keeps its ML-DSA signing engine), so no
// backend is registered for this scheme: the type exists so that every CA
// source an issuer can name is one Ref, identified and listed the same way.
type SecretKey struct {
	Namespace string
	Name      string
}

// Scheme returns "secret".
func (SecretKey) Scheme() string { return SchemeSecret }

// String returns "secret:<namespace>/<name>".
func (k SecretKey) String() string { return SchemeSecret + ":" + k.Namespace + "/" + k.Name }
