package revocation

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
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/internal/classify"
	"github.com/quill-pki/quill/controllers/internal/issuers"
	"github.com/quill-pki/quill/controllers/revocationdata"
	"github.com/quill-pki/quill/pkg/audit"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/crl"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/kms"
	"github.com/quill-pki/quill/pkg/ledger"
	"github.com/quill-pki/quill/pkg/ocspserver"
	"github.com/quill-pki/quill/pkg/owned"
)

// RBAC for CRL publishing.
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;delete

// Defaults of an issuer's revocation settings, and the publisher's limits.
const (
	DefaultCRLValidity      = 24 * time.Hour
	DefaultCRLBatchDelay    = 5 * time.Second
	crlStatusFieldOwner     = issuers.FieldOwner + "/revocation-status"
	configMapPayloadLimit   = 900 << 10 // well under the API server's ~1.5 MiB object limit
	crlRetryWhenCAUnhealthy = time.Minute
	// crlRetryWhenNameTaken is how often an issuer whose CRL or responder
	// name another object holds looks again: that object is not watched.
	crlRetryWhenNameTaken = time.Minute
)

// Event action of the CRL publisher's events on the issuer (reason
// quillv1.ReasonNameCollision).
const eventActionPublishCRL = "PublishCRL"

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
	client client.Client
	reader client.Reader
	store  *castore.Store
	index  *ledger.Index
	// journal records each delegated responder certificate in the ledger.
	journal          *ledger.Journal
	clusterNamespace string
	clock            clock.PassiveClock
	baseURL          string
	// audit logs each delegated responder certificate signed; the zero
	// value logs nothing.
	audit audit.Logger
	// recorder tells the issuer of a name collision; nil tells nothing
	// (status.revocation.message still does).
	recorder events.EventRecorder
	// partSize is the most CRL bytes one ConfigMap holds;
	// zero means configMapPayloadLimit. Tests set it small so that a CRL
	// of a few entries needs parts.
	partSize int

	mu     sync.Mutex
	delays map[quillv1.IssuerID]time.Duration
	// awaitingLedger holds the issuers whose reconcile found the ledger
	// not read yet: the index's first full read fires their trigger
	// without the batch delay, so that a restarted replica's CRL is
	// current the moment the ledger is.
	awaitingLedger map[quillv1.IssuerID]bool
	trigger        *issuers.Trigger
}

// legacyCRL recognises a CRL ConfigMap (or part) that a Quill from before
// the ownership mark published for owner: it carries both the CRL label and
// the issuer annotation Quill wrote, naming owner.
func legacyCRL(obj client.Object, owner string) bool {
	return obj.GetLabels()[revocationdata.ConfigMapLabel] == "true" && obj.GetAnnotations()[revocationdata.AnnIssuer] == owner
}

// legacyResponder recognises a delegated OCSP responder Secret that a Quill
// from before the ownership mark wrote for owner.
func legacyResponder(obj client.Object, owner string) bool {
	return obj.GetAnnotations()[revocationdata.AnnIssuer] == owner
}

func (p *crlPublisher) setup(mgr ctrl.Manager) error {
	p.delays = map[quillv1.IssuerID]time.Duration{}
	p.awaitingLedger = map[quillv1.IssuerID]bool{}
	p.trigger = issuers.NewTrigger(p.batchDelay)
	p.index.Subscribe(func(c ledger.Change) {
		if c.RevocationChanged {
			p.trigger.Fire(c.Issuer)
		}
	})
	for _, kind := range quillv1.IssuerKinds() {
		if err := ctrl.NewControllerManagedBy(mgr).Named("crl-"+issuers.ControllerSuffix(kind)).For(kind, issuers.SpecOrCAChanges).
			WatchesRawSource(p.trigger.Source(kind)).
			Complete(&crlReconciler{p: p, kind: kind}); err != nil {
			return err
		}
	}
	return nil
}

// batchDelay is how long after a change of k's revoked set its new CRL is
// signed: the issuer's batch delay, as its last reconcile saw it.
func (p *crlPublisher) batchDelay(k quillv1.IssuerID) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.awaitingLedger[k] {
		return 0
	}
	if d, ok := p.delays[k]; ok {
		return d
	}
	return DefaultCRLBatchDelay
}

type crlReconciler struct {
	p    *crlPublisher
	kind quillv1.GenericIssuer
}

// crlRun is one reconcile of an issuer's CRL: what it read and decided, in
// the order of the steps of Reconcile.
type crlRun struct {
	obj  quillv1.GenericIssuer
	k    quillv1.IssuerID
	home string
	a    *issuance.Authority
	now  time.Time

	// From the ledger and the CA.
	validity      time.Duration
	revoked       []ledger.Record
	entriesDigest string
	caHex         string

	// The CRL ConfigMap as published.
	name   string
	cm     corev1.ConfigMap
	exists bool

	// The CRL served after this run: its number, updates and ConfigMap
	// ("" when there is none); message says why no new CRL could be
	// signed, and refreshAt is when to look again.
	number                 *big.Int
	thisUpdate, nextUpdate time.Time
	cmName, message        string
	refreshAt              time.Time
	// taken is an object under a name the CRL or the responder needs that
	// is not the issuer's (owned.ErrCollision): left alone, and reported.
	taken error
}

// Reconcile keeps an issuer's CRL and delegated OCSP responder current, in
// named steps: read what is published, sign and publish a new CRL when
// needed, rotate the responder, and write status.revocation once.
func (r *crlReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	p := r.p
	obj, k := issuers.At(r.kind, req.NamespacedName)
	if err := p.client.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err) // deleted: nothing to publish; else retry with backoff
	}
	p.rememberBatchDelay(k, obj.GetSpec())
	if !p.index.Synced() {
		p.mu.Lock()
		if p.awaitingLedger == nil {
			p.awaitingLedger = map[quillv1.IssuerID]bool{}
		}
		p.awaitingLedger[k] = true
		p.mu.Unlock()
		return ctrl.Result{RequeueAfter: time.Second}, nil // a CRL from a partly read ledger would miss revocations
	}
	p.mu.Lock()
	delete(p.awaitingLedger, k)
	p.mu.Unlock()
	run := &crlRun{obj: obj, k: k, home: k.HomeNamespace(p.clusterNamespace), now: p.clock.Now()}
	a, err := p.store.Load(ctx, run.home, obj.GetSpec().CA)
	if err != nil {
		// The issuer's health check reports what is wrong with the CA; the
		// CRL waits for it and the last one published stays served.
		logf.FromContext(ctx).V(1).Info("CRL not signed: CA unavailable", "error", err.Error())
		return ctrl.Result{RequeueAfter: crlRetryWhenCAUnhealthy}, nil // the CA may be repaired
	}
	run.a = a
	p.collect(run)
	if err := p.readPublished(ctx, run); err != nil {
		return ctrl.Result{}, err // retry with backoff
	}
	if run.taken == nil {
		if err := p.signAndPublish(ctx, run); err != nil && !p.nameTaken(run, err) {
			return classify.Result(err, crlRetryWhenCAUnhealthy) // an HSM fault waits for the health check; else backoff
		}
	}
	if err := p.rotateResponder(ctx, run); err != nil && !p.nameTaken(run, err) {
		return ctrl.Result{}, err // retry with backoff
	}
	if run.taken != nil {
		p.reportTaken(obj, run)
	}
	if err := p.recordStatus(ctx, run); err != nil {
		return ctrl.Result{}, err // retry with backoff
	}
	return ctrl.Result{RequeueAfter: max(run.refreshAt.Sub(run.now), time.Second)}, nil // refresh at half-life, or rotate; a taken name within a minute
}

// nameTaken records err in run when it is a name collision
// (owned.ErrCollision), which the reconcile reports rather than retries.
func (p *crlPublisher) nameTaken(run *crlRun, err error) bool {
	if !errors.Is(err, owned.ErrCollision) {
		return false
	}
	if run.taken == nil {
		run.taken = err
	}
	return true
}

// reportTaken tells the issuer, in status.revocation.message and an event,
// that an object under a name its CRL or responder needs is not its own,
// and looks again within crlRetryWhenNameTaken. Whatever Quill published
// before stays served; the object is left alone.
func (p *crlPublisher) reportTaken(obj quillv1.GenericIssuer, run *crlRun) {
	msg := quillv1.ReasonNameCollision + ": " + run.taken.Error()
	if run.message != "" {
		msg = run.message + "; " + msg
	}
	run.message = msg
	if p.recorder != nil {
		p.recorder.Eventf(obj, nil, corev1.EventTypeWarning, quillv1.ReasonNameCollision, eventActionPublishCRL, "%s", run.taken)
	}
	// A refresh already due (the CRL could not be replaced) must not turn
	// into a retry every second.
	if retry := run.now.Add(crlRetryWhenNameTaken); !run.refreshAt.After(run.now) || retry.Before(run.refreshAt) {
		run.refreshAt = retry
	}
}

// rememberBatchDelay keeps the issuer's batch delay for the trigger, which
// runs without reading the issuer.
func (p *crlPublisher) rememberBatchDelay(k quillv1.IssuerID, spec *quillv1.IssuerSpec) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delays[k] = crlBatchDelay(spec)
}

// collect reads the revoked set from the ledger index and fingerprints it
// and the CA, so that an unchanged CRL is not signed again.
func (p *crlPublisher) collect(run *crlRun) {
	run.validity = crlValidity(run.obj.GetSpec())
	run.revoked = p.index.Revoked(run.k, run.now)
	sort.Slice(run.revoked, func(i, j int) bool { return run.revoked[i].Serial.Cmp(run.revoked[j].Serial) < 0 })
	run.entriesDigest = digestEntries(run.revoked)
	caDigest := sha256.Sum256(run.a.Certificate.Raw)
	run.caHex = hex.EncodeToString(caDigest[:])
}

// readPublished reads the CRL ConfigMap and works out the next CRL number
// and the published CRL's updates.
func (p *crlPublisher) readPublished(ctx context.Context, run *crlRun) error {
	run.name = revocationdata.CRLConfigMapName(run.k.Name)
	run.cmName = run.name
	err := p.reader.Get(ctx, types.NamespacedName{Namespace: run.home, Name: run.name}, &run.cm)
	run.exists = err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading CRL ConfigMap: %w", err)
	}
	cm := &run.cm
	run.number = big.NewInt(1)
	if run.exists {
		if err := owned.Check("ConfigMap", cm, run.k.String(), legacyCRL); err != nil {
			// Not the issuer's: nothing of it is read or written, and no
			// CRL is published until it is renamed or deleted.
			run.taken, run.exists, run.cmName = err, false, ""
			run.cm = corev1.ConfigMap{}
		}
	}
	if run.exists {
		// CRL numbers only grow: the next one follows the larger of the
		// annotation and the number inside the published CRL, so an edited
		// or damaged ConfigMap cannot send it backwards.
		if n, ok := new(big.Int).SetString(cm.Annotations[revocationdata.AnnCRLNumber], 10); ok {
			run.number.Add(n, big.NewInt(1))
		}
		if n := p.publishedNumber(ctx, cm); n != nil && n.Cmp(run.number) >= 0 {
			run.number.Add(n, big.NewInt(1))
		}
		run.thisUpdate, _ = time.Parse(time.RFC3339, cm.Annotations[revocationdata.AnnCRLThisUpdate])
		run.nextUpdate, _ = time.Parse(time.RFC3339, cm.Annotations[revocationdata.AnnCRLNextUpdate])
	}
	// A deleted ConfigMap must not restart the numbering either: the last
	// number recorded on the issuer is a floor.
	if r := run.obj.GetStatus().Revocation; r != nil {
		if n, ok := new(big.Int).SetString(r.CRLNumber, 10); ok && n.Cmp(run.number) >= 0 {
			run.number.Add(n, big.NewInt(1))
		}
	}
	run.refreshAt = run.thisUpdate.Add(run.nextUpdate.Sub(run.thisUpdate) / 2)
	if run.taken != nil {
		run.number.Sub(run.number, big.NewInt(1)) // nothing is signed: the number last recorded stands
	}
	return nil
}

// fresh reports whether the published CRL still holds: same revoked set,
// same CA, same validity, and not yet at half-life.
func (run *crlRun) fresh() bool {
	cm := &run.cm
	// A CRL an earlier Quill published without the ownership mark is
	// published again, so that it and its parts carry the mark that
	// readers require.
	return run.exists && owned.Marked(cm, run.k.String()) &&
		cm.Annotations[revocationdata.AnnCRLEntries] == run.entriesDigest && cm.Annotations[revocationdata.AnnCASHA256] == run.caHex &&
		run.nextUpdate.Sub(run.thisUpdate) == run.validity && run.now.Before(run.refreshAt)
}

// signAndPublish signs and publishes a new CRL unless the published one is
// fresh. A CRL the CA or its configuration rules out is no error: it is
// told in run.message and the last published CRL stays served. An HSM
// fault comes back classified as the issuer's fault.
func (p *crlPublisher) signAndPublish(ctx context.Context, run *crlRun) error {
	if run.fresh() {
		run.number.Sub(run.number, big.NewInt(1)) // the number of the CRL served
		return nil
	}
	signedAt := run.now.UTC().Truncate(time.Second)
	der, err := p.sign(run.a, run.obj.GetSpec(), run.revoked, run.number, signedAt, run.validity)
	if err != nil {
		if hf := castore.HSMFault(err); hf != nil {
			return hf // the health check reports it
		}
		if !crlRefused(err) {
			return err
		}
		// The CA or its configuration rules the CRL out: say so on the
		// issuer, keep serving what was published (status keeps describing
		// it), and look again when the CA may have been replaced. The
		// delegated responder is still kept.
		run.message = "no new CRL is signed: " + err.Error()
		if errors.Is(err, crl.ErrNoCRLSign) || errors.Is(err, crl.ErrNotCA) {
			run.message += "; reissue the CA with the cRLSign key usage"
		}
		run.message += " (OCSP still answers)"
		if !run.exists {
			run.cmName = ""
		}
		run.number.Sub(run.number, big.NewInt(1)) // the number of the CRL served, if any
		run.refreshAt = run.now.Add(crlRetryWhenCAUnhealthy)
		return nil
	}
	thisUpdate, nextUpdate := signedAt, signedAt.Add(run.validity)
	ann := map[string]string{
		revocationdata.AnnIssuer:        run.k.String(),
		revocationdata.AnnCRLNumber:     run.number.String(),
		revocationdata.AnnCRLThisUpdate: thisUpdate.Format(time.RFC3339),
		revocationdata.AnnCRLNextUpdate: nextUpdate.Format(time.RFC3339),
		revocationdata.AnnCRLEntries:    run.entriesDigest,
		revocationdata.AnnCASHA256:      run.caHex,
	}
	if err := p.publish(ctx, run.home, run.name, &run.cm, run.exists, der, ann); err != nil {
		if errors.Is(err, owned.ErrCollision) {
			// A part's name is taken: nothing was written, and status
			// keeps describing the CRL still served, if any.
			run.number.Sub(run.number, big.NewInt(1))
			if !run.exists {
				run.cmName = ""
			}
		}
		return err
	}
	run.thisUpdate, run.nextUpdate = thisUpdate, nextUpdate
	p.audit.SignCRL(run.k, run.number.String(), len(run.revoked), len(der), run.nextUpdate)
	run.refreshAt = run.thisUpdate.Add(run.validity / 2)
	return nil
}

// rotateResponder keeps the delegated OCSP responder of an issuer that
// uses one, and looks again when it is due for rotation.
func (p *crlPublisher) rotateResponder(ctx context.Context, run *crlRun) error {
	if revocationdata.ResponderKind(run.obj.GetSpec()) != quillv1.OCSPResponderDelegated {
		return nil
	}
	rotateAt, err := p.ensureResponder(ctx, run.home, run.k, run.a)
	if err != nil {
		return err
	}
	if rotateAt.Before(run.refreshAt) {
		run.refreshAt = rotateAt
	}
	return nil
}

// crlRefused reports the errors of crl.Build that signing again cannot
// cure: the CA certificate or the issuer's configuration must change.
func crlRefused(err error) bool {
	for _, e := range []error{crl.ErrNoCRLSign, crl.ErrNotCA, crl.ErrInvalidIssuer, kms.ErrKeyMismatch, crl.ErrInvalidParams, crl.ErrInvalidEntry} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// publishedNumber is the CRL number inside the CRL that cm (and its parts)
// hold, or nil when there is none to read.
func (p *crlPublisher) publishedNumber(ctx context.Context, cm *corev1.ConfigMap) *big.Int {
	der, ok := revocationdata.CRLFromConfigMaps(cm, func(name string) (*corev1.ConfigMap, bool) {
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

// sign builds the CRL with the issuer's signature scheme, through the CA's
// one signing path.
func (p *crlPublisher) sign(a *issuance.Authority, spec *quillv1.IssuerSpec, revoked []ledger.Record, number *big.Int, thisUpdate time.Time, validity time.Duration) ([]byte, error) {
	entries := make([]crl.Entry, len(revoked))
	for i, r := range revoked {
		entries[i] = crl.Entry{Serial: r.Serial, RevokedAt: r.RevokedAt, Reason: r.Reason, NotAfter: r.NotAfter}
	}
	return a.SignCRL(issuance.CRLRequest{
		Entries:    entries,
		Number:     number,
		ThisUpdate: thisUpdate,
		Validity:   validity,
		RSAPSS:     spec.Issuance.RSASignatureScheme == quillv1.RSASignatureSchemePSS,
	})
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
// of two CRLs. Every ConfigMap it writes or deletes is the issuer's (the
// ownership rule, pkg/owned; the issuer is ann's AnnIssuer): a part name
// that another object holds is a collision, found before anything is
// written, so the CRL served stays whole; a stale part name that another
// object holds is left alone.
func (p *crlPublisher) publish(ctx context.Context, namespace, name string, cm *corev1.ConfigMap, exists bool, der []byte, ann map[string]string) error {
	owner := ann[revocationdata.AnnIssuer]
	sum := sha256.Sum256(der)
	ann[revocationdata.AnnCRLSHA256] = hex.EncodeToString(sum[:])
	size := p.partSize
	if size <= 0 {
		size = configMapPayloadLimit
	}
	var parts [][]byte
	for rest := der; len(rest) > 0; {
		n := min(len(rest), size)
		parts, rest = append(parts, rest[:n]), rest[n:]
	}
	ann[revocationdata.AnnCRLParts] = strconv.Itoa(len(parts))
	existing := make([]*corev1.ConfigMap, len(parts))
	for i := 1; i < len(parts); i++ {
		part, err := p.readConfigMap(ctx, namespace, partName(name, i))
		if err != nil {
			return err
		}
		if part != nil {
			if err := owned.Check("ConfigMap", part, owner, legacyCRL); err != nil {
				return err
			}
		}
		existing[i] = part
	}
	for i := 1; i < len(parts); i++ {
		if err := p.putConfigMapFrom(ctx, namespace, partName(name, i), existing[i], nil, map[string][]byte{revocationdata.KeyPart: parts[i]}, map[string]string{revocationdata.AnnIssuer: owner, revocationdata.AnnCRLSHA256: ann[revocationdata.AnnCRLSHA256]}); err != nil {
			return err
		}
	}
	data := map[string]string{}
	binary := map[string][]byte{}
	if len(parts) == 1 {
		binary[revocationdata.KeyDER] = der
		if pemCRL := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}); len(pemCRL)+len(der) <= size {
			data[revocationdata.KeyPEM] = string(pemCRL)
		}
	} else {
		binary[revocationdata.KeyPart] = parts[0]
	}
	previous := 1
	if exists {
		if n, err := strconv.Atoi(cm.Annotations[revocationdata.AnnCRLParts]); err == nil {
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
		part, err := p.readConfigMap(ctx, namespace, partName(name, i))
		if err != nil {
			return err
		}
		if part == nil {
			continue
		}
		err = owned.Delete(ctx, p.client, "ConfigMap", part, owner, legacyCRL)
		if errors.Is(err, owned.ErrCollision) || apierrors.IsConflict(err) {
			continue // not the issuer's, or replaced since it was read: not Quill's to delete
		}
		if client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("removing CRL part ConfigMap %s/%s: %w", namespace, part.Name, err)
		}
	}
	return nil
}

// partName is the name of the i-th part ConfigMap of the CRL in name.
func partName(name string, i int) string { return fmt.Sprintf("%s-%d", name, i) }

// readConfigMap reads a ConfigMap from the API server; nil when there is
// none.
func (p *crlPublisher) readConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error) {
	var cm corev1.ConfigMap
	err := p.reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &cm)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading ConfigMap %s/%s: %w", namespace, name, err)
	}
	return &cm, nil
}

// putConfigMapFrom creates the ConfigMap with the ownership mark naming
// ann's issuer, or replaces the one read as existing when it is the
// issuer's (its resourceVersion guards against a concurrent writer).
func (p *crlPublisher) putConfigMapFrom(ctx context.Context, namespace, name string, existing *corev1.ConfigMap, data map[string]string, binary map[string][]byte, ann map[string]string) error {
	owner := ann[revocationdata.AnnIssuer]
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{revocationdata.ConfigMapLabel: "true", quillv1.LabelManagedBy: quillv1.ManagedByQuill}, Annotations: ann},
		Data:       data,
		BinaryData: binary,
	}
	var err error
	if existing == nil {
		err = owned.Create(ctx, p.client, cm, owner)
	} else {
		err = owned.Update(ctx, p.client, "ConfigMap", existing, cm, owner, legacyCRL)
	}
	if errors.Is(err, owned.ErrCollision) {
		return err
	}
	if err != nil {
		return fmt.Errorf("publishing CRL ConfigMap %s/%s: %w", namespace, name, err)
	}
	return nil
}

// recordStatus writes status.revocation, the run's one status write,
// under its own field manager when it changed.
func (p *crlPublisher) recordStatus(ctx context.Context, run *crlRun) error {
	want := &quillv1.RevocationStatus{
		Message:             run.message,
		RevokedCertificates: len(run.revoked),
		CRLConfigMap:        run.cmName,
	}
	if run.number.Sign() > 0 {
		want.CRLNumber = run.number.String()
		want.CRLThisUpdate, want.CRLNextUpdate = &metav1.Time{Time: run.thisUpdate}, &metav1.Time{Time: run.nextUpdate}
	}
	if p.baseURL != "" {
		want.CRLURL, want.OCSPURL = revocationdata.URLs(p.baseURL, run.k)
	}
	if have := run.obj.GetStatus().Revocation; have != nil && have.CRLNumber == want.CRLNumber && have.RevokedCertificates == want.RevokedCertificates &&
		have.CRLConfigMap == want.CRLConfigMap && have.CRLURL == want.CRLURL && have.OCSPURL == want.OCSPURL &&
		have.Message == want.Message {
		return nil
	}
	patch := map[string]any{
		"apiVersion": quillv1.GroupVersion.String(),
		"kind":       run.k.Kind,
		"metadata":   map[string]any{"name": run.obj.GetName(), "namespace": run.obj.GetNamespace()},
		"status":     map[string]any{"revocation": want},
	}
	body, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	if err := p.client.Status().Patch(ctx, run.obj, client.RawPatch(types.ApplyPatchType, body), client.ForceOwnership, client.FieldOwner(crlStatusFieldOwner)); err != nil {
		return fmt.Errorf("recording revocation status: %w", err)
	}
	return nil
}

// ensureResponder keeps a delegated OCSP responder certificate, issued by
// the issuer's current CA, in the issuer's responder Secret, and returns
// when it next needs rotating. Like every certificate signed with the CA
// key, a new responder certificate is recorded in the ledger before it is
// stored (a failure discards it and the reconcile is retried) and gets an
// audit line.
func (p *crlPublisher) ensureResponder(ctx context.Context, home string, k quillv1.IssuerID, a *issuance.Authority) (time.Time, error) {
	now := p.clock.Now()
	name := revocationdata.OCSPResponderSecretName(k.Name)
	var sec corev1.Secret
	err := p.reader.Get(ctx, types.NamespacedName{Namespace: home, Name: name}, &sec)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return time.Time{}, fmt.Errorf("reading OCSP responder Secret: %w", err)
	}
	if exists {
		if err := owned.Check("Secret", &sec, k.String(), legacyResponder); err != nil {
			return time.Time{}, err // before anything is signed for it
		}
		if cert, _, err := revocationdata.ParseResponderSecret(&sec, a, now); err == nil && !ocspserver.NeedsRotation(cert, now) {
			life := cert.NotAfter.Sub(cert.NotBefore)
			return cert.NotBefore.Add(life * 2 / 3), nil
		}
	}
	issued, key, err := a.IssueResponder(issuance.DefaultResponderValidity, issuance.ECDSAP256, now)
	if err != nil {
		if hf := castore.HSMFault(err); hf != nil {
			return now.Add(crlRetryWhenCAUnhealthy), nil
		}
		return time.Time{}, fmt.Errorf("issuing the delegated OCSP responder: %w", err)
	}
	cert := issued.Certificate
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return time.Time{}, err
	}
	if err := p.recordResponder(ctx, home, name, k, cert, now); err != nil {
		return time.Time{}, err // retry with backoff; this certificate is discarded
	}
	next := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: home, Name: name,
			Annotations: map[string]string{revocationdata.AnnIssuer: k.String()}},
		Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{
			corev1.TLSCertKey:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
			corev1.TLSPrivateKeyKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		},
	}
	if exists {
		err = owned.Update(ctx, p.client, "Secret", &sec, next, k.String(), legacyResponder)
	} else {
		err = owned.Create(ctx, p.client, next, k.String())
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
func (p *crlPublisher) recordResponder(ctx context.Context, home, secret string, k quillv1.IssuerID, cert *x509.Certificate, now time.Time) error {
	e, err := ledger.EntryOf(cert, now, ledger.Origin{Kind: quillv1.OriginKindOCSPResponder, Namespace: home, Name: secret})
	if err != nil {
		return err
	}
	// The responder's key is in its Secret: the ledger need not keep the
	// certificate for recall, and sealing drops it.
	if _, err := p.journal.Record(ctx, k, home, e); err != nil {
		return fmt.Errorf("recording OCSP responder serial %s in the issuance ledger: %w", e.Serial, err)
	}
	return nil
}
