package ceremony

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/validation"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/kms"
)

var (
	// ErrWrongPassword is returned when a PFX's integrity check fails with
	// the password given: the password is wrong, or the file was altered.
	ErrWrongPassword = errors.New("wrong PFX password")

	errBadPFX          = errors.New("cannot read PFX")
	errIncompleteChain = errors.New("incomplete CA chain")
	errSecretName      = errors.New("invalid Secret name")
)

// keyCACrt is the Secret key of the root, castore.KeyCACrt. castore is
// not imported: quillctl would carry a Kubernetes client (and PKCS#11) for
// one string constant.
const keyCACrt = "ca.crt"

// maxChain bounds the chain walk; real PKIs are two to four levels deep.
const maxChain = 8

// ImportOptions name CA material to turn into a Quill CA Secret: either a
// PFX (PKCS#12) file, or a PEM certificate and key.
type ImportOptions struct {
	// PFX is a PKCS#12 file holding the CA's key, its certificate and
	// usually the CAs above it. Password opens it.
	PFX      string
	Password string
	// Cert is a PEM file with the CA certificate, optionally followed by
	// the CAs above it; Key is its PEM private key.
	Cert, Key string
	// CA is an optional PEM file with the root, and any intermediates the
	// other input lacks.
	CA string
	// Name and Namespace are the Secret's.
	Name, Namespace string
	// Now is the time the CA must be valid at; it must be set.
	Now time.Time
}

// Imported is a CA Secret ready to apply, and what was checked.
type Imported struct {
	// Secret is of type kubernetes.io/tls: tls.crt holds the CA
	// certificate and the intermediates above it (the root only when the
	// CA is the root), tls.key its PKCS#8 key and ca.crt the root.
	Secret *corev1.Secret
	// Authority is the CA as the issuer will load it.
	Authority *issuance.Authority
	// Warnings are one-line remarks, such as certificates in the input
	// that are not part of the chain.
	Warnings []string
}

// Import reads CA material and builds the Secret Quill's issuers read
// (pkg/castore), after checking what the issuer would check and more: the
// key belongs to the certificate; the certificate is a CA allowed to sign
// certificates; the chain from it to a self-signed root is complete, each
// certificate signed by the next; every certificate in it is valid at Now;
// and the chain verifies as a relying party sees it. Errors wrap
// ErrWrongPassword, the sentinels of issuance.Authority.Check, or describe
// the unreadable input.
func Import(o ImportOptions) (*Imported, error) {
	if o.Now.IsZero() {
		return nil, fmt.Errorf("%w: the time is not set", errOptions)
	}
	if errs := validation.IsDNS1123Subdomain(o.Name); len(errs) > 0 {
		return nil, fmt.Errorf("%w %q: %s", errSecretName, o.Name, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Label(o.Namespace); len(errs) > 0 {
		return nil, fmt.Errorf("%w: namespace %q: %s", errSecretName, o.Namespace, strings.Join(errs, "; "))
	}

	var (
		cert   *x509.Certificate
		pool   []*x509.Certificate
		signer crypto.Signer
		source string
		err    error
	)
	switch {
	case o.PFX != "" && (o.Cert != "" || o.Key != ""):
		return nil, fmt.Errorf("%w: give either a PFX or a certificate and key, not both", errOptions)
	case o.PFX != "":
		source = o.PFX
		if cert, pool, signer, err = readPFX(o.PFX, o.Password); err != nil {
			return nil, err
		}
	case o.Cert != "" && o.Key != "":
		source = o.Cert
		if cert, pool, signer, err = readPEMPair(o.Cert, o.Key); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: give a PFX, or a certificate and its key", errOptions)
	}
	if o.CA != "" {
		data, err := os.ReadFile(o.CA)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", issuance.ErrMalformedCA, err)
		}
		extra, err := issuance.ParseCertificatesPEM(data)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", issuance.ErrMalformedCA, o.CA, err)
		}
		pool = append(pool, extra...)
	}

	// The issuing certificate alone first: a leaf or a wrong key is a
	// clearer message than the chain problems it would cause. Validity is
	// left to Check below, which names each certificate's role.
	if err := checkIssuing(cert, signer); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	chain, unused, err := buildChain(cert, pool)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	root := chain[len(chain)-1]
	tlsCrt := issuance.EncodeCertificatesPEM(chain[:max(1, len(chain)-1)]...)
	caCrt := issuance.EncodeCertificatesPEM(root)
	tlsKey, err := issuance.MarshalPrivateKeyPEM(signer)
	if err != nil {
		return nil, err
	}

	// Load the Secret's contents exactly as the issuer will.
	a, err := issuance.LoadAuthority(tlsCrt, tlsKey, caCrt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if err := a.Check(o.Now); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if err := verifyChain(cert, chain, o.Now); err != nil {
		return nil, fmt.Errorf("%s: %w: the chain to %q does not verify: %w", source, issuance.ErrMalformedCA, root.Subject, err)
	}

	var warnings []string
	if unused > 0 {
		warnings = append(warnings, fmt.Sprintf("%d certificate(s) in the input are not part of the chain of %q and were left out", unused, cert.Subject))
	}
	for _, c := range chain {
		if left := c.NotAfter.Sub(o.Now); left < 30*24*time.Hour {
			warnings = append(warnings, fmt.Sprintf("%q expires at %s, in %s", c.Subject, stamp(c.NotAfter), issuance.HumanDuration(left.Round(time.Minute))))
		}
	}
	secret := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace},
		Type:       corev1.SecretTypeTLS,
		Data: map[string][]byte{
			corev1.TLSCertKey:       tlsCrt,
			corev1.TLSPrivateKeyKey: tlsKey,
			keyCACrt:                caCrt,
		},
	}
	return &Imported{Secret: secret, Authority: a, Warnings: warnings}, nil
}

// checkIssuing checks what makes cert unusable as an issuing CA whatever
// its chain: a key that is not its own, no cA flag, no keyCertSign.
func checkIssuing(cert *x509.Certificate, key crypto.Signer) error {
	if !issuance.PublicKeysEqual(key.Public(), cert.PublicKey) {
		return fmt.Errorf("%w: the private key is not the key of %q", kms.ErrKeyMismatch, cert.Subject)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return fmt.Errorf("%w: %q does not assert basicConstraints cA=TRUE; import the CA certificate, not a certificate it issued", issuance.ErrNotCA, cert.Subject)
	}
	if cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("%w: the keyUsage of %q lacks keyCertSign", issuance.ErrNoCertSign, cert.Subject)
	}
	return nil
}

// readPFX decodes a PKCS#12 file: its one key, the certificate of that key
// and any other certificates, whatever the encryption (AES and PBKDF2 as
// OpenSSL 3 writes by default; 3DES and RC2 in legacy files).
func readPFX(path, password string) (*x509.Certificate, []*x509.Certificate, crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %w", errBadPFX, err)
	}
	switch trimmed := bytes.TrimSpace(data); {
	case len(trimmed) == 0:
		return nil, nil, nil, fmt.Errorf("%w %s: the file is empty", errBadPFX, path)
	case bytes.HasPrefix(trimmed, []byte("-----BEGIN ")):
		return nil, nil, nil, fmt.Errorf("%w %s: it is PEM, not PKCS#12; import PEM files with --cert and --key", errBadPFX, path)
	}
	key, cert, cas, err := pkcs12.DecodeChain(data, password)
	switch {
	case errors.Is(err, pkcs12.ErrIncorrectPassword):
		return nil, nil, nil, fmt.Errorf("%w for %s (or the file was altered)", ErrWrongPassword, path)
	case err != nil:
		return nil, nil, nil, fmt.Errorf("%w %s: it is truncated, damaged or not a PKCS#12 file (%s)", errBadPFX, path, shortASN1Error(err))
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, nil, nil, fmt.Errorf("%w %s: a %T cannot sign", errUnsupportedKey, path, key)
	}
	if _, err := keyAlgorithmOf(signer.Public()); err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return cert, cas, signer, nil
}

// shortASN1Error drops the tag numbers and Go struct dump encoding/asn1
// appends to its structure errors, which tell a user nothing.
func shortASN1Error(err error) string {
	const structural = "asn1: structure error"
	msg := err.Error()
	if i := strings.Index(msg, structural); i >= 0 {
		return msg[:i+len(structural)]
	}
	return msg
}

// readPEMPair reads a certificate bundle and the key of its first
// certificate.
func readPEMPair(certPath, keyPath string) (*x509.Certificate, []*x509.Certificate, crypto.Signer, error) {
	data, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %w", issuance.ErrMalformedCA, err)
	}
	certs, err := issuance.ParseCertificatesPEM(data)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %s: %w", issuance.ErrMalformedCA, certPath, err)
	}
	signer, err := FileKey{Path: keyPath}.Signer()
	if err != nil {
		return nil, nil, nil, err
	}
	return certs[0], certs[1:], signer, nil
}

// buildChain orders the chain from cert up to a self-signed root, picking
// each issuer from pool by name and signature. It returns how many pool
// certificates it did not use.
func buildChain(cert *x509.Certificate, pool []*x509.Certificate) ([]*x509.Certificate, int, error) {
	chain := []*x509.Certificate{cert}
	used := map[*x509.Certificate]bool{}
	for cur := cert; !selfSigned(cur); {
		if len(chain) >= maxChain {
			return nil, 0, fmt.Errorf("%w: no self-signed root within %d certificates", errIncompleteChain, maxChain)
		}
		var next *x509.Certificate
		for _, c := range pool {
			if !used[c] && !bytes.Equal(c.Raw, cur.Raw) && bytes.Equal(c.RawSubject, cur.RawIssuer) && cur.CheckSignatureFrom(c) == nil {
				next = c
				break
			}
		}
		if next == nil {
			return nil, 0, fmt.Errorf("%w: the issuer %q of %q is missing; add it (and any CA above it, up to the self-signed root) with --ca", errIncompleteChain, cur.Issuer, cur.Subject)
		}
		used[next] = true
		chain = append(chain, next)
		cur = next
	}
	unused := 0
	for _, c := range pool {
		if !slices.ContainsFunc(chain, func(x *x509.Certificate) bool { return bytes.Equal(x.Raw, c.Raw) }) {
			unused++
		}
	}
	return chain, unused, nil
}

// selfSigned reports whether c names itself as issuer and its signature
// verifies with its own key.
func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// Manifest formats.
const (
	FormatYAML = "yaml"
	FormatJSON = "json"
)

// EncodeSecret writes s as a manifest for kubectl apply, in FormatYAML or
// FormatJSON.
func EncodeSecret(s *corev1.Secret, format string) ([]byte, error) {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	var opts json.SerializerOptions
	switch format {
	case FormatYAML:
		opts.Yaml = true
	case FormatJSON:
		opts.Pretty = true
	default:
		return nil, fmt.Errorf("%w: output format %q; use yaml or json", errOptions, format)
	}
	var buf bytes.Buffer
	if err := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, opts).Encode(s, &buf); err != nil {
		return nil, fmt.Errorf("encode the Secret: %w", err)
	}
	return buf.Bytes(), nil
}

// ReadPasswordFile reads a password from the first line of a file, the
// convention of `openssl -passin file:`: one trailing line break is not
// part of the password.
func ReadPasswordFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	return strings.TrimSuffix(line, "\r"), nil
}
