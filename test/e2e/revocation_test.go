package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/ledger"
)

// fastCRL makes an issuer publish a new CRL a second after a revocation.
func fastCRL(s *quillv1.IssuerSpec) {
	s.Revocation.CRL.BatchDelay = &metav1.Duration{Duration: time.Second}
}

func leafOf(t *testing.T, secret *corev1.Secret) *x509.Certificate {
	t.Helper()
	return parseCerts(t, secret.Data["tls.crt"])[0]
}

// ledgerView reads the ledger in namespace home: every LedgerSegment,
// revocation lines applied to their entries (the first revocation stands),
// and any IssuedCertificate not migrated yet. Each entry is returned as the
// per-certificate object the ledger used to be made of (spec and
// status.revocation; its name is the segment's), so that the suites check
// the same fields as before; keyed by issuer kind/name and serial.
func ledgerView(t *testing.T, home string) map[string]*quillv1.IssuedCertificate {
	t.Helper()
	ctx := context.Background()
	key := func(ref quillv1.LedgerIssuerRef, serial string) string {
		return ref.Kind + "/" + ref.Name + "/" + serial
	}
	out := map[string]*quillv1.IssuedCertificate{}
	var legacy quillv1.IssuedCertificateList
	if err := env.Client.List(ctx, &legacy, client.InNamespace(home)); err != nil {
		t.Fatal(err)
	}
	revocations := map[string]*ledger.EntryRevocation{}
	for i := range legacy.Items {
		e := &legacy.Items[i]
		k := key(e.Spec.IssuerRef, e.Spec.SerialNumber)
		out[k] = e
		if r := e.Status.Revocation; r != nil {
			revocations[k] = &ledger.EntryRevocation{Reason: r.Reason, At: r.RevokedAt.Unix(), By: r.By}
		}
	}
	var segs quillv1.LedgerSegmentList
	if err := env.Client.List(ctx, &segs, client.InNamespace(home)); err != nil {
		t.Fatal(err)
	}
	for i := range segs.Items {
		seg := &segs.Items[i]
		if err := ledger.SegmentEntries(seg, func(e *ledger.Entry) error {
			k := key(seg.Spec.IssuerRef, e.Serial)
			if e.Revocation != nil && e.Revocation.Wins(revocations[k]) {
				revocations[k] = e.Revocation
			}
			if !e.IsRevocationLine() {
				out[k] = viewOf(seg, e)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for k, rev := range revocations {
		if ic := out[k]; ic != nil {
			ic.Status.Revocation = &quillv1.RevocationRecord{Reason: rev.Reason, RevokedAt: metav1.NewTime(time.Unix(rev.At, 0)), By: rev.By}
		}
	}
	return out
}

// viewOf is entry e of seg as an IssuedCertificate (see ledgerView),
// without its revocation.
func viewOf(seg *quillv1.LedgerSegment, e *ledger.Entry) *quillv1.IssuedCertificate {
	ic := &quillv1.IssuedCertificate{
		ObjectMeta: metav1.ObjectMeta{Namespace: seg.Namespace, Name: seg.Name},
		Spec: quillv1.IssuedCertificateSpec{
			IssuerRef: seg.Spec.IssuerRef, SerialNumber: e.Serial, Subject: e.Subject,
			DNSNames: e.DNSNames, IPAddresses: e.IPAddresses, URIs: e.URIs, EmailAddresses: e.EmailAddresses,
			IsCA: e.IsCA, NoRevocationAvailable: e.NoRevAvail,
			IssuedAt:  metav1.NewMicroTime(time.UnixMicro(e.IssuedAt)),
			NotBefore: metav1.NewTime(time.Unix(e.NotBefore, 0)), NotAfter: metav1.NewTime(time.Unix(e.NotAfter, 0)),
			KeyAlgorithm: e.KeyAlgorithm, SignatureAlgorithm: e.SignatureAlgorithm, SHA256Fingerprint: e.Fingerprint,
			Requester: e.Requester, Template: e.Template,
		},
	}
	for _, o := range e.OtherNames {
		ic.Spec.OtherNames = append(ic.Spec.OtherNames, quillv1.LedgerOtherName{TypeID: o.TypeID, Value: o.Value})
	}
	if o := e.Origin; o != nil {
		ic.Spec.Origin = quillv1.LedgerOrigin{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, UID: o.UID, Certificate: o.Certificate}
	}
	if len(e.Certificate) > 0 {
		ic.Spec.Certificate = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.Certificate}))
	}
	if e.Revocation != nil {
		ic.Status.Revocation = &quillv1.RevocationRecord{Reason: e.Revocation.Reason, RevokedAt: metav1.NewTime(time.Unix(e.Revocation.At, 0)), By: e.Revocation.By}
	}
	return ic
}

// ledgerRecord reads the ledger entry of cert's serial for issuer k, kept
// in namespace home (see ledgerView).
func ledgerRecord(t *testing.T, home string, k quillv1.IssuerID, cert *x509.Certificate) *quillv1.IssuedCertificate {
	t.Helper()
	e := ledgerView(t, home)[k.Kind+"/"+k.Name+"/"+ledger.SerialHex(cert.SerialNumber)]
	if e == nil {
		t.Fatalf("no ledger entry of serial %x of %s in namespace %s", cert.SerialNumber, k, home)
	}
	return e
}

// signedFor reads the ledger entries in ns of the QuillIssuer issuer (see
// ledgerView): the count per Certificate, and the entries by serial. It
// checks the one-signature rule on the way. cert-manager replaces a request
// it made (same name, new UID) when the key behind it changed meanwhile,
// and the replaced request may already have been signed, so a Certificate
// can have more than one certificate in the ledger; a request never has
// two.
func signedFor(t *testing.T, ns, issuer string) (perCertificate map[string]int, bySerial map[string]*quillv1.IssuedCertificate) {
	t.Helper()
	perCertificate, bySerial = map[string]int{}, map[string]*quillv1.IssuedCertificate{}
	request := map[string]string{} // request UID -> serial
	for _, e := range ledgerView(t, ns) {
		if e.Spec.IssuerRef.Kind != quillv1.IssuerKind || e.Spec.IssuerRef.Name != issuer {
			continue
		}
		if other, dup := request[e.Spec.Origin.UID]; dup {
			t.Fatalf("request %s (uid %s) was signed twice: serials %s and %s", e.Spec.Origin.Name, e.Spec.Origin.UID, other, e.Spec.SerialNumber)
		}
		request[e.Spec.Origin.UID] = e.Spec.SerialNumber
		perCertificate[e.Spec.Origin.Certificate]++
		bySerial[e.Spec.SerialNumber] = e
	}
	return perCertificate, bySerial
}

func revoke(t *testing.T, ns, name string, spec quillv1.QuillRevocationSpec) *quillv1.QuillRevocation {
	t.Helper()
	rev := &quillv1.QuillRevocation{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	create(t, rev)
	return rev
}

// waitRevocation waits for the Revoked condition to reach status and
// returns the revocation.
func waitRevocation(t *testing.T, rev *quillv1.QuillRevocation, status metav1.ConditionStatus, reason string) *quillv1.QuillRevocation {
	t.Helper()
	eventually(t, "QuillRevocation "+rev.Name+" Revoked="+string(status), func() (bool, error) {
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(rev), rev); err != nil {
			return false, err
		}
		c := meta.FindStatusCondition(rev.Status.Conditions, quillv1.ConditionRevoked)
		return c != nil && c.Status == status && c.Reason == reason, nil
	})
	return rev
}

// waitCRL waits for the issuer's CRL ConfigMap to list exactly the given
// certificates' serials, in that order, and returns the ConfigMap.
func waitCRL(t *testing.T, home, issuer string, certs ...*x509.Certificate) *corev1.ConfigMap {
	t.Helper()
	serials := make([]*big.Int, len(certs))
	for i, c := range certs {
		serials[i] = c.SerialNumber
	}
	return waitCRLSerials(t, home, issuer, serials)
}

// waitCRLSerials waits for the issuer's CRL ConfigMap to list exactly
// serials, in that order; on timeout it says what the CRL listed.
func waitCRLSerials(t *testing.T, home, issuer string, serials []*big.Int) *corev1.ConfigMap {
	t.Helper()
	var cm corev1.ConfigMap
	eventually(t, "CRL of "+issuer+" with "+itoa(len(serials))+" entries", func() (bool, error) {
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: home, Name: issuer + "-crl"}, &cm); err != nil {
			return false, err
		}
		crl, err := x509.ParseRevocationList(cm.BinaryData["crl.der"])
		if err != nil {
			return false, err
		}
		listed := make([]string, len(crl.RevokedCertificateEntries))
		for i, e := range crl.RevokedCertificateEntries {
			listed[i] = e.SerialNumber.Text(16)
		}
		want := make([]string, len(serials))
		for i, s := range serials {
			want[i] = s.Text(16)
		}
		if !slices.Equal(listed, want) {
			return false, fmt.Errorf("CRL number %s lists %v, want %v", crl.Number, listed, want)
		}
		return true, nil
	})
	return &cm
}

// revokedSerials is what a QuillRevocation by Certificate name reports it
// revoked, in serial order: every certificate the ledger holds for that
// Certificate, which is more than the one in its Secret when cert-manager
// issued it twice (a request it created again after a conflict is signed
// too). The test fails unless each of must is among them.
func revokedSerials(t *testing.T, rev *quillv1.QuillRevocation, must ...*x509.Certificate) []*big.Int {
	t.Helper()
	var out []*big.Int
	for _, h := range rev.Status.RevokedSerialNumbers {
		s, ok := new(big.Int).SetString(h, 16)
		if !ok {
			t.Fatalf("QuillRevocation %s reports serial %q, not hex", rev.Name, h)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *big.Int) int { return a.Cmp(b) })
	for _, c := range must {
		if !slices.ContainsFunc(out, func(s *big.Int) bool { return s.Cmp(c.SerialNumber) == 0 }) {
			t.Fatalf("QuillRevocation %s revoked %v, not %x", rev.Name, rev.Status.RevokedSerialNumbers, c.SerialNumber)
		}
	}
	if len(out) > 1 {
		t.Logf("QuillRevocation %s revoked %d certificates of one Certificate: %v", rev.Name, len(out), rev.Status.RevokedSerialNumbers)
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

func writeTemp(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRevocationCRL issues two certificates, revokes one by its Secret and
// checks the ledger, the revocation's status, and the CRL published to the
// ConfigMap with OpenSSL: it verifies under the CA and rejects exactly the
// revoked certificate.
func TestRevocationCRL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := newNamespace(t)
	ref := quillIssuer(t, ns, "ca", "ECDSA-P256", fastCRL)
	k := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: ns, Name: "ca"}
	create(t, certificate(ns, "alpha", ref))
	create(t, certificate(ns, "beta", ref))
	alphaSecret, betaSecret := waitCertificateReady(t, ns, "alpha"), waitCertificateReady(t, ns, "beta")
	alpha, beta := leafOf(t, alphaSecret), leafOf(t, betaSecret)

	// The ledger knows both certificates, with their origin.
	for _, c := range []struct {
		cert *x509.Certificate
		name string
	}{{alpha, "alpha"}, {beta, "beta"}} {
		e := ledgerRecord(t, ns, k, c.cert)
		sum := sha256.Sum256(c.cert.Raw)
		if e.Spec.SHA256Fingerprint != hex.EncodeToString(sum[:]) || e.Spec.Origin.Certificate != c.name ||
			e.Spec.Origin.Kind != "CertificateRequest" || e.Spec.Origin.Namespace != ns ||
			e.Spec.KeyAlgorithm == "" || e.Spec.SignatureAlgorithm != "ECDSA-SHA256" || e.Status.Revocation != nil {
			t.Errorf("ledger record for %s: %+v", c.name, e.Spec)
		}
		// The journal keeps the certificate itself until the entry is
		// sealed (crash recall); the fingerprint above is what stays.
		if block, _ := pem.Decode([]byte(e.Spec.Certificate)); block != nil && string(block.Bytes) != string(c.cert.Raw) {
			t.Errorf("ledger record for %s holds another certificate", c.name)
		}
	}
	// Nothing revoked yet: the issuer publishes an empty CRL.
	waitCRL(t, ns, "ca")

	rev := waitRevocation(t, revoke(t, ns, "alpha-compromised", quillv1.QuillRevocationSpec{
		IssuerRef: quillv1.RevocationIssuerRef{Name: "ca", Kind: quillv1.IssuerKind}, SecretName: alphaSecret.Name, Reason: quillv1.ReasonKeyCompromise,
	}), metav1.ConditionTrue, quillv1.ReasonRevoked)
	if got := rev.Status.RevokedSerialNumbers; len(got) != 1 || got[0] != ledger.SerialHex(alpha.SerialNumber) {
		t.Fatalf("revokedSerialNumbers = %v, want [%s]", got, ledger.SerialHex(alpha.SerialNumber))
	}
	if e := ledgerRecord(t, ns, k, alpha); e.Status.Revocation == nil || e.Status.Revocation.Reason != quillv1.ReasonKeyCompromise ||
		e.Status.Revocation.By != "QuillRevocation "+ns+"/alpha-compromised" {
		t.Fatalf("ledger revocation of alpha: %+v", e.Status.Revocation)
	}

	cm := waitCRL(t, ns, "ca", alpha)
	dir := t.TempDir()
	caFile := writeTemp(t, dir, "ca.pem", alphaSecret.Data["ca.crt"])
	crlFile := writeTemp(t, dir, "crl.pem", []byte(cm.Data["crl.pem"]))
	out, err := exec.Command("openssl", "crl", "-in", crlFile, "-CAfile", caFile, "-noout", "-text").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "verify OK") || !strings.Contains(string(out), "Key Compromise") ||
		!strings.Contains(strings.ToUpper(string(out)), strings.ToUpper(hex.EncodeToString(alpha.SerialNumber.Bytes()))) {
		t.Fatalf("openssl crl: %v\n%s", err, out)
	}
	verify := func(secret *corev1.Secret) (string, error) {
		leaf := writeTemp(t, dir, secret.Name+".pem", secret.Data["tls.crt"])
		out, err := exec.Command("openssl", "verify", "-crl_check", "-CAfile", caFile, "-CRLfile", crlFile, leaf).CombinedOutput()
		return string(out), err
	}
	if out, err := verify(alphaSecret); err == nil || !strings.Contains(out, "certificate revoked") {
		t.Errorf("openssl verify -crl_check accepted the revoked certificate: %v\n%s", err, out)
	}
	if out, err := verify(betaSecret); err != nil || !strings.Contains(out, ": OK") {
		t.Errorf("openssl verify -crl_check rejected the good certificate: %v\n%s", err, out)
	}

	var iss quillv1.QuillIssuer
	eventually(t, "status.revocation", func() (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ca"}, &iss)
		r := iss.Status.Revocation
		return err == nil && r != nil && r.RevokedCertificates == 1 && r.CRLConfigMap == "ca-crl", err
	})

	// A second revocation of the same certificate keeps the first reason,
	// and says so.
	again := waitRevocation(t, revoke(t, ns, "alpha-again", quillv1.QuillRevocationSpec{
		IssuerRef: quillv1.RevocationIssuerRef{Name: "ca", Kind: quillv1.IssuerKind}, SerialNumber: strings.ToUpper(alpha.SerialNumber.Text(16)), Reason: quillv1.ReasonSuperseded,
	}), metav1.ConditionTrue, quillv1.ReasonRevoked)
	if e := ledgerRecord(t, ns, k, alpha); e.Status.Revocation.Reason != quillv1.ReasonKeyCompromise {
		t.Errorf("a second revocation replaced the reason: %+v", e.Status.Revocation)
	}
	if c := meta.FindStatusCondition(again.Status.Conditions, quillv1.ConditionRevoked); c == nil ||
		c.Message != "revoked 0 certificate(s) with reason superseded; 1 already revoked keep their first reason" {
		t.Errorf("the second revocation's condition %+v does not say the first reason stands", c)
	}
	// An edited ConfigMap cannot send the CRL number backwards.
	before, err := x509.ParseRevocationList(cm.BinaryData["crl.der"])
	if err != nil {
		t.Fatal(err)
	}
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur corev1.ConfigMap
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(cm), &cur); err != nil {
			return err
		}
		cur.Annotations["quill.dev/crl-number"] = "0"
		return env.Client.Update(ctx, &cur)
	}); err != nil {
		t.Fatal(err)
	}
	revoked := append(revokedSerials(t, waitRevocation(t, revoke(t, ns, "beta-retired", quillv1.QuillRevocationSpec{
		IssuerRef: quillv1.RevocationIssuerRef{Name: "ca", Kind: quillv1.IssuerKind}, CertificateName: "beta", Reason: quillv1.ReasonCessationOfOperation,
	}), metav1.ConditionTrue, quillv1.ReasonRevoked), beta), alpha.SerialNumber)
	slices.SortFunc(revoked, func(a, b *big.Int) int { return a.Cmp(b) })
	after, err := x509.ParseRevocationList(waitCRLSerials(t, ns, "ca", revoked).BinaryData["crl.der"])
	if err != nil {
		t.Fatal(err)
	}
	if after.Number.Cmp(before.Number) <= 0 {
		t.Errorf("CRL number went from %s to %s", before.Number, after.Number)
	}
	// Nor can a deleted one: the issuer's status remembers the number.
	// (A spec change makes the CRL reconciler look at once.)
	if err := env.Client.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ca-crl"}}); err != nil {
		t.Fatal(err)
	}
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var iss quillv1.QuillIssuer
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ca"}, &iss); err != nil {
			return err
		}
		iss.Spec.Revocation.CRL.Validity = &metav1.Duration{Duration: 48 * time.Hour}
		return env.Client.Update(ctx, &iss)
	}); err != nil {
		t.Fatal(err)
	}
	republished, err := x509.ParseRevocationList(waitCRLSerials(t, ns, "ca", revoked).BinaryData["crl.der"])
	if err != nil {
		t.Fatal(err)
	}
	if republished.Number.Cmp(after.Number) <= 0 {
		t.Errorf("CRL number went from %s to %s after its ConfigMap was deleted", after.Number, republished.Number)
	}

	// A serial the issuer never issued is reported, not invented.
	waitRevocation(t, revoke(t, ns, "unknown", quillv1.QuillRevocationSpec{
		IssuerRef: quillv1.RevocationIssuerRef{Name: "ca", Kind: quillv1.IssuerKind}, SerialNumber: "01:02:03",
	}), metav1.ConditionFalse, quillv1.ReasonNotFound)
}

// TestRevocationTenancy: a QuillClusterIssuer's certificate can be revoked
// from the namespace that requested it and from the cluster resource
// namespace, not from a third namespace.
func TestRevocationTenancy(t *testing.T) {
	t.Parallel()
	owner, stranger := newNamespace(t), newNamespace(t)
	name := "rev-tenancy-" + owner
	iss := &quillv1.QuillClusterIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: quillv1.IssuerSpec{CA: quillv1.CASource{Bootstrap: &quillv1.BootstrapCA{
			SecretName: name + "-root", Subject: quillv1.Subject{CommonName: name}, KeyAlgorithm: "ECDSA-P256",
		}}},
	}
	fastCRL(&iss.Spec)
	create(t, iss)
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), iss) })
	waitIssuerReady(t, iss)
	ref := cmmeta.IssuerReference{Group: "quill.dev", Kind: quillv1.ClusterIssuerKind, Name: name}
	create(t, certificate(owner, "svc", ref))
	cert := leafOf(t, waitCertificateReady(t, owner, "svc"))
	spec := quillv1.QuillRevocationSpec{
		IssuerRef:    quillv1.RevocationIssuerRef{Name: name, Kind: quillv1.ClusterIssuerKind},
		SerialNumber: cert.SerialNumber.Text(16), Reason: quillv1.ReasonAffiliationChanged,
	}
	// The stranger learns nothing: its revocation of the owner's serial
	// is answered as one of a serial never signed.
	stolen := waitRevocation(t, revoke(t, stranger, "steal", spec), metav1.ConditionFalse, quillv1.ReasonNotFound)
	unknown := spec
	unknown.SerialNumber = "7e57"
	probe := waitRevocation(t, revoke(t, stranger, "probe", unknown), metav1.ConditionFalse, quillv1.ReasonNotFound)
	stolenMsg := meta.FindStatusCondition(stolen.Status.Conditions, quillv1.ConditionRevoked).Message
	probeMsg := meta.FindStatusCondition(probe.Status.Conditions, quillv1.ConditionRevoked).Message
	if strings.Replace(stolenMsg, "serial "+strings.ToLower(spec.SerialNumber), "serial S", 1) != strings.Replace(probeMsg, "serial 7e57", "serial S", 1) {
		t.Errorf("another namespace's serial answers %q, an unknown one %q: a stranger can tell them apart", stolenMsg, probeMsg)
	}
	k := quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: name}
	if e := ledgerRecord(t, clusterResourceNamespace, k, cert); e.Status.Revocation != nil {
		t.Fatalf("a stranger revoked the certificate: %+v", e.Status.Revocation)
	}
	adminRev := revoke(t, clusterResourceNamespace, name+"-admin", spec)
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), adminRev) })
	waitRevocation(t, adminRev, metav1.ConditionTrue, quillv1.ReasonRevoked)
	waitCRL(t, clusterResourceNamespace, name, cert)
}

// TestAutomaticRevocation: with revokeSupersededAfter, a renewed
// Certificate's previous certificate is revoked as superseded; with
// revokeOnCertificateDeletion, deleting the Certificate revokes the rest.
func TestAutomaticRevocation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := newNamespace(t)
	ref := quillIssuer(t, ns, "ca", "ECDSA-P256", fastCRL, func(s *quillv1.IssuerSpec) {
		s.Revocation.RevokeOnCertificateDeletion = true
		s.Revocation.RevokeSupersededAfter = &metav1.Duration{Duration: 2 * time.Second}
	})
	k := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: ns, Name: "ca"}
	create(t, certificate(ns, "app", ref))
	first := leafOf(t, waitCertificateReady(t, ns, "app"))

	// A changed spec makes cert-manager issue a new certificate.
	var crt cmapi.Certificate
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "app"}, &crt); err != nil {
			return err
		}
		crt.Spec.DNSNames = append(crt.Spec.DNSNames, "app2.example.test")
		return env.Client.Update(ctx, &crt)
	}); err != nil {
		t.Fatal(err)
	}
	var second *x509.Certificate
	eventually(t, "renewed certificate", func() (bool, error) {
		var s corev1.Secret
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "app-tls"}, &s); err != nil {
			return false, err
		}
		second = leafOf(t, &s)
		return second.SerialNumber.Cmp(first.SerialNumber) != 0, nil
	})
	eventually(t, "superseded certificate revoked", func() (bool, error) {
		e := ledgerRecord(t, ns, k, first)
		return e.Status.Revocation != nil && e.Status.Revocation.Reason == quillv1.ReasonSuperseded && e.Status.Revocation.By == "superseded", nil
	})
	if e := ledgerRecord(t, ns, k, second); e.Status.Revocation != nil {
		t.Fatalf("the current certificate was revoked: %+v", e.Status.Revocation)
	}

	if err := env.Client.Delete(ctx, &crt); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deleted Certificate's certificate revoked", func() (bool, error) {
		e := ledgerRecord(t, ns, k, second)
		return e.Status.Revocation != nil && e.Status.Revocation.Reason == quillv1.ReasonCessationOfOperation, nil
	})
	waitCRL(t, ns, "ca", sortedBySerial(first, second)...)
}

func sortedBySerial(cs ...*x509.Certificate) []*x509.Certificate {
	if len(cs) == 2 && cs[0].SerialNumber.Cmp(cs[1].SerialNumber) > 0 {
		cs[0], cs[1] = cs[1], cs[0]
	}
	return cs
}

// TestRevocationCANoCRLSign: a CA certificate whose key usage forbids CRLs
// still issues and answers OCSP, and its issuer says why it publishes no
// CRL instead of failing in a loop.
func TestRevocationCANoCRLSign(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := newNamespace(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "no CRLs here"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "legacy-ca"},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"tls.crt": certPEM, "tls.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), "ca.crt": certPEM},
	})
	iss := &quillv1.QuillIssuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "legacy"},
		Spec:       quillv1.IssuerSpec{CA: quillv1.CASource{SecretRef: &quillv1.SecretReference{Name: "legacy-ca"}}},
	}
	create(t, iss)
	waitIssuerReady(t, iss)
	eventually(t, "status.revocation.message about cRLSign", func() (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(iss), iss)
		r := iss.Status.Revocation
		return err == nil && r != nil && strings.Contains(r.Message, "cRLSign") && r.CRLConfigMap == "", err
	})
	ref := cmmeta.IssuerReference{Group: "quill.dev", Kind: quillv1.IssuerKind, Name: "legacy"}
	create(t, certificate(ns, "still-issues", ref))
	waitCertificateReady(t, ns, "still-issues")
}
