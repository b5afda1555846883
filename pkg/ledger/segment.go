package ledger

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/names"
)

// Entry is one line of a ledger segment or of the archive: either an
// issued certificate (Fingerprint set) or, with only Serial, NotAfter and
// Revocation set, the revocation of a certificate recorded in another
// segment. An issued entry may carry its own revocation, folded in when
// segments are sealed or archived.
//
// The JSON keys are short on purpose: a segment holds thousands of entries
// and is decoded on every controller start.
type Entry struct {
	// Serial is the serial number in lowercase hex (SerialHex).
	Serial string `json:"s"`
	// Fingerprint is the SHA-256 of the DER certificate, lowercase hex;
	// empty on a revocation line.
	Fingerprint string `json:"f,omitempty"`
	// IssuedAt is when Quill signed, in Unix microseconds.
	IssuedAt int64 `json:"t,omitempty"`
	// NotBefore and NotAfter are the validity in Unix seconds. A
	// revocation line carries its certificate's NotAfter so that retention
	// knows when the line is no longer needed.
	NotBefore int64 `json:"nb,omitempty"`
	NotAfter  int64 `json:"na,omitempty"`

	// KeyAlgorithm and SignatureAlgorithm as IssuedCertificate names them
	// (ECDSA-P256, ML-DSA-65; ECDSA-SHA256, ...).
	KeyAlgorithm       string `json:"ka,omitempty"`
	SignatureAlgorithm string `json:"sa,omitempty"`

	Subject        string            `json:"sub,omitempty"`
	DNSNames       []string          `json:"dns,omitempty"`
	IPAddresses    []string          `json:"ip,omitempty"`
	URIs           []string          `json:"uri,omitempty"`
	EmailAddresses []string          `json:"em,omitempty"`
	OtherNames     []EntryOtherName  `json:"on,omitempty"`
	IsCA           bool              `json:"ca,omitempty"`
	NoRevAvail     bool              `json:"nra,omitempty"`
	Origin         *EntryOrigin      `json:"o,omitempty"`
	Requester      string            `json:"rq,omitempty"`
	Template       string            `json:"tp,omitempty"`
	Revocation     *EntryRevocation  `json:"rv,omitempty"`
	Extra          map[string]string `json:"x,omitempty"`

	// Certificate is the DER certificate, kept only while its request may
	// still need it back (crash recall); see LedgerStageJournal.
	Certificate []byte `json:"der,omitempty"`
}

// EntryOtherName is an otherName SAN: its dotted type-id and UTF8String
// value.
type EntryOtherName struct {
	TypeID string `json:"id"`
	Value  string `json:"v"`
}

// EntryOrigin says what a certificate was signed for (see LedgerOrigin).
type EntryOrigin struct {
	// Kind is one of the quillv1.OriginKind constants.
	Kind      string `json:"k"`
	Namespace string `json:"ns,omitempty"`
	Name      string `json:"n"`
	UID       string `json:"uid,omitempty"`
	// Certificate is the cert-manager Certificate, when verified (see
	// controllers/issuance.CertificateOf).
	Certificate string `json:"c,omitempty"`
}

// EntryRevocation records a revocation. Revocation is permanent; when a
// ledger holds two for one serial (two leaders in a split second), the
// earliest At wins, then the smaller Reason name.
type EntryRevocation struct {
	Reason quillv1.RevocationReason `json:"r"`
	// At is the revocation time in Unix seconds.
	At int64 `json:"at"`
	// By names what revoked: "QuillRevocation <ns>/<name>",
	// "certificate-deleted" or "superseded".
	By string `json:"by,omitempty"`
}

// IsRevocationLine reports whether e only revokes a certificate recorded
// elsewhere.
func (e *Entry) IsRevocationLine() bool { return e.Fingerprint == "" }

// SerialInt parses e's serial; false unless it is spelled as SerialHex
// spells it (lowercase hex, no sign, no leading zero) in at most 40
// digits. The index keys serials by value, but readers find an entry in
// its segment by spelling: an entry spelled otherwise would be indexed and
// then never found.
func (e *Entry) SerialInt() (*big.Int, bool) {
	n, ok := parseSerialHex(e.Serial)
	if !ok || SerialHex(n) != e.Serial {
		return nil, false
	}
	return n, true
}

// parseSerialHex parses 1 to 40 lowercase hex digits, as the
// IssuedCertificate schema allows (leading zeros included).
func parseSerialHex(s string) (*big.Int, bool) {
	if s == "" || len(s) > 40 {
		return nil, false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return nil, false
		}
	}
	return new(big.Int).SetString(s, 16)
}

// Wins reports whether revocation a takes precedence over b (see
// EntryRevocation). A nil b always loses.
func (a *EntryRevocation) Wins(b *EntryRevocation) bool {
	if b == nil {
		return a != nil
	}
	if a == nil {
		return false
	}
	if a.At != b.At {
		return a.At < b.At
	}
	return a.Reason < b.Reason
}

// EntryOf builds the ledger entry of cert, signed at issuedAt for origin.
// The entry keeps the certificate (for crash recall); sealing drops it.
func EntryOf(cert *x509.Certificate, issuedAt time.Time, origin Origin) (Entry, error) {
	alg, err := issuance.KeyAlgorithmOf(cert.PublicKey)
	if err != nil {
		return Entry{}, fmt.Errorf("ledger entry: %w", err)
	}
	sum := sha256.Sum256(cert.Raw)
	e := Entry{
		Serial:             SerialHex(cert.SerialNumber),
		Fingerprint:        hex.EncodeToString(sum[:]),
		IssuedAt:           issuedAt.UnixMicro(),
		NotBefore:          cert.NotBefore.Unix(),
		NotAfter:           cert.NotAfter.Unix(),
		KeyAlgorithm:       string(alg),
		SignatureAlgorithm: cert.SignatureAlgorithm.String(),
		Subject:            names.DescribeSubject(cert.RawSubject, cert.Subject),
		DNSNames:           cert.DNSNames,
		EmailAddresses:     cert.EmailAddresses,
		IsCA:               cert.IsCA,
		// Read from the certificate itself, not from the issuer's
		// setting, which may change after signing.
		NoRevAvail: issuance.HasNoRevAvail(cert),
		Requester:  origin.Requester,
		Template:   origin.Template,
		Origin: &EntryOrigin{
			Kind: origin.Kind, Namespace: origin.Namespace, Name: origin.Name,
			UID: string(origin.UID), Certificate: origin.Certificate,
		},
		Certificate: cert.Raw,
	}
	for _, ip := range cert.IPAddresses {
		e.IPAddresses = append(e.IPAddresses, ip.String())
	}
	for _, u := range cert.URIs {
		e.URIs = append(e.URIs, u.String())
	}
	// crypto/x509 drops otherNames; Quill signs them (pkg/issuance), so it
	// reads them back from the certificate itself.
	others, err := names.OtherNamesOfCertificate(cert)
	if err != nil {
		return Entry{}, fmt.Errorf("ledger entry: %w", err)
	}
	for _, o := range others {
		e.OtherNames = append(e.OtherNames, EntryOtherName{TypeID: o.TypeID.String(), Value: o.Value})
	}
	return e, nil
}

// EntryOfLegacy converts an IssuedCertificate, the ledger's per-certificate
// object before segments, into an entry, revocation and certificate
// included.
func EntryOfLegacy(ic *quillv1.IssuedCertificate) (Entry, error) {
	s := ic.Spec
	e := Entry{
		Serial:             s.SerialNumber,
		Fingerprint:        s.SHA256Fingerprint,
		IssuedAt:           s.IssuedAt.UnixMicro(),
		NotBefore:          s.NotBefore.Unix(),
		NotAfter:           s.NotAfter.Unix(),
		KeyAlgorithm:       s.KeyAlgorithm,
		SignatureAlgorithm: s.SignatureAlgorithm,
		Subject:            s.Subject,
		DNSNames:           s.DNSNames,
		IPAddresses:        s.IPAddresses,
		URIs:               s.URIs,
		EmailAddresses:     s.EmailAddresses,
		IsCA:               s.IsCA,
		NoRevAvail:         s.NoRevocationAvailable,
		Requester:          s.Requester,
		Template:           s.Template,
		Origin: &EntryOrigin{
			Kind: s.Origin.Kind, Namespace: s.Origin.Namespace, Name: s.Origin.Name,
			UID: s.Origin.UID, Certificate: s.Origin.Certificate,
		},
	}
	for _, o := range s.OtherNames {
		e.OtherNames = append(e.OtherNames, EntryOtherName{TypeID: o.TypeID, Value: o.Value})
	}
	if rev := ic.Status.Revocation; rev != nil {
		e.Revocation = &EntryRevocation{Reason: rev.Reason, At: rev.RevokedAt.Unix(), By: rev.By}
	}
	n, ok := parseSerialHex(s.SerialNumber)
	if !ok {
		return Entry{}, fmt.Errorf("%w: IssuedCertificate %s/%s has serial %q", ErrCorruptSegment, ic.Namespace, ic.Name, s.SerialNumber)
	}
	e.Serial = SerialHex(n) // the schema allows leading zeros; entries do not

	if b, _ := pem.Decode([]byte(s.Certificate)); b != nil {
		e.Certificate = b.Bytes
	}
	return e, nil
}

// ErrCorruptSegment is wrapped by every error about a segment or archive
// file whose data cannot be decoded.
var ErrCorruptSegment = errors.New("corrupt ledger segment")

// maxDecodedSegment bounds what one segment may decompress to, so that a
// forged segment cannot exhaust the controller's memory.
const maxDecodedSegment = 64 << 20

// EncodeEntries encodes entries in the gzip+jsonl/v1 format.
func EncodeEntries(entries []Entry) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	enc := json.NewEncoder(zw)
	for i := range entries {
		if err := enc.Encode(&entries[i]); err != nil {
			return nil, fmt.Errorf("encoding ledger entry %s: %w", entries[i].Serial, err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DecodeEntries calls fn for every entry of data, in the gzip+jsonl/v1
// format, in order. Every entry is decoded into fresh memory, so fn may
// keep it. An error from fn ends the walk and is returned as is.
func DecodeEntries(data []byte, fn func(*Entry) error) error {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorruptSegment, err)
	}
	defer zr.Close()
	return decodeLines(io.LimitReader(zr, maxDecodedSegment+1), fn)
}

// DecodeEntriesFrom is DecodeEntries over a gzip stream, such as an
// archive file; it has no size bound beyond the one on each line.
func DecodeEntriesFrom(r io.Reader, fn func(*Entry) error) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorruptSegment, err)
	}
	defer zr.Close()
	zr.Multistream(true)
	return decodeLines(zr, fn)
}

func decodeLines(r io.Reader, fn func(*Entry) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	read := 0
	for sc.Scan() {
		line := sc.Bytes()
		read += len(line) + 1
		if read > maxDecodedSegment {
			return fmt.Errorf("%w: decodes to more than %d bytes", ErrCorruptSegment, maxDecodedSegment)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e Entry
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("%w: %v", ErrCorruptSegment, err)
		}
		if _, ok := e.SerialInt(); !ok {
			return fmt.Errorf("%w: serial %q", ErrCorruptSegment, e.Serial)
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrCorruptSegment, err)
	}
	return nil
}

// Segment name stages: the letter after the issuer in a segment's name.
const (
	segmentJournalLetter = "j"
	segmentSealedLetter  = "s"
)

// SegmentName names a new segment of issuer k at stage, first ordered by
// t: the issuer kind's short name, the issuer's name (a digest when too
// long), the stage's letter and t in 16 hex digits of Unix nanoseconds,
// then 8 random hex digits so that two writers never collide.
func SegmentName(k quillv1.IssuerID, stage string, t time.Time) string {
	prefix := "qi"
	if k.IsCluster() {
		prefix = "qci"
	}
	letter := segmentJournalLetter
	if stage == quillv1.LedgerStageSealed {
		letter = segmentSealedLetter
	}
	var nonce [4]byte
	_, _ = rand.Read(nonce[:])
	suffix := fmt.Sprintf("%s%016x%x", letter, uint64(t.UnixNano()), nonce)
	name := prefix + "." + strings.ToLower(k.Name) + "." + suffix
	if len(name) > maxNameLen {
		sum := sha256.Sum256([]byte(k.Name))
		name = prefix + "." + hex.EncodeToString(sum[:8]) + "." + suffix
	}
	return name
}

// SegmentSummary is what a segment's spec says about its data besides the
// data itself.
type SegmentSummary struct {
	Entries, Revocations, Certificates int32
	FirstIssuedAt, LastIssuedAt        int64 // Unix microseconds; 0 when none
	ExpiresAfter                       int64 // Unix seconds
}

// Summarize describes entries for a segment's spec.
func Summarize(entries []Entry) SegmentSummary {
	var s SegmentSummary
	for i := range entries {
		e := &entries[i]
		if e.NotAfter > s.ExpiresAfter {
			s.ExpiresAfter = e.NotAfter
		}
		if e.IsRevocationLine() {
			s.Revocations++
			continue
		}
		s.Entries++
		if e.Revocation != nil {
			s.Revocations++
		}
		if len(e.Certificate) > 0 {
			s.Certificates++
		}
		if s.FirstIssuedAt == 0 || e.IssuedAt < s.FirstIssuedAt {
			s.FirstIssuedAt = e.IssuedAt
		}
		if e.IssuedAt > s.LastIssuedAt {
			s.LastIssuedAt = e.IssuedAt
		}
	}
	return s
}

// NewSegment builds the LedgerSegment object holding entries for issuer k
// in homeNamespace. It does not write it.
func NewSegment(k quillv1.IssuerID, homeNamespace, stage string, now time.Time, entries []Entry) (*quillv1.LedgerSegment, error) {
	data, err := EncodeEntries(entries)
	if err != nil {
		return nil, err
	}
	sum := Summarize(entries)
	seg := &quillv1.LedgerSegment{
		ObjectMeta: metav1.ObjectMeta{
			Name:      SegmentName(k, stage, now),
			Namespace: homeNamespace,
			Labels:    map[string]string{LabelIssuerKind: k.Kind, LabelStage: stage},
		},
		Spec: quillv1.LedgerSegmentSpec{
			IssuerRef:    k.Ref(),
			Stage:        stage,
			Entries:      sum.Entries,
			Revocations:  sum.Revocations,
			Certificates: sum.Certificates,
			ExpiresAfter: metav1.NewTime(time.Unix(sum.ExpiresAfter, 0).UTC()),
			Format:       quillv1.LedgerFormatGzipJSONLines,
			Data:         data,
		},
	}
	if len(k.Name) <= 63 {
		seg.Labels[LabelIssuerName] = k.Name
	}
	if sum.FirstIssuedAt != 0 {
		first := metav1.NewMicroTime(time.UnixMicro(sum.FirstIssuedAt).UTC())
		last := metav1.NewMicroTime(time.UnixMicro(sum.LastIssuedAt).UTC())
		seg.Spec.FirstIssuedAt, seg.Spec.LastIssuedAt = &first, &last
	}
	return seg, nil
}

// LabelStage carries a segment's stage, for kubectl selection.
const LabelStage = "quill.dev/ledger-stage"

// MaxSegmentBytes bounds a segment's encoded data: well under etcd's
// 1.5 MiB request limit once base64-encoded inside the object.
const MaxSegmentBytes = 512 << 10

// SegmentEntries decodes seg's entries, checking that its format is one
// this version reads.
func SegmentEntries(seg *quillv1.LedgerSegment, fn func(*Entry) error) error {
	if seg.Spec.Format != quillv1.LedgerFormatGzipJSONLines {
		return fmt.Errorf("%w: segment %s/%s has format %q", ErrCorruptSegment, seg.Namespace, seg.Name, seg.Spec.Format)
	}
	if err := DecodeEntries(seg.Spec.Data, fn); err != nil {
		return fmt.Errorf("segment %s/%s: %w", seg.Namespace, seg.Name, err)
	}
	return nil
}

// ErrEntryGone is returned by ReadEntry when the record's segment no
// longer holds it (sealed or archived meanwhile): look it up again.
var ErrEntryGone = errors.New("the ledger entry is no longer in that segment")

// ReadEntry reads rec's full entry from the segment (or, for a ledger not
// migrated yet, the IssuedCertificate) the index says holds it. Hot paths
// use the index alone; this serves crash recall, revocation's audit line
// and supersession checks.
func ReadEntry(ctx context.Context, r client.Reader, rec Record) (Entry, error) {
	key := types.NamespacedName{Namespace: rec.Namespace, Name: rec.Segment}
	if rec.Legacy {
		var ic quillv1.IssuedCertificate
		if err := r.Get(ctx, key, &ic); err != nil {
			if apierrors.IsNotFound(err) {
				return Entry{}, fmt.Errorf("%w: IssuedCertificate %s", ErrEntryGone, key)
			}
			return Entry{}, fmt.Errorf("reading ledger record %s: %w", key, err)
		}
		return EntryOfLegacy(&ic)
	}
	var seg quillv1.LedgerSegment
	if err := r.Get(ctx, key, &seg); err != nil {
		if apierrors.IsNotFound(err) {
			return Entry{}, fmt.Errorf("%w: segment %s", ErrEntryGone, key)
		}
		return Entry{}, fmt.Errorf("reading ledger segment %s: %w", key, err)
	}
	want := SerialHex(rec.Serial)
	var found *Entry
	err := SegmentEntries(&seg, func(e *Entry) error {
		if e.Serial == want && !e.IsRevocationLine() {
			found = e
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return Entry{}, err
	}
	if found == nil {
		return Entry{}, fmt.Errorf("%w: serial %s not in segment %s", ErrEntryGone, want, key)
	}
	return *found, nil
}

var errStop = errors.New("stop")
