// Package revocationdata names what Quill publishes for revocation and how
// it is read back: the CRL ConfigMaps the leader writes and every replica
// serves, the Secret holding an issuer's delegated OCSP responder, and the
// URLs under which the HTTP server answers for an issuer. The CRL publisher
// (controllers/revocation), the HTTP server (controllers/revocationhttp) and
// issuance (the URLs embedded in certificates) share these names.
package revocationdata

import (
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/owned"
)

// The CRL ConfigMap: its label, the annotations describing the CRL it
// holds, and its data keys.
const (
	ConfigMapLabel   = "quill.dev/crl"
	AnnIssuer        = "quill.dev/issuer"
	AnnCRLNumber     = "quill.dev/crl-number"
	AnnCRLThisUpdate = "quill.dev/crl-this-update"
	AnnCRLNextUpdate = "quill.dev/crl-next-update"
	AnnCRLEntries    = "quill.dev/crl-entries-sha256"
	AnnCRLSHA256     = "quill.dev/crl-sha256"
	AnnCRLParts      = "quill.dev/crl-parts"
	AnnCASHA256      = "quill.dev/ca-sha256"
	KeyPEM           = "crl.pem"
	KeyDER           = "crl.der"
	KeyPart          = "crl.der.part"
)

// DefaultOCSPValidity is how long an OCSP answer is valid when the issuer
// sets no spec.revocation.ocsp.responseValidity.
const DefaultOCSPValidity = time.Hour

var (
	errNotSigningKey = errors.New("not a signing key")
	errNotValidNow   = errors.New("outside its validity")
)

// CRLConfigMapName is the ConfigMap, in the issuer's home namespace, that
// holds its CRL.
func CRLConfigMapName(issuerName string) string { return issuerName + "-crl" }

// OCSPResponderSecretName is the Secret, in the issuer's home namespace,
// holding its delegated OCSP responder certificate and key.
func OCSPResponderSecretName(issuerName string) string { return issuerName + "-ocsp-responder" }

// CRLFromConfigMaps assembles the DER CRL that main (and its parts, read
// through get) hold, checking the published digest. ok is false while the
// parts of a large CRL are not all there yet.
func CRLFromConfigMaps(main *corev1.ConfigMap, get func(name string) (*corev1.ConfigMap, bool)) (der []byte, ok bool) {
	if d, ok := main.BinaryData[KeyDER]; ok {
		der = d
	} else {
		n, err := strconv.Atoi(main.Annotations[AnnCRLParts])
		if err != nil || n < 1 {
			return nil, false
		}
		der = append(der, main.BinaryData[KeyPart]...)
		for i := 1; i < n; i++ {
			part, found := get(fmt.Sprintf("%s-%d", main.Name, i))
			if !found || part.Annotations[AnnCRLSHA256] != main.Annotations[AnnCRLSHA256] {
				return nil, false
			}
			der = append(der, part.BinaryData[KeyPart]...)
		}
	}
	sum := sha256.Sum256(der)
	if hex.EncodeToString(sum[:]) != main.Annotations[AnnCRLSHA256] {
		return nil, false
	}
	if _, err := x509.ParseRevocationList(der); err != nil {
		return nil, false
	}
	return der, true
}

// Why a CRL ConfigMap is not served (ServableCRL).
var (
	ErrCRLNotOwned     = errors.New("CRL ConfigMap lacks Quill's ownership mark for the issuer")
	ErrCRLIncomplete   = errors.New("CRL ConfigMaps incomplete or inconsistent")
	ErrCRLBadSignature = errors.New("CRL not signed by the issuer's CA")
)

// ServableCRL is the DER CRL to serve as issuer k's, from main and its
// parts (read through get), or why there is none: every ConfigMap must
// carry the ownership mark naming k (ErrCRLNotOwned), the parts must make
// one CRL with the published digest (ErrCRLIncomplete), and the CRL must be
// signed by ca, the issuer's current CA certificate (ErrCRLBadSignature).
// The signature check is what makes a forged ConfigMap harmless even with
// a copied mark; callers run it once per published version, not per
// request.
func ServableCRL(k quillv1.IssuerID, ca *x509.Certificate, main *corev1.ConfigMap, get func(name string) (*corev1.ConfigMap, bool)) ([]byte, error) {
	if !owned.Marked(main, k.String()) {
		return nil, ErrCRLNotOwned
	}
	allOwned := true
	der, ok := CRLFromConfigMaps(main, func(name string) (*corev1.ConfigMap, bool) {
		cm, found := get(name)
		if found && !owned.Marked(cm, k.String()) {
			allOwned = false
			return nil, false
		}
		return cm, found
	})
	switch {
	case !allOwned:
		return nil, ErrCRLNotOwned
	case !ok:
		return nil, ErrCRLIncomplete
	}
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCRLIncomplete, err)
	}
	if err := list.CheckSignatureFrom(ca); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCRLBadSignature, err)
	}
	return der, nil
}

// ResponderKind is the issuer's OCSP signer: as configured, else a
// delegated responder for an HSM key and the CA itself otherwise.
func ResponderKind(spec *quillv1.IssuerSpec) quillv1.OCSPResponderKind {
	if spec.Revocation.OCSP.Responder != "" {
		return spec.Revocation.OCSP.Responder
	}
	if spec.CA.PKCS11 != nil {
		return quillv1.OCSPResponderDelegated
	}
	return quillv1.OCSPResponderCA
}

// ParseResponderSecret reads a delegated responder from its Secret and
// checks that the current CA issued it and that it is valid at now.
func ParseResponderSecret(sec *corev1.Secret, a *issuance.Authority, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	pair, err := tls.X509KeyPair(sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return nil, nil, err
	}
	cert := pair.Leaf
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok || cert == nil {
		return nil, nil, errNotSigningKey
	}
	if err := cert.CheckSignatureFrom(a.Certificate); err != nil {
		return nil, nil, fmt.Errorf("not issued by the current CA: %w", err)
	}
	if now.Before(cert.NotBefore) || !now.Before(cert.NotAfter) {
		return nil, nil, errNotValidNow
	}
	return cert, key, nil
}

// URLs builds the CRL and OCSP URLs Quill serves for an issuer under base
// (the controller's --revocation-base-url).
func URLs(base string, id quillv1.IssuerID) (crlURL, ocspURL string) {
	p := IssuerPath(id)
	return base + "/crl/" + p + ".crl", base + "/ocsp/" + p
}

// IssuerPath is the issuer's part of the revocation URLs:
// "clusterissuer/<name>" or "issuer/<namespace>/<name>".
func IssuerPath(id quillv1.IssuerID) string {
	if id.IsCluster() {
		return "clusterissuer/" + url.PathEscape(id.Name)
	}
	return "issuer/" + url.PathEscape(id.Namespace) + "/" + url.PathEscape(id.Name)
}

// ParseIssuerPath reads "clusterissuer/<name>..." or
// "issuer/<namespace>/<name>..." (unescaped) and returns the issuer, the
// number of path segments naming it, and what follows the name.
func ParseIssuerPath(p string) (id quillv1.IssuerID, segments int, rest string, ok bool) {
	parts := strings.SplitN(p, "/", 4)
	switch {
	case len(parts) >= 2 && parts[0] == "clusterissuer" && parts[1] != "":
		return quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: parts[1]}, 2, strings.Join(parts[2:], "/"), true
	case len(parts) >= 3 && parts[0] == "issuer" && parts[1] != "" && parts[2] != "":
		return quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: parts[1], Name: parts[2]}, 3, strings.Join(parts[3:], "/"), true
	}
	return quillv1.IssuerID{}, 0, "", false
}
