package controllers

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/audit"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/crl"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/ledger"
	"github.com/quill-pki/quill/pkg/ocspserver"
)

// RBAC for CRL publishing.
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;delete

// Defaults of an issuer's revocation settings.
const (
	DefaultCRLValidity      = 24 * time.Hour
	DefaultCRLBatchDelay    = 5 * time.Second
	DefaultOCSPValidity     = time.Hour
	crlConfigMapSuffix      = "-crl"
	crlConfigMapLabel       = "quill.dev/crl"
	annIssuer               = "quill.dev/issuer"
	annCRLNumber            = "quill.dev/crl-number"
	annCRLThisUpdate        = "quill.dev/crl-this-update"
	annCRLNextUpdate        = "quill.dev/crl-next-update"
	annCRLEntries           = "quill.dev/crl-entries-sha256"
	annCRLSHA256            = "quill.dev/crl-sha256"
	annCRLParts             = "quill.dev/crl-parts"
	annCASHA256             = "quill.dev/ca-sha256"
	crlKeyPEM               = "crl.pem"
	crlKeyDER               = "crl.der"
	crlPartKey              = "crl.der.part"
	crlStatusFieldOwner     = FieldOwner + "/revocation-status"
	configMapPayloadLimit   = 900 << 10 // well under the API server's ~1.5 MiB object limit
	crlRetryWhenCAUnhealthy = time.Minute
)

// CRLConfigMapName is the ConfigMap, in the issuer's home namespace, that
// holds its CRL.
func CRLConfigMapName(issuerName string) string { return issuerName + crlConfigMapSuffix }

func crlValidity(spec *quillv1.IssuerSpec) time.Duration {
	if d := spec.Revocation.CRL.Validity; d != nil {
		return d.Duration
	}
	return DefaultCRLValidity
}

func crlBatchDelay(spec *quillv1.IssuerSpec) time.Duration {
	if d := spec.Revocation.CRL.BatchDelay; d != nil {
		return d.Duration
	}
	return DefaultCRLBatchDelay
}

// crlPublisher signs each issuer's CRL and publishes it to a ConfigMap, on
// the leader only (controllers need leader election), so every CRL is
// signed once. It signs a new CRL when the issuer's revoked set or CA
// changes (after the issuer's batch delay) and when half of the current
// CRL's validity has passed.
type crlPublisher struct {
	client           client.Client
	reader           client.Reader
	store            *castore.Store
	index            *ledger.Index
	clusterNamespace string
	clock            clock.PassiveClock
	baseURL          string
	// audit logs each delegated responder certificate signed; the zero
	// value logs nothing.
	audit audit.Logger

	mu      sync.Mutex
	delays  map[ledger.IssuerKey]time.Duration
	trigger *issuerTrigger
}

func (p *crlPublisher) setup(mgr ctrl.Manager) error {
	p.delays = map[ledger.IssuerKey]time.Duration{}
	p.trigger = newIssuerTrigger(p.batchDelay)
	p.index.Subscribe(func(c ledger.Change) {
		if c.RevocationChanged {
			p.trigger.fire(c.Issuer)
		}
	})
	for _, kind := range quillv1.IssuerKinds() {
		if err := ctrl.NewControllerManagedBy(mgr).Named("crl-"+controllerSuffix(kind)).For(kind, specOrCAChanges).
			WatchesRawSource(p.trigger.source(kind)).
			Complete(&crlReconciler{p: p, kind: kind}); err != nil {
			return err
		}
	}
	return nil
}

// batchDelay is how long after a change of k's revoked set its new CRL is
// signed: the issuer's batch delay, as its last reconcile saw it.
func (p *crlPublisher) batchDelay(k ledger.IssuerKey) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d, ok := p.delays[k]; ok {
		return d
	}
	return DefaultCRLBatchDelay
}

type crlReconciler struct {
	p    *crlPublisher
	kind quillv1.GenericIssuer
}

func (r *crlReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	p := r.p
	obj, k := issuerAt(r.kind, req.NamespacedName)
	spec, status, home := obj.GetSpec(), obj.GetStatus(), k.HomeNamespace(p.clusterNamespace)
	if err := p.client.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	p.mu.Lock()
	p.delays[k] = crlBatchDelay(spec)
	p.mu.Unlock()
	if !p.index.Synced() {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	a, err := p.store.Load(ctx, home, spec.CA)
	if err != nil {
		// The issuer's health check reports what is wrong with the CA; the
		// CRL waits for it and the last one published stays served.
		logf.FromContext(ctx).V(1).Info("CRL not signed: CA unavailable", "error", err.Error())
		return ctrl.Result{RequeueAfter: crlRetryWhenCAUnhealthy}, nil
	}
	now := p.clock.Now()
	validity := crlValidity(spec)
	revoked := p.index.Revoked(k, now)
	sort.Slice(revoked, func(i, j int) bool { return revoked[i].Serial.Cmp(revoked[j].Serial) < 0 })
	entriesDigest := digestEntries(revoked)
	caDigest := sha256.Sum256(a.Certificate.Raw)
	caHex := hex.EncodeToString(caDigest[:])

	name := CRLConfigMapName(req.Name)
	var cm corev1.ConfigMap
	err = p.reader.Get(ctx, types.NamespacedName{Namespace: home, Name: name}, &cm)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("reading CRL ConfigMap: %w", err)
	}
	if exists && cm.Annotations[annIssuer] != k.String() {
		return ctrl.Result{}, fmt.Errorf("ConfigMap %s/%s belongs to %q, not %s: rename one of them", home, name, cm.Annotations[annIssuer], k)
	}
	number := big.NewInt(1)
	var thisUpdate, nextUpdate time.Time
	if exists {
		// CRL numbers only grow: the next one follows the larger of the
		// annotation and the number inside the published CRL, so an edited
		// or damaged ConfigMap cannot send it backwards.
		if n, ok := new(big.Int).SetString(cm.Annotations[annCRLNumber], 10); ok {
			number.Add(n, big.NewInt(1))
		}
		if n := p.publishedNumber(ctx, &cm); n != nil && n.Cmp(number) >= 0 {
			number.Add(n, big.NewInt(1))
		}
		thisUpdate, _ = time.Parse(time.RFC3339, cm.Annotations[annCRLThisUpdate])
		nextUpdate, _ = time.Parse(time.RFC3339, cm.Annotations[annCRLNextUpdate])
	}
	// A deleted ConfigMap must not restart the numbering either: the last
	// number recorded on the issuer is a floor.
	if r := status.Revocation; r != nil {
		if n, ok := new(big.Int).SetString(r.CRLNumber, 10); ok && n.Cmp(number) >= 0 {
			number.Add(n, big.NewInt(1))
		}
	}
	refreshAt := thisUpdate.Add(nextUpdate.Sub(thisUpdate) / 2)
	fresh := exists && cm.Annotations[annCRLEntries] == entriesDigest && cm.Annotations[annCASHA256] == caHex &&
		nextUpdate.Sub(thisUpdate) == validity && now.Before(refreshAt)
	cmName, message := name, ""
	signedAt := now.UTC().Truncate(time.Second)
	var der []byte
	if !fresh {
		if der, err = p.sign(a, spec, revoked, number, signedAt, validity); err != nil {
			if castore.HSMFault(err) != nil {
				return ctrl.Result{RequeueAfter: crlRetryWhenCAUnhealthy}, nil // the health check reports it
			}
			if !crlRefused(err) {
				return ctrl.Result{}, err // retry with backoff
			}
			// The CA or its configuration rules the CRL out: say so on
			// the issuer, keep serving what was published (status keeps
			// describing it), and look again when the CA may have been
			// replaced. The delegated responder below is still kept.
			message = "no new CRL is signed: " + err.Error()
			if errors.Is(err, crl.ErrNoCRLSign) || errors.Is(err, crl.ErrNotCA) {
				message += "; reissue the CA with the cRLSign key usage"
			}
			message += " (OCSP still answers)"
			if !exists {
				cmName = ""
			}
		}
	}
	switch {
	case fresh || message != "":
		number.Sub(number, big.NewInt(1)) // the number of the CRL served, if any
		if message != "" {
			refreshAt = now.Add(crlRetryWhenCAUnhealthy)
		}
	default:
		thisUpdate, nextUpdate = signedAt, signedAt.Add(validity)
		ann := map[string]string{
			annIssuer:        k.String(),
			annCRLNumber:     number.String(),
			annCRLThisUpdate: thisUpdate.Format(time.RFC3339),
			annCRLNextUpdate: nextUpdate.Format(time.RFC3339),
			annCRLEntries:    entriesDigest,
			annCASHA256:      caHex,
		}
		if err := p.publish(ctx, home, name, &cm, exists, der, ann); err != nil {
			return ctrl.Result{}, err
		}
		logf.FromContext(ctx).Info("audit", "action", "crl", "issuer", k.String(), "crlNumber", number.String(),
			"entries", len(revoked), "bytes", len(der), "nextUpdate", nextUpdate)
		refreshAt = thisUpdate.Add(validity / 2)
	}
	if responderKind(spec) == quillv1.OCSPResponderDelegated {
		rotateAt, err := p.ensureResponder(ctx, home, k, a)
		if err != nil {
			return ctrl.Result{}, err
		}
		if rotateAt.Before(refreshAt) {
			refreshAt = rotateAt
		}
	}
	if err := p.recordStatus(ctx, obj, k, status, number, thisUpdate, nextUpdate, len(revoked), cmName, message); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: max(refreshAt.Sub(now), time.Second)}, nil
}

// crlRefused reports the errors of crl.Build that signing again cannot
// cure: the CA certificate or the issuer's configuration must change.
func crlRefused(err error) bool {
	for _, e := range []error{crl.ErrNoCRLSign, crl.ErrNotCA, crl.ErrInvalidIssuer, crl.ErrKeyMismatch, crl.ErrInvalidParams, crl.ErrInvalidEntry} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// publishedNumber is the CRL number inside the CRL that cm (and its parts)
// hold, or nil when there is none to read.
func (p *crlPublisher) publishedNumber(ctx context.Context, cm *corev1.ConfigMap) *big.Int {
	der, ok := crlFromConfigMaps(cm, func(name string) (*corev1.ConfigMap, bool) {
		var part corev1.ConfigMap
		err := p.reader.Get(ctx, types.NamespacedName{Namespace: cm.Namespace, Name: name}, &part)
		return &part, err == nil
	})
	if !ok {
		return nil
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil
	}
	return crl.Number
}

// sign builds the CRL with the issuer's signature scheme.
func (p *crlPublisher) sign(a *issuance.Authority, spec *quillv1.IssuerSpec, revoked []ledger.Record, number *big.Int, thisUpdate time.Time, validity time.Duration) ([]byte, error) {
	entries := make([]crl.Entry, len(revoked))
	for i, r := range revoked {
		entries[i] = crl.Entry{Serial: r.Serial, RevokedAt: r.RevokedAt, Reason: r.Reason, NotAfter: r.NotAfter}
	}
	sigAlg, err := issuance.SignatureAlgorithmFor(a.Certificate.PublicKey, spec.Issuance.RSASignatureScheme == quillv1.RSASignatureSchemePSS)
	if err != nil {
		return nil, err
	}
	return crl.Build(a.Certificate, a.Signer, entries, crl.Params{Number: number, ThisUpdate: thisUpdate, Validity: validity, SignatureAlgorithm: sigAlg})
}

// digestEntries fingerprints a sorted revoked set, so an unchanged set is
// not signed again.
func digestEntries(rs []ledger.Record) string {
	h := sha256.New()
	for _, r := range rs {
		fmt.Fprintf(h, "%s %d %d\n", ledger.SerialHex(r.Serial), r.RevokedAt.Unix(), r.Reason)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// publish writes the CRL to the ConfigMap: crl.der and, while it fits,
// crl.pem. A CRL too large for one object is split into numbered part
// ConfigMaps written first, and the main ConfigMap, written last, names
// their count and the whole CRL's digest, so readers never assemble a mix
// of two CRLs.
func (p *crlPublisher) publish(ctx context.Context, namespace, name string, cm *corev1.ConfigMap, exists bool, der []byte, ann map[string]string) error {
	sum := sha256.Sum256(der)
	ann[annCRLSHA256] = hex.EncodeToString(sum[:])
	var parts [][]byte
	for rest := der; len(rest) > 0; {
		n := min(len(rest), configMapPayloadLimit)
		parts, rest = append(parts, rest[:n]), rest[n:]
	}
	ann[annCRLParts] = strconv.Itoa(len(parts))
	for i := 1; i < len(parts); i++ {
		if err := p.putConfigMap(ctx, namespace, fmt.Sprintf("%s-%d", name, i), nil, map[string][]byte{crlPartKey: parts[i]}, map[string]string{annIssuer: ann[annIssuer], annCRLSHA256: ann[annCRLSHA256]}); err != nil {
			return err
		}
	}
	data := map[string]string{}
	binary := map[string][]byte{}
	if len(parts) == 1 {
		binary[crlKeyDER] = der
		if pemCRL := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}); len(pemCRL)+len(der) <= configMapPayloadLimit {
			data[crlKeyPEM] = string(pemCRL)
		}
	} else {
		binary[crlPartKey] = parts[0]
	}
	previous := 1
	if exists {
		if n, err := strconv.Atoi(cm.Annotations[annCRLParts]); err == nil {
			previous = n
		}
	} else {
		cm = nil
	}
	if err := p.putConfigMapFrom(ctx, namespace, name, cm, data, binary, ann); err != nil {
		return err
	}
	// Parts the new CRL does not need go only now: until the main
	// ConfigMap named the new count, readers could still be assembling
	// the previous CRL from them.
	for i := len(parts); i < previous; i++ {
		part := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: fmt.Sprintf("%s-%d", name, i)}}
		if err := p.client.Delete(ctx, part); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("removing CRL part ConfigMap %s/%s: %w", namespace, part.Name, err)
		}
	}
	return nil
}

func (p *crlPublisher) putConfigMap(ctx context.Context, namespace, name string, data map[string]string, binary map[string][]byte, ann map[string]string) error {
	var cm corev1.ConfigMap
	err := p.reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &cm)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading ConfigMap %s/%s: %w", namespace, name, err)
	}
	if err != nil {
		return p.putConfigMapFrom(ctx, namespace, name, nil, data, binary, ann)
	}
	return p.putConfigMapFrom(ctx, namespace, name, &cm, data, binary, ann)
}

// putConfigMapFrom creates the ConfigMap, or replaces the one read as
// existing (its resourceVersion guards against a concurrent writer).
func (p *crlPublisher) putConfigMapFrom(ctx context.Context, namespace, name string, existing *corev1.ConfigMap, data map[string]string, binary map[string][]byte, ann map[string]string) error {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{crlConfigMapLabel: "true"}, Annotations: ann},
		Data:       data,
		BinaryData: binary,
	}
	var err error
	if existing == nil {
		err = p.client.Create(ctx, cm)
	} else {
		cm.ResourceVersion = existing.ResourceVersion
		err = p.client.Update(ctx, cm)
	}
	if err != nil {
		return fmt.Errorf("publishing CRL ConfigMap %s/%s: %w", namespace, name, err)
	}
	return nil
}

// recordStatus writes status.revocation under its own field manager when it
// changed.
func (p *crlPublisher) recordStatus(ctx context.Context, obj client.Object, k ledger.IssuerKey, status *quillv1.IssuerStatus, number *big.Int, thisUpdate, nextUpdate time.Time, revoked int, cmName, message string) error {
	want := &quillv1.RevocationStatus{
		Message:             message,
		RevokedCertificates: revoked,
		CRLConfigMap:        cmName,
	}
	if number.Sign() > 0 {
		want.CRLNumber = number.String()
		want.CRLThisUpdate, want.CRLNextUpdate = &metav1.Time{Time: thisUpdate}, &metav1.Time{Time: nextUpdate}
	}
	if p.baseURL != "" {
		want.CRLURL, want.OCSPURL = RevocationURLs(p.baseURL, k)
	}
	if have := status.Revocation; have != nil && have.CRLNumber == want.CRLNumber && have.RevokedCertificates == want.RevokedCertificates &&
		have.CRLConfigMap == want.CRLConfigMap && have.CRLURL == want.CRLURL && have.OCSPURL == want.OCSPURL &&
		have.Message == want.Message {
		return nil
	}
	patch := map[string]any{
		"apiVersion": quillv1.GroupVersion.String(),
		"kind":       k.Kind,
		"metadata":   map[string]any{"name": obj.GetName(), "namespace": obj.GetNamespace()},
		"status":     map[string]any{"revocation": want},
	}
	body, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	if err := p.client.Status().Patch(ctx, obj, client.RawPatch(types.ApplyPatchType, body), client.ForceOwnership, client.FieldOwner(crlStatusFieldOwner)); err != nil {
		return fmt.Errorf("recording revocation status: %w", err)
	}
	return nil
}

// crlFromConfigMaps assembles the DER CRL that main (and its parts, read
// through get) hold, checking the published digest. ok is false while the
// parts of a large CRL are not all there yet.
func crlFromConfigMaps(main *corev1.ConfigMap, get func(name string) (*corev1.ConfigMap, bool)) (der []byte, ok bool) {
	if d, ok := main.BinaryData[crlKeyDER]; ok {
		der = d
	} else {
		n, err := strconv.Atoi(main.Annotations[annCRLParts])
		if err != nil || n < 1 {
			return nil, false
		}
		der = append(der, main.BinaryData[crlPartKey]...)
		for i := 1; i < n; i++ {
			part, found := get(fmt.Sprintf("%s-%d", main.Name, i))
			if !found || part.Annotations[annCRLSHA256] != main.Annotations[annCRLSHA256] {
				return nil, false
			}
			der = append(der, part.BinaryData[crlPartKey]...)
		}
	}
	sum := sha256.Sum256(der)
	if hex.EncodeToString(sum[:]) != main.Annotations[annCRLSHA256] {
		return nil, false
	}
	if _, err := x509.ParseRevocationList(der); err != nil {
		return nil, false
	}
	return der, true
}

// delegatedResponderValidity is the lifetime of a delegated OCSP responder
// certificate; it is replaced after two thirds of it.
const delegatedResponderValidity = 7 * 24 * time.Hour

// ensureResponder keeps a delegated OCSP responder certificate, issued by
// the issuer's current CA, in the issuer's responder Secret, and returns
// when it next needs rotating. Like every certificate signed with the CA
// key, a new responder certificate is recorded in the ledger before it is
// stored (a failure discards it and the reconcile is retried) and gets an
// audit line.
func (p *crlPublisher) ensureResponder(ctx context.Context, home string, k ledger.IssuerKey, a *issuance.Authority) (time.Time, error) {
	now := p.clock.Now()
	name := OCSPResponderSecretName(k.Name)
	var sec corev1.Secret
	err := p.reader.Get(ctx, types.NamespacedName{Namespace: home, Name: name}, &sec)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return time.Time{}, fmt.Errorf("reading OCSP responder Secret: %w", err)
	}
	if exists {
		if sec.Annotations[annIssuer] != k.String() {
			return time.Time{}, fmt.Errorf("Secret %s/%s belongs to %q, not %s: rename one of them", home, name, sec.Annotations[annIssuer], k)
		}
		if cert, _, err := parseResponderSecret(&sec, a, now); err == nil && !ocspserver.NeedsRotation(cert, now) {
			life := cert.NotAfter.Sub(cert.NotBefore)
			return cert.NotBefore.Add(life * 2 / 3), nil
		}
	}
	cert, key, err := ocspserver.NewDelegatedResponder(a.Certificate, a.Signer, delegatedResponderValidity, now, issuance.ECDSAP256)
	if err != nil {
		if hf := castore.HSMFault(err); hf != nil {
			return now.Add(crlRetryWhenCAUnhealthy), nil
		}
		return time.Time{}, fmt.Errorf("issuing the delegated OCSP responder: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return time.Time{}, err
	}
	if err := p.recordResponder(ctx, home, name, k, cert, now); err != nil {
		return time.Time{}, err // retry with backoff; this certificate is discarded
	}
	sec = corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: home, Name: name, ResourceVersion: sec.ResourceVersion,
			Annotations: map[string]string{annIssuer: k.String()}},
		Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{
			corev1.TLSCertKey:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
			corev1.TLSPrivateKeyKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		},
	}
	if exists {
		err = p.client.Update(ctx, &sec)
	} else {
		err = p.client.Create(ctx, &sec)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("storing the delegated OCSP responder: %w", err)
	}
	keyAlg, _ := issuance.KeyAlgorithmOf(cert.PublicKey)
	p.audit.IssueResponder(k, home, name, string(keyAlg), cert)
	return cert.NotBefore.Add(cert.NotAfter.Sub(cert.NotBefore) * 2 / 3), nil
}

// recordResponder writes the ledger record of a delegated responder
// certificate, kept in the Secret home/secret, before the certificate is
// used.
func (p *crlPublisher) recordResponder(ctx context.Context, home, secret string, k ledger.IssuerKey, cert *x509.Certificate, now time.Time) error {
	e, err := ledger.NewEntry(k, home, cert, now, ledger.Origin{Kind: quillv1.OriginKindOCSPResponder, Namespace: home, Name: secret})
	if err != nil {
		return err
	}
	if err := p.client.Create(ctx, e); err != nil {
		return fmt.Errorf("recording OCSP responder serial %s in the issuance ledger: %w", e.Spec.SerialNumber, err)
	}
	p.index.PutCreated(e)
	return nil
}
