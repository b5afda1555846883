package ledger

import (
	"encoding/binary"
	"encoding/hex"
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

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/log"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// Change tells subscribers that the records of an issuer changed. Serial
// is nil when any record of the issuer may have changed (after a relist,
// or a segment that changed many records at once).
type Change struct {
	Issuer quillv1.IssuerID
	Serial *big.Int
	// RevocationChanged is true when the change may alter what the CRL
	// lists.
	RevocationChanged bool
}

// maxSerialChanges is how many per-serial Changes one update reports
// before it reports one Change per issuer instead: a sealed or listed
// segment of thousands of entries would otherwise call every subscriber
// thousands of times for what is one event.
const maxSerialChanges = 64

// Index is the in-memory view of the ledger: the LedgerSegments of every
// issuer and the IssuedCertificates of ledgers not migrated yet. Its zero
// value is not usable; call NewIndex. It is safe for concurrent use.
//
// Every segment line is applied on its own, in whatever order the segments
// arrive: an issued entry is keyed by its serial, and a revocation line
// revokes the serial, held pending until its entry arrives when that comes
// later. Two revocations of one serial are decided by EntryRevocation.Wins.
// An entry seen in several objects (a journal and the sealed segment that
// replaced it, an IssuedCertificate and the segment it was migrated into)
// is one record, which points at a Sealed segment over a Journal over an
// IssuedCertificate.
type Index struct {
	mu     sync.RWMutex
	st     *store
	synced atomic.Bool
	// created holds the objects this process created (PutSegment,
	// PutCreated) that the watch has not delivered yet, by holder key,
	// with their resourceVersion: a relist served from a cache older than
	// the creation must not drop them (see replace).
	created map[string]createdObject

	subsMu sync.RWMutex
	subs   []func(Change)

	// lastIgnored is what ignoredChanged last saw.
	lastIgnored [2]int

	// clusterNS is the cluster resource namespace, the only one whose
	// ledger objects may speak for a QuillClusterIssuer.
	clusterNS string
}

// SetClusterResourceNamespace tells the index where QuillClusterIssuers'
// ledgers live; call it before Run. A ledger object is believed only in
// its issuer's home namespace (InHome): anyone allowed to write ledger
// objects in their own namespace could otherwise revoke, or vouch for,
// certificates of another namespace's issuer or of a cluster issuer.
// Until it is called, a QuillIssuer's objects are still held to the
// issuer's own namespace, and cluster issuers' are taken from anywhere
// (unit tests).
func (ix *Index) SetClusterResourceNamespace(ns string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.clusterNS = ns
	ix.st.clusterNS = ns
}

// createdObject is an object of PutSegment or PutCreated and the
// resourceVersion its creation returned (0 when it is not a number).
type createdObject struct {
	rv      uint64
	seg     *quillv1.LedgerSegment // without its data
	entries []Entry
	ic      *quillv1.IssuedCertificate
}

// NewIndex returns an empty index; it becomes Synced once Run has read the
// whole ledger.
func NewIndex() *Index {
	return &Index{st: newStore("")}
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

// Synced reports whether the index holds the whole ledger: both the
// segments and the IssuedCertificates not migrated yet. Until then a
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

// CorruptSegments counts the segments in the ledger whose data the index
// could not decode (bad gzip, bad JSON, unknown format). Their entries are
// missing from the index; everything else loaded. The controller exports
// it as a metric; each one is also logged when it is met.
func (ix *Index) CorruptSegments() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.st.corrupt
}

// ForeignObjects counts the ledger objects the index ignored because they
// name an issuer whose home is another namespace (see
// SetClusterResourceNamespace).
func (ix *Index) ForeignObjects() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.st.foreign
}

// SegmentInfo describes a LedgerSegment the index holds, so that the
// compactor and retention can choose segments without listing their data.
type SegmentInfo struct {
	Name, Namespace string
	// Stage is quillv1.LedgerStageJournal or LedgerStageSealed.
	Stage        string
	ExpiresAfter time.Time
	// Entries and Revocations are the segment's spec counts.
	Entries, Revocations int32
	// Created is the segment's creationTimestamp.
	Created time.Time
}

// Segments lists k's segments, corrupt ones included (see
// CorruptSegments), ordered by name, which orders each stage by creation.
func (ix *Index) Segments(k quillv1.IssuerID) []SegmentInfo {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var out []SegmentInfo
	for i := range ix.st.holders {
		h := &ix.st.holders[i]
		if h.live && !h.legacy && h.issuer == k {
			out = append(out, h.info)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// PutSegment applies seg, which this process has just created, with the
// entries it was built from, as the API server returned it (its
// resourceVersion included): at once, so that a retry of a request it
// records finds it, and kept across a relist whose list is older than its
// creation until the watch delivers it, so that such a retry is never
// signed a second time. The index keeps neither seg's data nor entries'
// certificates beyond that.
func (ix *Index) PutSegment(seg *quillv1.LedgerSegment, entries []Entry) {
	meta := &quillv1.LedgerSegment{ObjectMeta: *seg.ObjectMeta.DeepCopy(), Spec: seg.Spec}
	meta.Spec.Data = nil // not copied: up to MaxSegmentBytes the index does not keep
	rv, _ := strconv.ParseUint(seg.ResourceVersion, 10, 64)
	var ch changes
	ix.mu.Lock()
	if ix.created == nil {
		ix.created = map[string]createdObject{}
	}
	ix.created[segmentKey(seg.Namespace, seg.Name)] = createdObject{rv: rv, seg: meta, entries: entries}
	ix.st.applySegment(meta, entries, &ch)
	ix.mu.Unlock()
	ix.notify(ch.list()...)
}

// PutCreated is Put for an IssuedCertificate this process has just
// created, as the API server returned it (its resourceVersion included).
// Such a record survives a relist whose list is older than its creation,
// until the watch delivers it: otherwise a retry of its request in between
// would find no record and be signed a second time.
func (ix *Index) PutCreated(e *quillv1.IssuedCertificate) {
	if _, ok := keyOfHex(e.Spec.SerialNumber); !ok {
		return // a record nobody can look up; the schema prevents it
	}
	rv, _ := strconv.ParseUint(e.ResourceVersion, 10, 64)
	var ch changes
	ix.mu.Lock()
	if ix.created == nil {
		ix.created = map[string]createdObject{}
	}
	ix.created[legacyKey(e.Namespace, e.Name)] = createdObject{rv: rv, ic: e}
	ix.st.applyLegacy(e, &ch)
	ix.mu.Unlock()
	ix.notify(ch.list()...)
}

// Put records r at once, replacing whatever the index held for its
// serial, before the watch delivers the object holding it. Tests and
// benchmarks fill the index with it; r.Serial must be a non-negative
// serial of at most 20 bytes, others are ignored.
func (ix *Index) Put(r Record) {
	var ch changes
	ix.mu.Lock()
	ix.st.put(r, &ch)
	ix.mu.Unlock()
	ix.notify(ch.list()...)
}

// ByRequest returns the record of the certificate signed for the request
// with the given UID by issuer k.
func (ix *Index) ByRequest(k quillv1.IssuerID, uid types.UID) (Record, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	ii := ix.st.issuers[k]
	if ii == nil {
		return Record{}, false
	}
	slot, ok := ix.st.requestSlot(ii, string(uid))
	if !ok {
		return Record{}, false
	}
	return ix.st.recordIn(k, ii, slot), true
}

// Lookup returns the record of serial as issued by k.
func (ix *Index) Lookup(k quillv1.IssuerID, serial *big.Int) (Record, bool) {
	key, ok := keyOf(serial)
	if !ok {
		return Record{}, false
	}
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	ii := ix.st.issuers[k]
	if ii == nil {
		return Record{}, false
	}
	slot, ok := ii.bySerial[key]
	if !ok {
		return Record{}, false
	}
	return ix.st.recordIn(k, ii, slot), true
}

// ForCertificate returns the records of certificates k issued for the
// cert-manager Certificate namespace/name, oldest first.
func (ix *Index) ForCertificate(k quillv1.IssuerID, namespace, name string) []Record {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	ii := ix.st.issuers[k]
	if ii == nil || name == "" {
		return nil
	}
	ns, ok1 := ix.st.strs[namespace]
	n, ok2 := ix.st.strs[name]
	if !ok1 || !ok2 {
		return nil
	}
	var out []Record
	for _, slot := range ii.byCertificate[certKey{ns: ns, name: n}] {
		out = append(out, ix.st.recordIn(k, ii, slot))
	}
	sortByIssue(out)
	return out
}

// Revoked returns k's revoked records whose certificates are unexpired at
// now: exactly what k's CRL lists.
func (ix *Index) Revoked(k quillv1.IssuerID, now time.Time) []Record {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	ii := ix.st.issuers[k]
	if ii == nil {
		return nil
	}
	sec := now.Unix()
	out := make([]Record, 0, len(ii.revoked))
	for slot := range ii.revoked {
		if unexpired(ii.at(slot), sec) {
			out = append(out, ix.st.recordIn(k, ii, slot))
		}
	}
	return out
}

// unexpired reports whether r's notAfter is after now, whose Unix
// seconds are sec, as time.Time.After would say of the Record's NotAfter:
// notAfter has no fraction of a second, so equal seconds are not after.
func unexpired(r *rec, sec int64) bool { return r.notAfter > sec }

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
	if ii := ix.st.issuers[k]; ii != nil {
		for ck, slots := range ii.byCertificate {
			g := group{ns: ix.st.strList[ck.ns], name: ix.st.strList[ck.name]}
			for _, slot := range slots {
				g.recs = append(g.recs, ix.st.recordIn(k, ii, slot))
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
	if ii := ix.st.issuers[k]; ii != nil {
		return len(ii.bySerial)
	}
	return 0
}

// Issuers lists the issuers that have records.
func (ix *Index) Issuers() []quillv1.IssuerID {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	out := make([]quillv1.IssuerID, 0, len(ix.st.issuers))
	for k, ii := range ix.st.issuers {
		if len(ii.bySerial) > 0 {
			out = append(out, k)
		}
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

// The index stores each record compactly, about a third of a Record's
// size: the serial as 20 bytes, times as Unix integers, the request UID as
// 16 bytes, and every string many records share (namespaces, Certificate
// names, algorithms, kinds, templates, holding segments) once per store,
// by number. Records are built on read. At 100k records per issuer this is
// the controller's largest structure (BenchmarkIndexMemory,
// docs/benchmarks.md).

// serialKey is a serial number as the index keys it: its big-endian
// magnitude left-padded to 20 bytes, RFC 5280's longest serial.
type serialKey [20]byte

// keyOf is serial's key; false for a negative serial or one longer than
// 20 bytes, which the index does not hold.
func keyOf(serial *big.Int) (serialKey, bool) {
	var k serialKey
	if serial == nil || serial.Sign() < 0 || serial.BitLen() > 8*len(k) {
		return k, false
	}
	serial.FillBytes(k[:])
	return k, true
}

func keyOfHex(s string) (serialKey, bool) {
	if s == "" || len(s) > 40 {
		return serialKey{}, false
	}
	n, ok := new(big.Int).SetString(s, 16)
	if !ok {
		return serialKey{}, false
	}
	return keyOf(n)
}

func (k *serialKey) bigInt() *big.Int { return new(big.Int).SetBytes(k[:]) }

// rec flags.
const (
	flagFree uint8 = 1 << iota
	flagRevoked
	flagNoRevAvail
	flagHasCertificate
	// flagLegacy: the holder is an IssuedCertificate.
	flagLegacy
	// flagDerivedName: a legacy holder named EntryName(issuer, serial);
	// rec.holder is then its namespace's string number, which spares a
	// holder per record for a ledger not migrated yet.
	flagDerivedName
	// flagUIDString: the request UID is not a canonical UUID; uid's first
	// four bytes are its string number.
	flagUIDString
)

// rec is one record as the index stores it (see Record for the fields),
// 88 bytes with the fields in this order. A revoked record's revocation is
// in issuerIndex.revoked: a few percent of records have one.
type rec struct {
	serial    serialKey
	uid       [16]byte
	holder    uint32 // holders index, or see flagDerivedName
	issuedAt  int64  // Unix microseconds
	notBefore int64  // Unix seconds
	notAfter  int64  // Unix seconds
	request   string
	cert      uint32 // strs index of the Certificate's name; 0 for none
	shape     shapeID
	flags     uint8
}

// shapeID numbers a shape in three bytes: sixteen million combinations of
// namespace, algorithms and template are more than any ledger has.
type shapeID [3]byte

func (s shapeID) index() int { return int(s[0])<<16 | int(s[1])<<8 | int(s[2]) }

// revocation is a revoked record's revocation.
type revocation struct {
	at     int64  // Unix seconds
	reason uint16 // reasons index
}

// shape is what many records share besides their Certificate.
type shape struct {
	originKind, originNamespace, keyAlgorithm, signatureAlgorithm, template string
}

// certKey names a cert-manager Certificate by string numbers.
type certKey struct{ ns, name uint32 }

// holder is an object that holds ledger entries: a LedgerSegment, an
// IssuedCertificate, or the location a Put record named.
type holder struct {
	name, namespace string
	issuer          quillv1.IssuerID
	stage           string // quillv1.LedgerStage*; "" for a legacy or Put holder
	legacy          bool
	// live: the object is in the ledger as last listed or watched.
	live    bool
	corrupt bool
	// refs counts the records and pending revocations naming the holder;
	// it is forgotten once that is none and it is not live.
	refs int32
	// used: the holder is in holderKeys; a forgotten one is zero.
	used bool
	info SegmentInfo
}

// rank orders holders for a record seen in several: Sealed over Journal
// (or an unknown stage) over an IssuedCertificate.
func (h *holder) rank() int {
	switch {
	case h.legacy:
		return 1
	case h.stage == quillv1.LedgerStageSealed:
		return 3
	}
	return 2
}

// pendingRevocation is a revocation line whose entry has not arrived.
type pendingRevocation struct {
	rev    EntryRevocation
	holder uint32
}

// issuerIndex holds one issuer's records in slots; the maps hold slot
// numbers. The slots are chunks of chunkSize records rather than one
// slice, so that growing never copies the whole index nor leaves a
// quarter of it unused.
type issuerIndex struct {
	recs          [][]rec
	free          []uint32
	bySerial      map[serialKey]uint32
	byRequest     map[[16]byte]uint32
	byRequestStr  map[uint32]uint32 // UIDs that are not UUIDs, by string number
	byCertificate map[certKey][]uint32
	revoked       map[uint32]revocation
	pending       map[serialKey]pendingRevocation
}

// store is a whole index's content; a relist builds a new one and swaps it
// in, which also drops strings and holders no longer used.
type store struct {
	issuers    map[quillv1.IssuerID]*issuerIndex
	strs       map[string]uint32
	strList    []string
	shapes     map[shape]uint32
	shapeList  []shape
	reasons    []quillv1.RevocationReason
	holderKeys map[string]uint32
	holders    []holder
	freeHolder []uint32
	corrupt    int
	// foreign counts the objects ignored for naming an issuer whose home
	// is another namespace (see SetClusterResourceNamespace).
	foreign int
	// clusterNS: see Index.clusterNS; "" takes cluster issuers' objects
	// from any namespace.
	clusterNS string
}

// believes reports whether a ledger object of issuer k found in namespace
// may be applied (see SetClusterResourceNamespace), counting those that
// may not.
func (st *store) believes(k quillv1.IssuerID, namespace string) bool {
	ok := InHome(k, namespace, st.clusterNS)
	if k.IsCluster() && st.clusterNS == "" {
		ok = namespace != ""
	}
	if !ok {
		st.foreign++
	}
	return ok
}

func newStore(clusterNS string) *store {
	return &store{
		clusterNS:  clusterNS,
		issuers:    map[quillv1.IssuerID]*issuerIndex{},
		strs:       map[string]uint32{"": 0},
		strList:    []string{""},
		shapes:     map[shape]uint32{},
		reasons:    []quillv1.RevocationReason{""},
		holderKeys: map[string]uint32{},
		holders:    []holder{{}}, // 0: none
	}
}

func (st *store) str(s string) uint32 {
	if id, ok := st.strs[s]; ok {
		return id
	}
	id := uint32(len(st.strList))
	st.strList = append(st.strList, s)
	st.strs[s] = id
	return id
}

func (st *store) shapeOf(sh shape) shapeID {
	id, ok := st.shapes[sh]
	if !ok {
		id = uint32(len(st.shapeList))
		st.shapeList = append(st.shapeList, sh)
		st.shapes[sh] = id
	}
	return shapeID{byte(id >> 16), byte(id >> 8), byte(id)}
}

// reasonOf numbers reason; the names come from the API's enum, so a few
// dozen at most are ever seen.
func (st *store) reasonOf(reason quillv1.RevocationReason) uint16 {
	for i, r := range st.reasons {
		if r == reason {
			return uint16(i)
		}
	}
	st.reasons = append(st.reasons, reason)
	return uint16(len(st.reasons) - 1)
}

// chunkSize is how many records a chunk of slots holds: about 90 KB.
const chunkSize = 1024

// at is the record in slot.
func (ii *issuerIndex) at(slot uint32) *rec {
	return &ii.recs[slot/chunkSize][slot%chunkSize]
}

// add stores r in a new slot at the end.
func (ii *issuerIndex) add(r rec) uint32 {
	n := len(ii.recs)
	if n == 0 || len(ii.recs[n-1]) == chunkSize {
		ii.recs = append(ii.recs, make([]rec, 0, 8))
		n++
	}
	last := ii.recs[n-1]
	if len(last) == cap(last) { // grow within the chunk's bound
		grown := make([]rec, len(last), min(chunkSize, 2*cap(last)))
		copy(grown, last)
		last = grown
	}
	ii.recs[n-1] = append(last, r)
	return uint32((n-1)*chunkSize + len(last))
}

// each calls fn with every slot in use, in slot order, until fn returns
// false.
func (ii *issuerIndex) each(fn func(slot uint32, r *rec) bool) {
	for c, chunk := range ii.recs {
		for i := range chunk {
			if r := &chunk[i]; r.flags&flagFree == 0 && !fn(uint32(c*chunkSize+i), r) {
				return
			}
		}
	}
}

func (st *store) issuer(k quillv1.IssuerID) *issuerIndex {
	ii := st.issuers[k]
	if ii == nil {
		ii = &issuerIndex{
			bySerial:      map[serialKey]uint32{},
			byRequest:     map[[16]byte]uint32{},
			byRequestStr:  map[uint32]uint32{},
			byCertificate: map[certKey][]uint32{},
			revoked:       map[uint32]revocation{},
			pending:       map[serialKey]pendingRevocation{},
		}
		st.issuers[k] = ii
	}
	return ii
}

func segmentKey(ns, name string) string { return "s/" + ns + "/" + name }
func legacyKey(ns, name string) string  { return "l/" + ns + "/" + name }

// holderFor returns the number of the holder under key, creating it (not
// live) from h when it is new.
func (st *store) holderFor(key string, h holder) uint32 {
	if id, ok := st.holderKeys[key]; ok {
		return id
	}
	h.used = true
	var id uint32
	if n := len(st.freeHolder); n > 0 {
		id = st.freeHolder[n-1]
		st.freeHolder = st.freeHolder[:n-1]
		st.holders[id] = h
	} else {
		id = uint32(len(st.holders))
		st.holders = append(st.holders, h)
	}
	st.holderKeys[key] = id
	return id
}

func (st *store) holderKey(h *holder) string {
	if h.legacy {
		return legacyKey(h.namespace, h.name)
	}
	return segmentKey(h.namespace, h.name)
}

// release drops one reference to holder id and forgets the holder once
// nothing names it and it is not live.
func (st *store) release(id uint32) {
	if id == 0 {
		return
	}
	h := &st.holders[id]
	h.refs--
	st.forgetIfUnused(id)
}

func (st *store) forgetIfUnused(id uint32) {
	if id == 0 {
		return
	}
	h := &st.holders[id]
	if !h.used || h.refs > 0 || h.live {
		return
	}
	delete(st.holderKeys, st.holderKey(h))
	st.holders[id] = holder{}
	st.freeHolder = append(st.freeHolder, id)
}

func (st *store) retain(id uint32) {
	if id != 0 {
		st.holders[id].refs++
	}
}

// recHolder is the number of the holder r names in st.holders, 0 for none
// or a derived legacy name.
func recHolder(r *rec) uint32 {
	if r.flags&flagDerivedName != 0 {
		return 0
	}
	return r.holder
}

func (st *store) rankOf(r *rec) int {
	if r.flags&flagLegacy != 0 {
		return 1
	}
	return st.holders[r.holder].rank()
}

// parseUUID reads a canonical lowercase UUID, the form the API server
// gives every object's UID.
func parseUUID(s string) ([16]byte, bool) {
	var u [16]byte
	if len(s) != 36 {
		return u, false
	}
	j := 0
	for i := 0; i < 36; {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return u, false
			}
			i++
			continue
		}
		hi, ok1 := hexDigit(s[i])
		lo, ok2 := hexDigit(s[i+1])
		if !ok1 || !ok2 {
			return u, false
		}
		u[j] = hi<<4 | lo
		j++
		i += 2
	}
	return u, true
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

func formatUUID(u *[16]byte) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 0, 36)
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, digits[c>>4], digits[c&15])
	}
	return string(b)
}

func (st *store) setUID(r *rec, uid string) {
	if u, ok := parseUUID(uid); ok {
		r.uid = u
		r.flags &^= flagUIDString
		return
	}
	r.uid = [16]byte{}
	binary.LittleEndian.PutUint32(r.uid[:4], st.str(uid))
	r.flags |= flagUIDString
}

func (st *store) uidOf(r *rec) string {
	if r.flags&flagUIDString != 0 {
		return st.strList[binary.LittleEndian.Uint32(r.uid[:4])]
	}
	return formatUUID(&r.uid)
}

// requestSlot finds the slot of the record signed for the request uid.
func (st *store) requestSlot(ii *issuerIndex, uid string) (uint32, bool) {
	if uid == "" {
		return 0, false
	}
	if u, ok := parseUUID(uid); ok {
		slot, ok := ii.byRequest[u]
		return slot, ok
	}
	id, ok := st.strs[uid]
	if !ok {
		return 0, false
	}
	slot, ok := ii.byRequestStr[id]
	return slot, ok
}

// record builds the Record of r, a record of issuer k.
func (st *store) record(k quillv1.IssuerID, r *rec) Record {
	sh := &st.shapeList[r.shape.index()]
	out := Record{
		Legacy:                r.flags&flagLegacy != 0,
		HasCertificate:        r.flags&flagHasCertificate != 0,
		Issuer:                k,
		Serial:                r.serial.bigInt(),
		IssuedAt:              time.UnixMicro(r.issuedAt).UTC(),
		NotBefore:             time.Unix(r.notBefore, 0).UTC(),
		NotAfter:              time.Unix(r.notAfter, 0).UTC(),
		KeyAlgorithm:          sh.keyAlgorithm,
		SignatureAlgorithm:    sh.signatureAlgorithm,
		RequestUID:            types.UID(st.uidOf(r)),
		OriginKind:            sh.originKind,
		RequestName:           r.request,
		Template:              sh.template,
		OriginNamespace:       sh.originNamespace,
		Certificate:           st.strList[r.cert],
		NoRevocationAvailable: r.flags&flagNoRevAvail != 0,
	}
	if r.flags&flagDerivedName != 0 {
		out.Segment, out.Namespace = derivedEntryName(k, &r.serial), st.strList[r.holder]
	} else if r.holder != 0 {
		h := &st.holders[r.holder]
		out.Segment, out.Namespace = h.name, h.namespace
	}
	return out
}

// recordIn is the Record of the record in slot of ii, issuer k's.
func (st *store) recordIn(k quillv1.IssuerID, ii *issuerIndex, slot uint32) Record {
	r := ii.at(slot)
	out := st.record(k, r)
	if r.flags&flagRevoked != 0 {
		rv := ii.revoked[slot]
		out.Revoked = true
		out.RevokedAt = time.Unix(rv.at, 0).UTC()
		out.Reason = quillv1.RevocationReasonCodes[st.reasons[rv.reason]]
	}
	return out
}

// revocationOf is the revocation of the record in slot, nil when it has
// none.
func (st *store) revocationOf(ii *issuerIndex, slot uint32) *EntryRevocation {
	rv, ok := ii.revoked[slot]
	if !ok {
		return nil
	}
	return &EntryRevocation{Reason: st.reasons[rv.reason], At: rv.at}
}

// setRevocation makes rev (nil: none) the revocation of the record in
// slot and reports whether that changed it.
func (st *store) setRevocation(ii *issuerIndex, slot uint32, rev *EntryRevocation) bool {
	r := ii.at(slot)
	if rev == nil {
		if r.flags&flagRevoked == 0 {
			return false
		}
		r.flags &^= flagRevoked
		delete(ii.revoked, slot)
		return true
	}
	now := revocation{at: rev.At, reason: st.reasonOf(rev.Reason)}
	if r.flags&flagRevoked != 0 && ii.revoked[slot] == now {
		return false
	}
	r.flags |= flagRevoked
	ii.revoked[slot] = now
	return true
}

// link adds the record in slot to the serial, request and Certificate
// maps.
func (st *store) link(ii *issuerIndex, slot uint32) {
	r := ii.at(slot)
	ii.bySerial[r.serial] = slot
	if r.flags&flagUIDString != 0 {
		if id := binary.LittleEndian.Uint32(r.uid[:4]); id != 0 {
			ii.byRequestStr[id] = slot
		}
	} else {
		ii.byRequest[r.uid] = slot
	}
	if r.cert != 0 {
		ck := certKey{ns: st.str(st.shapeList[r.shape.index()].originNamespace), name: r.cert}
		ii.byCertificate[ck] = append(ii.byCertificate[ck], slot)
	}
}

// unlink undoes link but for bySerial, which the caller keeps or deletes.
func (st *store) unlink(ii *issuerIndex, slot uint32) {
	r := ii.at(slot)
	if r.flags&flagUIDString != 0 {
		if id := binary.LittleEndian.Uint32(r.uid[:4]); id != 0 && ii.byRequestStr[id] == slot {
			delete(ii.byRequestStr, id)
		}
	} else if s, ok := ii.byRequest[r.uid]; ok && s == slot {
		delete(ii.byRequest, r.uid)
	}
	if r.cert != 0 {
		ck := certKey{ns: st.str(st.shapeList[r.shape.index()].originNamespace), name: r.cert}
		slots := ii.byCertificate[ck]
		for i, s := range slots {
			if s == slot {
				slots[i] = slots[len(slots)-1]
				slots = slots[:len(slots)-1]
				break
			}
		}
		if len(slots) == 0 {
			delete(ii.byCertificate, ck)
		} else {
			ii.byCertificate[ck] = slots
		}
	}
}

// insert stores r, which names no revocation yet, in a new slot.
func (st *store) insert(ii *issuerIndex, r rec) uint32 {
	r.flags &^= flagRevoked | flagFree
	var slot uint32
	if n := len(ii.free); n > 0 {
		slot = ii.free[n-1]
		ii.free = ii.free[:n-1]
		*ii.at(slot) = r
	} else {
		slot = ii.add(r)
	}
	st.retain(recHolder(&r))
	st.link(ii, slot)
	return slot
}

// removeSlot deletes the record in slot and reports whether it was
// revoked.
func (st *store) removeSlot(ii *issuerIndex, slot uint32) bool {
	r := ii.at(slot)
	st.unlink(ii, slot)
	delete(ii.bySerial, r.serial)
	wasRevoked := r.flags&flagRevoked != 0
	delete(ii.revoked, slot)
	st.release(recHolder(r))
	*r = rec{flags: flagFree}
	ii.free = append(ii.free, slot)
	return wasRevoked
}

// applyIssued applies r, an issued entry of issuer k without its
// revocation, which is rev. The record takes r's holder unless it has one
// of higher rank; its revocation is the winner of all it has seen. With
// always, a Change is reported even when nothing changed, as an
// IssuedCertificate's update always was.
func (st *store) applyIssued(k quillv1.IssuerID, r rec, rev *EntryRevocation, ch *changes, always bool) {
	ii := st.issuer(k)
	slot, existed := ii.bySerial[r.serial]
	if !existed {
		slot = st.insert(ii, r)
		if p, ok := ii.pending[r.serial]; ok {
			if !rev.Wins(&p.rev) {
				rev = &p.rev
			}
			delete(ii.pending, r.serial)
			defer st.release(p.holder) // after rev is no longer read
		}
		revoked := st.setRevocation(ii, slot, rev)
		ch.add(k, &r.serial, revoked)
		return
	}
	old := ii.at(slot)
	win := st.revocationOf(ii, slot)
	if rev.Wins(win) {
		win = rev
	}
	if st.rankOf(&r) >= st.rankOf(old) {
		// The same serial is the same entry; the holder is what changes.
		flags := old.flags & flagRevoked
		st.unlink(ii, slot)
		prevHolder := recHolder(old)
		r.flags = r.flags&^flagRevoked | flags
		st.retain(recHolder(&r))
		*ii.at(slot) = r
		st.release(prevHolder)
		st.link(ii, slot)
	}
	if changed := st.setRevocation(ii, slot, win); changed || always {
		ch.add(k, &r.serial, changed)
	}
}

// applyRevocationLine applies a revocation line of issuer k held by
// holder h.
func (st *store) applyRevocationLine(k quillv1.IssuerID, serial serialKey, rev EntryRevocation, h uint32, ch *changes) {
	ii := st.issuer(k)
	if slot, ok := ii.bySerial[serial]; ok {
		if cur := st.revocationOf(ii, slot); rev.Wins(cur) && st.setRevocation(ii, slot, &rev) {
			ch.add(k, &serial, true)
		}
		return
	}
	if p, ok := ii.pending[serial]; ok {
		if !rev.Wins(&p.rev) {
			// The same revocation copied into another segment (a merge
			// of sealed segments) moves to it as an entry would: to the
			// higher stage, or the later applied. Otherwise deleting the
			// segment it was copied from would forget it.
			if rev.Reason == p.rev.Reason && rev.At == p.rev.At && st.holders[h].rank() >= st.holders[p.holder].rank() {
				st.retain(h)
				st.release(p.holder)
				ii.pending[serial] = pendingRevocation{rev: p.rev, holder: h}
			}
			return
		}
		st.release(p.holder)
	}
	st.retain(h)
	ii.pending[serial] = pendingRevocation{rev: rev, holder: h}
}

// recOfEntry compacts an issued entry held by holder h.
func (st *store) recOfEntry(e *Entry, h uint32) (rec, bool) {
	key, ok := keyOfHex(e.Serial)
	if !ok {
		return rec{}, false
	}
	r := rec{serial: key, holder: h, issuedAt: e.IssuedAt, notBefore: e.NotBefore, notAfter: e.NotAfter}
	sh := shape{keyAlgorithm: e.KeyAlgorithm, signatureAlgorithm: e.SignatureAlgorithm, template: e.Template}
	uid := ""
	if o := e.Origin; o != nil {
		sh.originKind, sh.originNamespace = o.Kind, o.Namespace
		r.request, uid = o.Name, o.UID
		if o.Certificate != "" {
			r.cert = st.str(o.Certificate)
			st.str(o.Namespace) // link keys Certificates by it
		}
	}
	r.shape = st.shapeOf(sh)
	st.setUID(&r, uid)
	if e.NoRevAvail {
		r.flags |= flagNoRevAvail
	}
	if len(e.Certificate) > 0 {
		r.flags |= flagHasCertificate
	}
	return r, true
}

// applySegment applies a segment and its entries, unless the segment is
// already applied: segments never change.
func (st *store) applySegment(seg *quillv1.LedgerSegment, entries []Entry, ch *changes) {
	if !st.believes(seg.Spec.IssuerRef.ID(), seg.Namespace) {
		return
	}
	id, fresh := st.liveSegment(seg)
	if !fresh {
		return
	}
	k := seg.Spec.IssuerRef.ID()
	for i := range entries {
		e := &entries[i]
		if e.IsRevocationLine() {
			if key, ok := keyOfHex(e.Serial); ok && e.Revocation != nil {
				st.applyRevocationLine(k, key, *e.Revocation, id, ch)
			}
			continue
		}
		if r, ok := st.recOfEntry(e, id); ok {
			st.applyIssued(k, r, e.Revocation, ch, false)
		}
	}
}

// liveSegment marks seg's holder live and reports whether it was not
// before.
func (st *store) liveSegment(seg *quillv1.LedgerSegment) (uint32, bool) {
	id := st.holderFor(segmentKey(seg.Namespace, seg.Name), holder{
		name: seg.Name, namespace: seg.Namespace,
	})
	h := &st.holders[id]
	if h.live {
		return id, false
	}
	h.live, h.legacy = true, false
	h.issuer = seg.Spec.IssuerRef.ID()
	h.stage = seg.Spec.Stage
	h.info = SegmentInfo{
		Name: seg.Name, Namespace: seg.Namespace, Stage: seg.Spec.Stage,
		ExpiresAfter: seg.Spec.ExpiresAfter.Time, Entries: seg.Spec.Entries, Revocations: seg.Spec.Revocations,
		Created: seg.CreationTimestamp.Time,
	}
	return id, true
}

// markCorrupt records seg, whose data does not decode, as live and
// corrupt, so that it is counted until it is deleted.
func (st *store) markCorrupt(seg *quillv1.LedgerSegment) {
	id, fresh := st.liveSegment(seg)
	if fresh {
		st.holders[id].corrupt = true
		st.corrupt++
	}
}

// hasLiveSegment reports whether the segment ns/name is applied.
func (st *store) hasLiveSegment(ns, name string) bool {
	id, ok := st.holderKeys[segmentKey(ns, name)]
	return ok && st.holders[id].live
}

// deleteSegment applies the deletion of segment ns/name: a Sealed one
// takes the records it holds (and its pending revocations) with it; a
// Journal takes none, for its entries were sealed before it was deleted.
func (st *store) deleteSegment(ns, name string, ch *changes) {
	id, ok := st.holderKeys[segmentKey(ns, name)]
	if !ok || !st.holders[id].live {
		return
	}
	h := &st.holders[id]
	h.live = false
	if h.corrupt {
		h.corrupt = false
		st.corrupt--
	}
	if h.stage == quillv1.LedgerStageSealed {
		k := h.issuer
		if ii := st.issuers[k]; ii != nil {
			for serial, p := range ii.pending {
				if p.holder == id {
					delete(ii.pending, serial)
					st.release(id)
				}
			}
			// Every remaining reference is a record. Retention deletes the
			// oldest segments, whose records sit in the first slots, so
			// the walk usually stops early.
			ii.each(func(slot uint32, r *rec) bool {
				if r.flags&flagLegacy == 0 && r.holder == id {
					serial := r.serial
					ch.add(k, &serial, st.removeSlot(ii, slot))
				}
				return st.holders[id].refs > 0
			})
		}
	}
	st.forgetIfUnused(id)
}

// derivedEntryName is EntryName(k, serial), without formatting a big.Int
// on every Lookup of a record not migrated yet: the key is the serial in
// 20 bytes, so its hex is EntryName's 40 digits.
func derivedEntryName(k quillv1.IssuerID, serial *serialKey) string {
	prefix := "qi."
	if k.IsCluster() {
		prefix = "qci."
	}
	if len(prefix)+len(k.Name)+1+2*len(serial) > maxNameLen {
		return EntryName(k, serial.bigInt())
	}
	return prefix + k.Name + "." + hex.EncodeToString(serial[:])
}

// legacyHolder is the holder of the IssuedCertificate ns/name of issuer k
// holding serial: a derived name when it is EntryName's (every record
// Quill wrote), else a holder of its own.
func (st *store) legacyHolder(k quillv1.IssuerID, serial *serialKey, ns, name string) (uint32, uint8) {
	if name == derivedEntryName(k, serial) {
		return st.str(ns), flagLegacy | flagDerivedName
	}
	return st.holderFor(legacyKey(ns, name), holder{name: name, namespace: ns, issuer: k, legacy: true}), flagLegacy
}

// applyLegacy applies an IssuedCertificate, the ledger's per-certificate
// object before segments.
func (st *store) applyLegacy(e *quillv1.IssuedCertificate, ch *changes) {
	if !st.believes(e.Spec.IssuerRef.ID(), e.Namespace) {
		return
	}
	key, ok := keyOfHex(e.Spec.SerialNumber)
	if !ok {
		return // a record nobody can look up; the schema prevents it
	}
	k := e.Spec.IssuerRef.ID()
	s := &e.Spec
	h, flags := st.legacyHolder(k, &key, e.Namespace, e.Name)
	r := rec{
		serial: key, holder: h, flags: flags, request: s.Origin.Name,
		issuedAt: s.IssuedAt.UnixMicro(), notBefore: s.NotBefore.Unix(), notAfter: s.NotAfter.Unix(),
		shape: st.shapeOf(shape{
			originKind: s.Origin.Kind, originNamespace: s.Origin.Namespace, keyAlgorithm: s.KeyAlgorithm,
			signatureAlgorithm: s.SignatureAlgorithm, template: s.Template,
		}),
	}
	if s.Origin.Certificate != "" {
		r.cert = st.str(s.Origin.Certificate)
		st.str(s.Origin.Namespace)
	}
	st.setUID(&r, s.Origin.UID)
	if s.NoRevocationAvailable {
		r.flags |= flagNoRevAvail
	}
	if s.Certificate != "" {
		r.flags |= flagHasCertificate
	}
	var rev *EntryRevocation
	if rv := e.Status.Revocation; rv != nil {
		rev = &EntryRevocation{Reason: rv.Reason, At: rv.RevokedAt.Unix()}
	}
	if flags&flagDerivedName == 0 {
		st.holders[h].live = true
	}
	st.applyIssued(k, r, rev, ch, true)
	if flags&flagDerivedName == 0 {
		st.forgetIfUnused(h)
	}
}

// deleteLegacy applies the deletion of an IssuedCertificate: its record
// goes only if it still points at it, not at a segment it was migrated
// into.
func (st *store) deleteLegacy(e *quillv1.IssuedCertificate, ch *changes) {
	if id, ok := st.holderKeys[legacyKey(e.Namespace, e.Name)]; ok {
		st.holders[id].live = false
		defer st.forgetIfUnused(id)
	}
	key, ok := keyOfHex(e.Spec.SerialNumber)
	if !ok {
		return
	}
	k := e.Spec.IssuerRef.ID()
	ii := st.issuers[k]
	if ii == nil {
		return
	}
	slot, ok := ii.bySerial[key]
	if !ok {
		return
	}
	r := ii.at(slot)
	if r.flags&flagLegacy == 0 {
		return
	}
	if r.flags&flagDerivedName != 0 {
		if st.strList[r.holder] != e.Namespace || e.Name != derivedEntryName(k, &key) {
			return
		}
	} else if h := &st.holders[r.holder]; h.namespace != e.Namespace || h.name != e.Name {
		return
	}
	ch.add(k, &key, st.removeSlot(ii, slot))
}

// put stores r, replacing what the index held for its serial.
func (st *store) put(in Record, ch *changes) {
	key, ok := keyOf(in.Serial)
	if !ok {
		return
	}
	k := in.Issuer
	ii := st.issuer(k)
	var prev *EntryRevocation
	slot, existed := ii.bySerial[key]
	if existed {
		prev = st.revocationOf(ii, slot)
		st.removeSlot(ii, slot)
	}
	r := rec{
		serial: key, request: in.RequestName,
		issuedAt: in.IssuedAt.UnixMicro(), notBefore: in.NotBefore.Unix(), notAfter: in.NotAfter.Unix(),
		shape: st.shapeOf(shape{
			originKind: in.OriginKind, originNamespace: in.OriginNamespace, keyAlgorithm: in.KeyAlgorithm,
			signatureAlgorithm: in.SignatureAlgorithm, template: in.Template,
		}),
	}
	switch {
	case in.Legacy:
		r.holder, r.flags = st.legacyHolder(k, &key, in.Namespace, in.Segment)
	case in.Segment != "":
		r.holder = st.holderFor(segmentKey(in.Namespace, in.Segment), holder{name: in.Segment, namespace: in.Namespace, issuer: k})
	}
	if in.Certificate != "" {
		r.cert = st.str(in.Certificate)
		st.str(in.OriginNamespace)
	}
	st.setUID(&r, string(in.RequestUID))
	if in.NoRevocationAvailable {
		r.flags |= flagNoRevAvail
	}
	if in.HasCertificate {
		r.flags |= flagHasCertificate
	}
	slot = st.insert(ii, r)
	var now *EntryRevocation
	if in.Revoked {
		now = &EntryRevocation{Reason: reasonName(in.Reason), At: in.RevokedAt.Unix()}
		st.setRevocation(ii, slot, now)
	}
	changed := (prev == nil) != (now == nil) || prev != nil && *prev != *now
	ch.add(k, &key, changed)
}

// reasonName is the RevocationReason of an RFC 5280 code; unspecified for
// a code Quill does not use.
func reasonName(code int) quillv1.RevocationReason {
	for name, c := range quillv1.RevocationReasonCodes {
		if c == code {
			return name
		}
	}
	return quillv1.ReasonUnspecified
}

// changes collects what one update changed, for Subscribe's callbacks.
type changes struct {
	serials []Change
	many    map[quillv1.IssuerID]bool // issuer → revocation changed, past maxSerialChanges
}

func (c *changes) add(k quillv1.IssuerID, serial *serialKey, revocationChanged bool) {
	if c.many != nil {
		c.many[k] = c.many[k] || revocationChanged
		return
	}
	c.serials = append(c.serials, Change{Issuer: k, Serial: serial.bigInt(), RevocationChanged: revocationChanged})
	if len(c.serials) > maxSerialChanges {
		c.many = map[quillv1.IssuerID]bool{}
		for _, s := range c.serials {
			c.many[s.Issuer] = c.many[s.Issuer] || s.RevocationChanged
		}
		c.serials = nil
	}
}

func (c *changes) list() []Change {
	if c.many == nil {
		return c.serials
	}
	out := make([]Change, 0, len(c.many))
	for k, rev := range c.many {
		out = append(out, Change{Issuer: k, RevocationChanged: rev})
	}
	return out
}

// The methods below make Index a cache.ReflectorStore over both kinds of
// ledger object. Run feeds the same paths from its own paged lists and
// watches (load.go).

func objectOf(obj any) any {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return d.Obj
	}
	return obj
}

// Add implements cache.ReflectorStore.
func (ix *Index) Add(obj any) error { return ix.Update(obj) }

// Update implements cache.ReflectorStore. A segment whose data does not
// decode is logged and counted (CorruptSegments), not returned as an
// error: the rest of the ledger must still load.
func (ix *Index) Update(obj any) error {
	return ix.apply(objectOf(obj), log.Log.WithName("ledger-index"))
}

// apply applies an object listed or watched.
func (ix *Index) apply(obj any, logger logr.Logger) error {
	var ch changes
	switch o := obj.(type) {
	case *quillv1.IssuedCertificate:
		ix.mu.Lock()
		delete(ix.created, legacyKey(o.Namespace, o.Name)) // the watch has it now
		ix.st.applyLegacy(o, &ch)
		ix.mu.Unlock()
	case *quillv1.LedgerSegment:
		ix.mu.RLock()
		known := ix.st.hasLiveSegment(o.Namespace, o.Name)
		ix.mu.RUnlock()
		var entries []Entry
		var err error
		if !known {
			// Decoded outside the lock: readers wait for no gunzip.
			entries, err = decodeSegment(o)
		}
		ix.mu.Lock()
		delete(ix.created, segmentKey(o.Namespace, o.Name))
		if err != nil {
			ix.st.markCorrupt(o)
		} else {
			ix.st.applySegment(o, entries, &ch)
		}
		ix.mu.Unlock()
		if err != nil {
			logger.Error(err, "skipping a ledger segment that does not decode; its entries are missing from the index")
		}
	default:
		return fmt.Errorf("ledger index: unexpected object %T", obj)
	}
	changed := ch.list()
	if ix.ignoredChanged() {
		// Nothing a reader sees changed, but CorruptSegments or
		// ForeignObjects did: subscribers that report them hear of it.
		changed = append(changed, Change{Issuer: issuerOf(obj)})
	}
	ix.notify(changed...)
	return nil
}

// ignoredChanged reports whether CorruptSegments or ForeignObjects changed
// since it was last called.
func (ix *Index) ignoredChanged() bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	now := [2]int{ix.st.corrupt, ix.st.foreign}
	changed := now != ix.lastIgnored
	ix.lastIgnored = now
	return changed
}

// issuerOf is the issuer a ledger object names.
func issuerOf(obj any) quillv1.IssuerID {
	switch o := obj.(type) {
	case *quillv1.IssuedCertificate:
		return o.Spec.IssuerRef.ID()
	case *quillv1.LedgerSegment:
		return o.Spec.IssuerRef.ID()
	}
	return quillv1.IssuerID{}
}

// decodeSegment reads seg's entries, all of them or none: a segment that
// fails half-way is skipped whole, as corrupt.
func decodeSegment(seg *quillv1.LedgerSegment) ([]Entry, error) {
	entries := make([]Entry, 0, seg.Spec.Entries+seg.Spec.Revocations)
	err := SegmentEntries(seg, func(e *Entry) error {
		entries = append(entries, *e)
		return nil
	})
	return entries, err
}

// Delete implements cache.ReflectorStore.
func (ix *Index) Delete(obj any) error {
	var ch changes
	switch o := objectOf(obj).(type) {
	case *quillv1.IssuedCertificate:
		ix.mu.Lock()
		delete(ix.created, legacyKey(o.Namespace, o.Name))
		ix.st.deleteLegacy(o, &ch)
		ix.mu.Unlock()
	case *quillv1.LedgerSegment:
		ix.mu.Lock()
		delete(ix.created, segmentKey(o.Namespace, o.Name))
		ix.st.deleteSegment(o.Namespace, o.Name, &ch)
		ix.mu.Unlock()
	default:
		return fmt.Errorf("ledger index: unexpected object %T", obj)
	}
	ix.notify(ch.list()...)
	return nil
}

// Replace implements cache.ReflectorStore: the reflector hands over the
// whole ledger, segments and IssuedCertificates, as of resourceVersion.
func (ix *Index) Replace(list []any, resourceVersion string) error {
	fresh := newStore(ix.clusterNS)
	logger := log.Log.WithName("ledger-index")
	for _, obj := range list {
		if err := fresh.load(obj, logger); err != nil {
			return err
		}
	}
	ix.replace(fresh, resourceVersion, resourceVersion)
	return nil
}

// load applies a listed object to a store nobody else sees yet.
func (st *store) load(obj any, logger logr.Logger) error {
	var ch changes
	switch o := obj.(type) {
	case *quillv1.IssuedCertificate:
		st.applyLegacy(o, &ch)
	case *quillv1.LedgerSegment:
		entries, err := decodeSegment(o)
		if err != nil {
			st.markCorrupt(o)
			logger.Error(err, "skipping a ledger segment that does not decode; its entries are missing from the index")
			return nil
		}
		st.applySegment(o, entries, &ch)
	default:
		return fmt.Errorf("ledger index: unexpected object %T", obj)
	}
	return nil
}

// replace swaps in fresh, the whole ledger with its IssuedCertificates
// listed as of icRV and its segments as of segRV, keeping the objects this
// process created after the list of their kind (see PutSegment), and
// marks the index synced.
//
// A created object the list lacks is kept when it was created after the
// list's resourceVersion: the list came from a cache that had not seen it
// yet. resourceVersions are opaque in general; they are compared as
// numbers only here, where an etcd-backed API server gives both from one
// increasing revision counter. When either is not a number, the list wins,
// as it does for any object it no longer holds.
func (ix *Index) replace(fresh *store, icRV, segRV string) {
	icList, icErr := strconv.ParseUint(icRV, 10, 64)
	segList, segErr := strconv.ParseUint(segRV, 10, 64)
	var ignored changes
	ix.mu.Lock()
	for key, c := range ix.created {
		switch {
		case c.seg != nil && segErr == nil && c.rv > segList && !fresh.hasLiveSegment(c.seg.Namespace, c.seg.Name):
			fresh.applySegment(c.seg, c.entries, &ignored)
			continue // still waiting for the watch
		case c.ic != nil && icErr == nil && c.rv > icList && !fresh.holdsLegacy(c.ic):
			fresh.applyLegacy(c.ic, &ignored)
			continue
		}
		delete(ix.created, key)
	}
	old := ix.st
	ix.st = fresh
	ix.mu.Unlock()
	ix.synced.Store(true)
	seen := map[quillv1.IssuerID]bool{}
	var changes []Change
	for _, m := range []map[quillv1.IssuerID]*issuerIndex{old.issuers, fresh.issuers} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				changes = append(changes, Change{Issuer: k, RevocationChanged: true})
			}
		}
	}
	ix.notify(changes...)
}

// holdsLegacy reports whether the store has a record of e's serial.
func (st *store) holdsLegacy(e *quillv1.IssuedCertificate) bool {
	key, ok := keyOfHex(e.Spec.SerialNumber)
	if !ok {
		return true // nothing to keep
	}
	ii := st.issuers[e.Spec.IssuerRef.ID()]
	if ii == nil {
		return false
	}
	_, ok = ii.bySerial[key]
	return ok
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
// compact records in memory under the read lock: no API calls and no
// allocation per record; callers batch recounts rather than run one per
// certificate (BenchmarkInventory, docs/benchmarks.md).
func (ix *Index) Inventory(k quillv1.IssuerID, now time.Time) Inventory {
	var inv Inventory
	sec := now.Unix()
	nextExpiry := int64(0)
	ix.mu.RLock()
	if ii := ix.st.issuers[k]; ii != nil {
		for _, chunk := range ii.recs {
			for i := range chunk {
				r := &chunk[i]
				if r.flags&flagFree != 0 || !unexpired(r, sec) {
					continue
				}
				sh := &ix.st.shapeList[r.shape.index()]
				vulnerable := QuantumVulnerable(sh.keyAlgorithm, sh.signatureAlgorithm)
				inv.Unexpired++
				key := countFor(&inv.KeyAlgorithms, sh.keyAlgorithm)
				sig := countFor(&inv.SignatureAlgorithms, sh.signatureAlgorithm)
				key.Certificates++
				sig.Certificates++
				if vulnerable {
					inv.QuantumVulnerable++
					key.QuantumVulnerable++
					sig.QuantumVulnerable++
				}
				if r.flags&flagRevoked != 0 {
					inv.Revoked++
					key.Revoked++
					sig.Revoked++
				}
				if inv.Unexpired == 1 || r.notAfter < nextExpiry {
					nextExpiry = r.notAfter
				}
			}
		}
	}
	ix.mu.RUnlock()
	if inv.Unexpired > 0 {
		inv.NextExpiry = time.Unix(nextExpiry, 0).UTC()
	}
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
