package castore

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/kms"
)

// A PIN a token refused is never presented to that token again until the
// PIN Secret holds another PIN: real HSMs lock the PIN after a few
// failures, and the count is the token's, whatever issuer, key or
// controller process presents it. So a refusal is keyed by what the token
// and the PIN are (tokenPIN), not by the issuer or key that met it, and is
// kept where every process finds it (RefusalLog: the status of the issuers
// using that token and PIN) as well as in memory.
//
// Neither place holds the PIN or anything it can be recovered from: the
// status names the PIN Secret's version (UID and resourceVersion), which
// anyone reading the issuer may see; memory adds an HMAC of the PIN under
// a key that lives and dies with the process, so that a Secret edited
// without changing the PIN (a label, an annotation) does not count as a new
// PIN.

// defaultRefusalFieldOwner writes status.pinRefusal when RefusalLog names
// no field owner.
const defaultRefusalFieldOwner = "quill.dev/pin-refusal"

// tokenPIN identifies a PIN presented to a token: the token (module name
// and label or serial, as a key-less pkcs11: URI) and the Secret key the
// PIN is read from.
type tokenPIN struct {
	namespace string // of the PIN Secret, the issuer's home
	token     string
	pinName   string
	pinKey    string
}

func (tp tokenPIN) String() string {
	return fmt.Sprintf("%s with the PIN in secret %s/%s (key %q)", tp.token, tp.namespace, tp.pinName, tp.pinKey)
}

// tokenPIN is the token and PIN of a source whose key is on a PKCS#11
// token; ok is false for any other source.
func (s source) tokenPIN() (tp tokenPIN, ok bool) {
	u, ok := s.key.(*kms.PKCS11URI)
	if !ok {
		return tokenPIN{}, false
	}
	token := kms.PKCS11URI{Token: u.Token, Serial: u.Serial, ModuleName: u.ModuleName, ModulePath: u.ModulePath}
	return tokenPIN{namespace: s.namespace, token: token.String(), pinName: s.pin.Name, pinKey: s.pin.Key}, true
}

// presented is a PIN about to be presented: where it comes from, the
// version of its Secret, and its HMAC under this process's key.
type presented struct {
	tp  tokenPIN
	uid types.UID
	rv  string
	mac []byte
	// acceptedBy is set when the token accepted the PIN at login.
	acceptedBy *atomic.Bool
}

// refusal is a PIN a token refused, by the version of its Secret.
type refusal struct {
	uid types.UID
	rv  string
	// mac is the refused PIN's HMAC; nil when the refusal was read from
	// an issuer's status and no version holding it has been read since.
	mac []byte
	at  time.Time
	// err is what the token answered, when this process presented it.
	err error
	// persisted says the RefusalLog holds this version.
	persisted bool
}

// refusalMemory is a Store's own record of refused PINs. The zero value is
// ready to use.
type refusalMemory struct {
	mu      sync.Mutex
	key     []byte // HMAC key; random, never leaves the process
	byToken map[tokenPIN]refusal
}

func (m *refusalMemory) mac(pin string) []byte {
	m.mu.Lock()
	if m.key == nil {
		m.key = make([]byte, 32)
		_, _ = rand.Read(m.key) // never fails (crypto/rand)
	}
	h := hmac.New(sha256.New, m.key)
	m.mu.Unlock()
	h.Write([]byte(pin))
	return h.Sum(nil)
}

func (m *refusalMemory) get(tp tokenPIN) (refusal, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.byToken[tp]
	return r, ok
}

func (m *refusalMemory) put(tp tokenPIN, r refusal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byToken == nil {
		m.byToken = map[tokenPIN]refusal{}
	}
	m.byToken[tp] = r
}

func (m *refusalMemory) drop(tp tokenPIN) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.byToken, tp)
}

// lockID serialises the presentations of one PIN to one token across
// every CA source (Store.lock), so that issuers with different keys on the
// same token do not each present a PIN the token is refusing.
func (tp tokenPIN) lockID() string { return "pin\x00" + tp.String() }

// refusedBefore returns the PINIncorrect error to answer instead of
// presenting p, or nil when p may be presented: it is not a PIN the token
// refused. Only a PIN never seen refused, or a new version of the PIN
// Secret whose content may differ, is presented. A plain error means the
// refusals could not be read, and nothing may be presented yet.
func (s *Store) refusedBefore(ctx context.Context, p presented) error {
	r, ok := s.refused.get(p.tp)
	if !ok && s.Refusals != nil {
		rec, err := s.Refusals.find(ctx, p.tp, p.uid, p.rv)
		if err != nil {
			return err
		}
		if rec != nil {
			r, ok = refusal{uid: p.uid, rv: p.rv, at: rec.RefusedAt.Time, persisted: true}, true
		}
	}
	if !ok || r.uid != p.uid {
		return nil // never refused, or a new Secret
	}
	switch {
	case r.rv == p.rv:
		// The version refused: its content is the PIN refused.
		r.mac = p.mac
	case r.mac != nil && hmac.Equal(r.mac, p.mac):
		// The Secret changed, the PIN did not (an edit of its
		// metadata). Record the version that still holds it, so that
		// another process knows it too.
		r.rv, r.persisted = p.rv, false
	default:
		return nil // another PIN, or one this process cannot compare
	}
	if !r.persisted {
		r.persisted = s.persistRefusal(ctx, p.tp, r)
	}
	s.refused.put(p.tp, r)
	return refusedError(p.tp, r)
}

// refuse remembers that the token refused p, in memory and in the
// RefusalLog, and returns the classified error hf to answer.
func (s *Store) refuse(ctx context.Context, p presented, hf error) error {
	r := refusal{uid: p.uid, rv: p.rv, mac: p.mac, at: s.now(), err: hf}
	r.persisted = s.persistRefusal(ctx, p.tp, r)
	s.refused.put(p.tp, r)
	return hf
}

// accepted forgets a refusal of p's token and PIN once the token has
// accepted a PIN from that Secret.
func (s *Store) accepted(ctx context.Context, p presented) {
	if _, ok := s.refused.get(p.tp); !ok && s.Refusals == nil {
		return
	}
	s.refused.drop(p.tp)
	if s.Refusals != nil {
		if err := s.Refusals.record(ctx, p.tp, nil); err != nil {
			// A stale refusal names a Secret version that no longer
			// holds the PIN, so it stops nothing; it is cleared at the
			// next success.
			logf.FromContext(ctx).Info("clearing a PIN refusal from issuer status failed", "token", p.tp.token, "error", err.Error())
		}
	}
}

// persistRefusal writes r to the RefusalLog and says whether it is there.
// A failure leaves the refusal in this process's memory, which keeps the
// PIN from being presented again by this process; the write is tried
// again at the next load.
func (s *Store) persistRefusal(ctx context.Context, tp tokenPIN, r refusal) bool {
	if s.Refusals == nil {
		return false
	}
	rec := &quillv1.PINRefusal{
		Token: tp.token, PINSecretName: tp.pinName, PINSecretKey: tp.pinKey,
		PINSecretUID: string(r.uid), PINSecretResourceVersion: r.rv,
		RefusedAt: metav1.NewTime(r.at.UTC().Truncate(time.Second)),
	}
	if err := s.Refusals.record(ctx, tp, rec); err != nil {
		logf.FromContext(ctx).Info("recording a PIN refusal in issuer status failed; it is kept in memory", "token", tp.token, "error", err.Error())
		return false
	}
	return true
}

func (s *Store) now() time.Time {
	if s.Clock == nil {
		return time.Now()
	}
	return s.Clock.Now()
}

// refusedError is the answer for a PIN not presented because the token
// refused it before.
func refusedError(tp tokenPIN, r refusal) error {
	if r.err != nil {
		return r.err
	}
	return HSMFault(kms.Mark(fmt.Errorf("%s refused the PIN in secret %s/%s (key %q) at %s",
		tp.token, tp.namespace, tp.pinName, tp.pinKey, r.at.UTC().Format(time.RFC3339)), kms.ErrPINRefused))
}

// RefusalLog keeps refused PINs in the status of the issuers that use them
// (status.pinRefusal), where every controller process, on every replica
// and after every restart, finds them before it opens a session. It
// writes only that field, by JSON merge patch under its own field owner,
// so that it never clobbers the conditions issuer-lib and the issuer
// health check write, and only when the field must change.
type RefusalLog struct {
	// Client lists issuers (a cache is fine) and patches their status.
	Client client.Client
	// ClusterResourceNamespace is where QuillClusterIssuers read their
	// Secrets: their refusals count for PIN Secrets there.
	ClusterResourceNamespace string
	// FieldOwner writes status.pinRefusal; empty means
	// "quill.dev/pin-refusal".
	FieldOwner string
}

// issuers lists the issuers, of both kinds, whose Secrets are in
// namespace: only their records can speak for a PIN Secret there.
func (l *RefusalLog) issuers(ctx context.Context, namespace string) ([]quillv1.GenericIssuer, error) {
	var all []quillv1.GenericIssuer
	for _, kind := range quillv1.IssuerKinds() {
		if kind.ID().IsCluster() && namespace != l.ClusterResourceNamespace {
			continue
		}
		var opts []client.ListOption
		if !kind.ID().IsCluster() {
			opts = append(opts, client.InNamespace(namespace))
		}
		list := kind.NewList()
		if err := l.Client.List(ctx, list, opts...); err != nil {
			return nil, fmt.Errorf("reading PIN refusals: listing %ss: %w", kind.ID().Kind, err)
		}
		all = append(all, list.Issuers()...)
	}
	return all, nil
}

// find returns a refusal of tp's PIN at Secret version uid/rv recorded on
// any issuer, or nil.
func (l *RefusalLog) find(ctx context.Context, tp tokenPIN, uid types.UID, rv string) (*quillv1.PINRefusal, error) {
	list, err := l.issuers(ctx, tp.namespace)
	if err != nil {
		return nil, err
	}
	for _, iss := range list {
		r := iss.GetStatus().PINRefusal
		if r != nil && r.Token == tp.token && r.PINSecretName == tp.pinName && r.PINSecretKey == tp.pinKey &&
			r.PINSecretUID == string(uid) && r.PINSecretResourceVersion == rv {
			return r, nil
		}
	}
	return nil, nil
}

// record sets status.pinRefusal to r (nil clears it) on every issuer whose
// CA is on tp's token with tp's PIN, where it differs.
func (l *RefusalLog) record(ctx context.Context, tp tokenPIN, r *quillv1.PINRefusal) error {
	list, err := l.issuers(ctx, tp.namespace)
	if err != nil {
		return err
	}
	owner := l.FieldOwner
	if owner == "" {
		owner = defaultRefusalFieldOwner
	}
	for _, iss := range list {
		so, _ := sourceOf(tp.namespace, iss.GetSpec().CA)
		if its, ok := so.tokenPIN(); !ok || its != tp {
			continue
		}
		if sameRefusal(iss.GetStatus().PINRefusal, r) {
			continue
		}
		body, err := json.Marshal(map[string]any{"status": map[string]any{"pinRefusal": r}})
		if err != nil {
			return err
		}
		if err := l.Client.Status().Patch(ctx, iss.DeepCopyIssuer(), client.RawPatch(types.MergePatchType, body), client.FieldOwner(owner)); err != nil {
			return fmt.Errorf("recording the PIN refusal of %s in %s: %w", tp.token, iss.ID(), err)
		}
	}
	return nil
}

// sameRefusal says whether a and b name the same PIN Secret version on
// the same token (when they were recorded does not matter).
func sameRefusal(a, b *quillv1.PINRefusal) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Token == b.Token && a.PINSecretName == b.PINSecretName && a.PINSecretKey == b.PINSecretKey &&
		a.PINSecretUID == b.PINSecretUID && a.PINSecretResourceVersion == b.PINSecretResourceVersion
}
