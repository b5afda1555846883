package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"io"
	"math/big"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/revocationdata"
)

// forgedCRL is a CRL listing nothing, signed by a CA the tenant made up:
// what a tenant would publish to have relying parties accept revoked
// certificates, or to make up an issuer.
func forgedCRL(t *testing.T, number int64) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca root"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, SubjectKeyId: []byte{1, 2, 3},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(number), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(24 * time.Hour),
	}, ca, key)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

// forge writes der into cm as the CRL publisher lays it out, with the
// label the server watches and the ownership mark naming k copied: all a
// tenant with ConfigMap rights in the namespace can write.
func forge(cm *corev1.ConfigMap, k quillv1.IssuerID, der []byte) {
	sum := sha256.Sum256(der)
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Labels[revocationdata.ConfigMapLabel] = "true"
	cm.Labels[quillv1.LabelManagedBy] = quillv1.ManagedByQuill
	cm.Annotations[quillv1.AnnotationOwner] = k.String()
	cm.Annotations[revocationdata.AnnIssuer] = k.String()
	cm.Annotations[revocationdata.AnnCRLSHA256] = hex.EncodeToString(sum[:])
	cm.Annotations[revocationdata.AnnCRLThisUpdate] = time.Now().UTC().Format(time.RFC3339)
	cm.Annotations[revocationdata.AnnCRLNextUpdate] = time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	cm.BinaryData = map[string][]byte{revocationdata.KeyDER: der}
	cm.Data = nil
}

func fetchCRL(t *testing.T, url string) (int, []byte) {
	t.Helper()
	var resp *http.Response
	eventually(t, "the CRL endpoint to listen", func() (bool, error) {
		var err error
		resp, err = http.Get(url)
		return err == nil, nil
	})
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// TestForgedCRLConfigMapNotServed is issue 12 item 7's attack against the
// real API server: a tenant creates a labelled ConfigMap that Quill used to
// serve verbatim as the CRL of an issuer that does not exist, and
// overwrites its own issuer's CRL ConfigMap with a CRL of a made-up CA.
// Neither is served: the first is a 404, the second leaves the genuine CRL
// served.
func TestForgedCRLConfigMapNotServed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := newNamespace(t)
	base := "http://" + revocationAddr

	// An issuer that does not exist.
	ghost := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: ns, Name: "ghost"}
	fake := forgedCRL(t, 1)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: revocationdata.CRLConfigMapName("ghost")}}
	forge(cm, ghost, fake)
	create(t, cm)
	ghostURL := base + "/crl/" + revocationdata.IssuerPath(ghost) + ".crl"
	// The watch delivers the ConfigMap within moments; ask for a while.
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		code, body := fetchCRL(t, ghostURL)
		if bytes.Equal(body, fake) || code != http.StatusNotFound {
			t.Fatalf("GET %s: HTTP %d (forged bytes served: %v), want 404", ghostURL, code, bytes.Equal(body, fake))
		}
	}

	// The tenant's own issuer: its genuine CRL is served, and a forged
	// one written over it is not.
	quillIssuer(t, ns, "ca", "ECDSA-P256", fastCRL)
	k := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: ns, Name: "ca"}
	url := base + "/crl/" + revocationdata.IssuerPath(k) + ".crl"
	eventually(t, "the genuine CRL served", func() (bool, error) {
		code, _ := fetchCRL(t, url)
		return code == http.StatusOK, nil
	})
	var root corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ca-root"}, &root); err != nil {
		t.Fatal(err)
	}
	caCert := parseCerts(t, root.Data[corev1.TLSCertKey])[0]
	var published corev1.ConfigMap
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: revocationdata.CRLConfigMapName("ca")}, &published); err != nil {
		t.Fatal(err)
	}
	forged := forgedCRL(t, 1_000_000)
	forge(&published, k, forged)
	if err := env.Client.Update(ctx, &published); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		code, body := fetchCRL(t, url)
		if bytes.Equal(body, forged) {
			t.Fatalf("GET %s served the forged CRL", url)
		}
		if code != http.StatusOK {
			t.Fatalf("GET %s: HTTP %d; the genuine CRL should stay served", url, code)
		}
		list, err := x509.ParseRevocationList(body)
		if err != nil || list.CheckSignatureFrom(caCert) != nil {
			t.Fatalf("GET %s served a CRL the issuer's CA did not sign: %v", url, err)
		}
	}
}
