package ledger

import (
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// Change tells subscribers that the records of an issuer changed. Serial
// is nil when any record of the issuer may have changed (after a relist).
type Change struct {
	Issuer quillv1.IssuerID
	Serial *big.Int
	// RevocationChanged is true when the change may alter what the CRL
	// lists.
	RevocationChanged bool
}

// Index is the in-memory view of the ledger. Its zero value is not usable;
// call NewIndex. It is safe for concurrent use.
type Index struct {
	mu      sync.RWMutex
	issuers map[quillv1.IssuerID]*issuerIndex
	synced  atomic.Bool
	// created holds the records this process created (PutCreated) that
	// the watch has not delivered yet, by namespace/name, with their
	// resourceVersion: a relist served from a cache older than the
	// creation must not drop them (see Replace).
	created map[string]createdRecord

	subsMu sync.RWMutex
	subs   []func(Change)
}

type issuerIndex struct {
	bySerial  map[string]Record
	byRequest map[types.UID]string
	// byCertificate maps "namespace/name" of a cert-manager Certificate to
	// the serials issued for it.
	byCertificate map[string]map[string]struct{}
	revoked       map[string]struct{}
}

// NewIndex returns an empty index; it becomes Synced once Run has read the
// whole ledger.
func NewIndex() *Index {
	return &Index{issuers: map[quillv1.IssuerID]*issuerIndex{}}
}

// Subscribe registers fn to be called after every change, outside the
// index's locks. fn must be quick; it runs on the watch's goroutine.
func (ix *Index) Subscribe(fn func(Change)) {
	ix.subsMu.Lock()
	defer ix.subsMu.Unlock()
	ix.subs = append(ix.subs, fn)
}

func (ix *Index) notify(changes ...Change) {
	ix.subsMu.RLock()
	subs := ix.subs
	ix.subsMu.RUnlock()
	for _, c := range changes {
		for _, fn := range subs {
			fn(c)
		}
	}
}

// Synced reports whether the index holds the whole ledger. Until then a
// signer must not conclude that a request was never signed.
func (ix *Index) Synced() bool { return ix.synced.Load() }

// ErrNotSynced is what ReadyCheck reports while the index is loading.
var ErrNotSynced = errors.New("the ledger index has not read the whole ledger yet")

// ReadyCheck is a readiness check (controller-runtime's healthz.Checker)
// that fails until the index is Synced: a replica that cannot yet tell a
// revoked certificate from an unknown one answers OCSP with tryLater, and
// should get no traffic a ready replica could serve. It belongs on /readyz
// only; on /healthz it would have a large ledger's first load restart the
// pod.
func (ix *Index) ReadyCheck(*http.Request) error {
	if !ix.Synced() {
		return ErrNotSynced
	}
	return nil
}

func certKey(ns, name string) string { return ns + "/" + name }

func (ix *Index) issuer(k quillv1.IssuerID) *issuerIndex {
	ii := ix.issuers[k]
	if ii == nil {
		ii = &issuerIndex{
			bySerial:      map[string]Record{},
			byRequest:     map[types.UID]string{},
			byCertificate: map[string]map[string]struct{}{},
			revoked:       map[string]struct{}{},
		}
		ix.issuers[k] = ii
	}
	return ii
}

// upsert stores r and reports what changed; the caller holds mu.
func (ix *Index) upsert(r Record) Change {
	ii := ix.issuer(r.Issuer)
	s := SerialHex(r.Serial)
	prev, existed := ii.bySerial[s]
	ii.bySerial[s] = r
	if r.RequestUID != "" {
		ii.byRequest[r.RequestUID] = s
	}
	if r.Certificate != "" {
		ck := certKey(r.OriginNamespace, r.Certificate)
		if ii.byCertificate[ck] == nil {
			ii.byCertificate[ck] = map[string]struct{}{}
		}
		ii.byCertificate[ck][s] = struct{}{}
	}
	if r.Revoked {
		ii.revoked[s] = struct{}{}
	}
	changed := !existed || prev.Revoked != r.Revoked || prev.Reason != r.Reason || !prev.RevokedAt.Equal(r.RevokedAt)
	return Change{Issuer: r.Issuer, Serial: r.Serial, RevocationChanged: changed && r.Revoked || existed && prev.Revoked != r.Revoked}
}

// remove deletes r; the caller holds mu.
func (ix *Index) remove(r Record) Change {
	ii := ix.issuers[r.Issuer]
	if ii == nil {
		return Change{Issuer: r.Issuer, Serial: r.Serial}
	}
	s := SerialHex(r.Serial)
	prev, existed := ii.bySerial[s]
	delete(ii.bySerial, s)
	if existed {
		if ii.byRequest[prev.RequestUID] == s {
			delete(ii.byRequest, prev.RequestUID)
		}
		if prev.Certificate != "" {
			ck := certKey(prev.OriginNamespace, prev.Certificate)
			delete(ii.byCertificate[ck], s)
			if len(ii.byCertificate[ck]) == 0 {
				delete(ii.byCertificate, ck)
			}
		}
	}
	_, wasRevoked := ii.revoked[s]
	delete(ii.revoked, s)
	return Change{Issuer: r.Issuer, Serial: r.Serial, RevocationChanged: wasRevoked}
}

// createdRecord is a record of PutCreated and the resourceVersion its
// creation returned (0 when it is not a number).
type createdRecord struct {
	record Record
	rv     uint64
}

// PutCreated is Put for a record this process has just created, as the
// API server returned it (its resourceVersion included). Such a record
// survives a relist whose list is older than its creation, until the
// watch delivers it: otherwise a retry of its request in between would
// find no record and be signed a second time.
func (ix *Index) PutCreated(e *quillv1.IssuedCertificate) {
	r, ok := recordOf(e)
	if !ok {
		return // a record nobody can look up; the schema prevents it
	}
	rv, _ := strconv.ParseUint(e.ResourceVersion, 10, 64)
	ix.mu.Lock()
	if ix.created == nil {
		ix.created = map[string]createdRecord{}
	}
	ix.created[r.Namespace+"/"+r.Segment] = createdRecord{record: r, rv: rv}
	c := ix.upsert(r)
	ix.mu.Unlock()
	ix.notify(c)
}

// Put records r at once, before the watch delivers it, so that a retry of
// the same request a moment later finds it.
func (ix *Index) Put(r Record) {
	ix.mu.Lock()
	c := ix.upsert(r)
	ix.mu.Unlock()
	ix.notify(c)
}

// ByRequest returns the record of the certificate signed for the request
// with the given UID by issuer k.
func (ix *Index) ByRequest(k quillv1.IssuerID, uid types.UID) (Record, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	ii := ix.issuers[k]
	if ii == nil {
		return Record{}, false
	}
	s, ok := ii.byRequest[uid]
	if !ok {
		return Record{}, false
	}
	r, ok := ii.bySerial[s]
	return r, ok
}

// Lookup returns the record of serial as issued by k.
func (ix *Index) Lookup(k quillv1.IssuerID, serial *big.Int) (Record, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	ii := ix.issuers[k]
	if ii == nil {
		return Record{}, false
	}
	r, ok := ii.bySerial[SerialHex(serial)]
	return r, ok
}

// ForCertificate returns the records of certificates k issued for the
// cert-manager Certificate namespace/name, oldest first.
func (ix *Index) ForCertificate(k quillv1.IssuerID, namespace, name string) []Record {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	ii := ix.issuers[k]
	if ii == nil {
		return nil
	}
	var out []Record
	for s := range ii.byCertificate[certKey(namespace, name)] {
		out = append(out, ii.bySerial[s])
	}
	sortByIssue(out)
	return out
}

// Revoked returns k's revoked records whose certificates are unexpired at
// now: exactly what k's CRL lists.
func (ix *Index) Revoked(k quillv1.IssuerID, now time.Time) []Record {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	ii := ix.issuers[k]
	if ii == nil {
		return nil
	}
	out := make([]Record, 0, len(ii.revoked))
	for s := range ii.revoked {
		if r := ii.bySerial[s]; r.NotAfter.After(now) {
			out = append(out, r)
		}
	}
	return out
}

// CertificateGroups calls fn for every cert-manager Certificate that k
// issued more than one certificate for, or whose certificates are not all
// revoked, with its records oldest first. It serves the periodic rules
// (revoke superseded, revoke on deletion) and walks the index in memory.
func (ix *Index) CertificateGroups(k quillv1.IssuerID, fn func(namespace, name string, records []Record)) {
	type group struct {
		ns, name string
		recs     []Record
	}
	var groups []group
	ix.mu.RLock()
	if ii := ix.issuers[k]; ii != nil {
		for _, serials := range ii.byCertificate {
			var g group
			for s := range serials {
				r := ii.bySerial[s]
				g.ns, g.name = r.OriginNamespace, r.Certificate
				g.recs = append(g.recs, r)
			}
			groups = append(groups, g)
		}
	}
	ix.mu.RUnlock()
	for _, g := range groups {
		sortByIssue(g.recs)
		fn(g.ns, g.name, g.recs)
	}
}

// Count returns how many records k has.
func (ix *Index) Count(k quillv1.IssuerID) int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if ii := ix.issuers[k]; ii != nil {
		return len(ii.bySerial)
	}
	return 0
}

// Issuers lists the issuers that have records.
func (ix *Index) Issuers() []quillv1.IssuerID {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	out := make([]quillv1.IssuerID, 0, len(ix.issuers))
	for k := range ix.issuers {
		out = append(out, k)
	}
	return out
}

func sortByIssue(rs []Record) {
	sort.Slice(rs, func(i, j int) bool {
		if !rs[i].IssuedAt.Equal(rs[j].IssuedAt) {
			return rs[i].IssuedAt.Before(rs[j].IssuedAt)
		}
		return rs[i].Serial.Cmp(rs[j].Serial) < 0
	})
}

// The methods below make Index a cache.ReflectorStore. Run feeds the same
// methods from its own paged list and watch (load.go).

func entryOf(obj any) (*quillv1.IssuedCertificate, bool) {
	switch o := obj.(type) {
	case *quillv1.IssuedCertificate:
		return o, true
	case cache.DeletedFinalStateUnknown:
		return entryOf(o.Obj)
	}
	return nil, false
}

// Add implements cache.ReflectorStore.
func (ix *Index) Add(obj any) error { return ix.Update(obj) }

// Update implements cache.ReflectorStore.
func (ix *Index) Update(obj any) error {
	e, ok := entryOf(obj)
	if !ok {
		return fmt.Errorf("ledger index: unexpected object %T", obj)
	}
	r, ok := recordOf(e)
	if !ok {
		return nil // a record nobody can look up; the schema prevents it
	}
	ix.mu.Lock()
	delete(ix.created, e.Namespace+"/"+e.Name) // the watch has it now
	c := ix.upsert(r)
	ix.mu.Unlock()
	ix.notify(c)
	return nil
}

// Delete implements cache.ReflectorStore.
func (ix *Index) Delete(obj any) error {
	e, ok := entryOf(obj)
	if !ok {
		return fmt.Errorf("ledger index: unexpected object %T", obj)
	}
	r, ok := recordOf(e)
	if !ok {
		return nil
	}
	ix.mu.Lock()
	delete(ix.created, e.Namespace+"/"+e.Name)
	c := ix.remove(r)
	ix.mu.Unlock()
	ix.notify(c)
	return nil
}

// Replace implements cache.ReflectorStore: the reflector hands over the
// whole ledger after a (re)list, as of resourceVersion.
//
// A record this process created and the list lacks is kept when it was
// created after the list's resourceVersion: the list came from a cache
// that had not seen it yet. resourceVersions are opaque in general; they
// are compared as numbers only here, where an etcd-backed API server
// gives both from one increasing revision counter. When either is not a
// number, the list wins, as it does for any record it no longer holds.
func (ix *Index) Replace(list []any, resourceVersion string) error {
	fresh := &Index{issuers: map[quillv1.IssuerID]*issuerIndex{}}
	listed := make(map[string]bool, len(list))
	for _, obj := range list {
		e, ok := entryOf(obj)
		if !ok {
			return fmt.Errorf("ledger index: unexpected object %T", obj)
		}
		listed[e.Namespace+"/"+e.Name] = true
		if r, ok := recordOf(e); ok {
			fresh.upsert(r)
		}
	}
	ix.replace(fresh, listed, resourceVersion)
	return nil
}

// replace swaps in fresh, the whole ledger as of resourceVersion, whose
// objects are the keys of listed, keeping the records this process created
// after that version (see Replace), and marks the index synced.
func (ix *Index) replace(fresh *Index, listed map[string]bool, resourceVersion string) {
	listRV, err := strconv.ParseUint(resourceVersion, 10, 64)
	ix.mu.Lock()
	for key, c := range ix.created {
		if !listed[key] && err == nil && c.rv > listRV {
			fresh.upsert(c.record)
			continue // still waiting for the watch
		}
		delete(ix.created, key)
	}
	old := ix.issuers
	ix.issuers = fresh.issuers
	ix.mu.Unlock()
	ix.synced.Store(true)
	seen := map[quillv1.IssuerID]bool{}
	var changes []Change
	for _, m := range []map[quillv1.IssuerID]*issuerIndex{old, fresh.issuers} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				changes = append(changes, Change{Issuer: k, RevocationChanged: true})
			}
		}
	}
	ix.notify(changes...)
}

// Resync implements cache.ReflectorStore; there is nothing to resync.
func (ix *Index) Resync() error { return nil }

// Inventory describes an issuer's unexpired certificates by algorithm, for
// crypto-agility planning: what a quantum computer could break, and what
// must be reissued to migrate.
type Inventory struct {
	// Unexpired counts the certificates whose notAfter is after the time
	// asked, revoked ones included: they are still accepted by every
	// relying party that does not check revocation (Go's crypto/tls and
	// most mutual-TLS servers by default).
	Unexpired int
	// Revoked counts those of them that are revoked.
	Revoked int
	// QuantumVulnerable counts those of them that are quantum-vulnerable
	// (see QuantumVulnerable).
	QuantumVulnerable int
	// KeyAlgorithms and SignatureAlgorithms break the counts down by the
	// certificates' public key algorithm and by the algorithm the CA
	// signed them with, each sorted by name.
	KeyAlgorithms       []AlgorithmCount
	SignatureAlgorithms []AlgorithmCount
	// NextExpiry is the earliest notAfter among them, when the counts next
	// change on their own; zero when there are none.
	NextExpiry time.Time
}

// AlgorithmCount is the share of an Inventory with one algorithm.
type AlgorithmCount struct {
	Algorithm string
	// Certificates, QuantumVulnerable and Revoked count as the Inventory's
	// fields of the same names do.
	Certificates      int
	QuantumVulnerable int
	Revoked           int
}

// PostQuantum reports whether alg, a key or signature algorithm named as
// the ledger names them (ML-DSA-65, ECDSA-P256, SHA256-RSA, …), is a
// post-quantum signature algorithm: ML-DSA or SLH-DSA. Any other name,
// including one Quill does not know, is classical.
func PostQuantum(alg string) bool {
	return strings.HasPrefix(alg, "ML-DSA-") || strings.HasPrefix(alg, "SLH-DSA-")
}

// QuantumVulnerable reports whether a certificate whose public key is
// keyAlg, signed with sigAlg, would fall to a cryptographically relevant
// quantum computer: its key is classical (RSA, ECDSA, Ed25519; Shor's
// algorithm recovers the private key, so anyone could act as its subject),
// or its signature is classical (the issuing CA's key falls the same way,
// so anyone could forge certificates that chain like it). Only a
// post-quantum key signed with a post-quantum signature is not.
func QuantumVulnerable(keyAlg, sigAlg string) bool {
	return !PostQuantum(keyAlg) || !PostQuantum(sigAlg)
}

// Inventory counts k's certificates unexpired at now, walking the issuer's
// records in memory under the read lock: no API calls and no allocation per
// record. Copying each record out of the map is most of the cost, about
// 13 ms for 100k records on a loaded 2-core machine (BenchmarkInventory,
// docs/benchmarks.md); callers batch recounts rather than run one per
// certificate.
func (ix *Index) Inventory(k quillv1.IssuerID, now time.Time) Inventory {
	var inv Inventory
	ix.mu.RLock()
	if ii := ix.issuers[k]; ii != nil {
		for _, r := range ii.bySerial {
			if !r.NotAfter.After(now) {
				continue
			}
			vulnerable := QuantumVulnerable(r.KeyAlgorithm, r.SignatureAlgorithm)
			inv.Unexpired++
			key := countFor(&inv.KeyAlgorithms, r.KeyAlgorithm)
			sig := countFor(&inv.SignatureAlgorithms, r.SignatureAlgorithm)
			key.Certificates++
			sig.Certificates++
			if vulnerable {
				inv.QuantumVulnerable++
				key.QuantumVulnerable++
				sig.QuantumVulnerable++
			}
			if r.Revoked {
				inv.Revoked++
				key.Revoked++
				sig.Revoked++
			}
			if inv.NextExpiry.IsZero() || r.NotAfter.Before(inv.NextExpiry) {
				inv.NextExpiry = r.NotAfter
			}
		}
	}
	ix.mu.RUnlock()
	for _, counts := range [][]AlgorithmCount{inv.KeyAlgorithms, inv.SignatureAlgorithms} {
		sort.Slice(counts, func(i, j int) bool { return counts[i].Algorithm < counts[j].Algorithm })
	}
	return inv
}

// countFor finds alg's entry in counts, adding it if needed. An issuer's
// certificates use a handful of algorithms, so a linear search beats a map.
func countFor(counts *[]AlgorithmCount, alg string) *AlgorithmCount {
	for i := range *counts {
		if (*counts)[i].Algorithm == alg {
			return &(*counts)[i]
		}
	}
	*counts = append(*counts, AlgorithmCount{Algorithm: alg})
	return &(*counts)[len(*counts)-1]
}
