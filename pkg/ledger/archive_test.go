package ledger

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

func TestArchiveDirName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 250)
	for _, tc := range []struct {
		name string
		k    quillv1.IssuerID
		want string
	}{
		{"namespaced", quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "team-a", Name: "web.ca"}, "QuillIssuer_team-a_web.ca"},
		{"cluster", quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: "root"}, "QuillClusterIssuer_root"},
		{"too-long", quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "team-a", Name: long}, "QuillIssuer_team-a_sha256-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := ArchiveDirName(tc.k)
			if !strings.HasPrefix(got, tc.want) || len(got) > maxFileName {
				t.Fatalf("ArchiveDirName = %q; want %q (or that prefix), at most %d bytes", got, tc.want, maxFileName)
			}
			back, ok := IssuerOfArchiveDir(got)
			if reversible := tc.name != "too-long"; ok != reversible || ok && back != tc.k {
				t.Fatalf("IssuerOfArchiveDir(%q) = %v, %v; want %v, %v", got, back, ok, tc.k, reversible)
			}
		})
	}
	for _, bad := range []string{"", "QuillIssuer_ns", "QuillIssuer__name", "Other_x", "QuillClusterIssuer_a_b", ".tmp"} {
		if k, ok := IssuerOfArchiveDir(bad); ok {
			t.Errorf("IssuerOfArchiveDir(%q) = %v; want not an issuer's directory", bad, k)
		}
	}
	a := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "team-a", Name: long + "x"}
	b := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "team-a", Name: long + "y"}
	if ArchiveDirName(a) == ArchiveDirName(b) {
		t.Fatal("two long issuer names share an archive directory")
	}
}

func compactArchiveEntries(serials ...int64) []Entry {
	var out []Entry
	for _, s := range serials {
		out = append(out, Entry{Serial: SerialHex(big.NewInt(s)), Fingerprint: fmt.Sprintf("%064x", s), IssuedAt: compactT0.UnixMicro(),
			NotAfter: compactT0.Add(time.Hour).Unix(), KeyAlgorithm: "ECDSA-P256"})
	}
	return out
}

func compactReadArchive(t *testing.T, dir string, k quillv1.IssuerID) ([]string, error) {
	t.Helper()
	var got []string
	err := ReadArchive(dir, k, func(e *Entry) error { got = append(got, e.Serial); return nil })
	return got, err
}

func TestArchiveAppendAndRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := &Archive{Dir: dir}
	other := quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: "root"}
	if err := a.Append(compactIssuer, "qi.ca.s01", compactArchiveEntries(1, 2)); err != nil {
		t.Fatal(err)
	}
	if err := a.Append(compactIssuer, "qi.ca.s02", compactArchiveEntries(3)); err != nil {
		t.Fatal(err)
	}
	if err := a.Append(other, "qci.root.s01", compactArchiveEntries(10)); err != nil {
		t.Fatal(err)
	}
	// Appending a segment again replaces its file: the rerun of a
	// retention step that crashed before deleting the segment.
	if err := a.Append(compactIssuer, "qi.ca.s01", compactArchiveEntries(1, 2)); err != nil {
		t.Fatal(err)
	}
	// Left-overs of a crash in the middle of a write are not read.
	if err := os.WriteFile(filepath.Join(dir, ArchiveDirName(compactIssuer), ".qi.ca.s03.123.tmp"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}

	got, err := compactReadArchive(t, dir, compactIssuer)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "1,2,3" {
		t.Fatalf("issuer's archive reads %v; want 1,2,3 in segment order", got)
	}
	got, err = compactReadArchive(t, dir, quillv1.IssuerID{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("whole archive reads %v; want 4 lines of both issuers", got)
	}
	if got, err := compactReadArchive(t, filepath.Join(dir, "missing"), quillv1.IssuerID{}); err != nil || len(got) != 0 {
		t.Fatalf("a missing archive reads %v, %v; want nothing and no error", got, err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, ArchiveDirName(compactIssuer)))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") && e.Name() != ".qi.ca.s03.123.tmp" {
			t.Errorf("Append left a temporary file %s", e.Name())
		}
	}
}

func TestArchiveCorruptFileReported(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := &Archive{Dir: dir}
	if err := a.Append(compactIssuer, "qi.ca.s01", compactArchiveEntries(1)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ArchiveDirName(compactIssuer), "qi.ca.s00"+archiveExt), []byte("not gzip"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := compactReadArchive(t, dir, compactIssuer)
	if !errors.Is(err, ErrCorruptSegment) {
		t.Fatalf("ReadArchive: %v; want ErrCorruptSegment", err)
	}
	if len(got) != 1 {
		t.Fatalf("read %v besides the corrupt file; want the good file's line", got)
	}
	stop := errors.New("stop")
	if err := ReadArchive(dir, compactIssuer, func(*Entry) error { return stop }); !errors.Is(err, stop) || errors.Is(err, ErrCorruptSegment) {
		t.Fatalf("ReadArchive with a failing fn: %v; want fn's error alone", err)
	}
}

func TestArchiveRefusesBadSegmentNames(t *testing.T) {
	t.Parallel()
	a := &Archive{Dir: t.TempDir()}
	for _, name := range []string{"", ".hidden", "../escape", `a\b`} {
		if err := a.Append(compactIssuer, name, compactArchiveEntries(1)); !errors.Is(err, errBadSegmentName) {
			t.Errorf("Append(%q): %v; want errBadSegmentName", name, err)
		}
	}
}

// compactRandomUID is a random UUID, as the API server gives every object.
func compactRandomUID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
}

// BenchmarkArchiveBytesPerRecord measures what an archived entry costs on
// disk: 10,000 real ECDSA P-256 leaves as cert-manager requests them
// (service DNS names, a Certificate, a request, a requester), 3% revoked,
// sealed (certificate dropped) and archived 2,000 to a file, as retention
// writes them. The same figure is a sealed segment's data per entry.
func BenchmarkArchiveBytesPerRecord(b *testing.B) {
	const n = 10000
	sig := newCompactSigner(b)
	entries := make([]Entry, n)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		serial := make([]byte, 16)
		_, _ = rand.Read(serial)
		ns, name := fmt.Sprintf("team-%d", i%40), fmt.Sprintf("app-%d", i%2500)
		tmpl := &x509.Certificate{SerialNumber: new(big.Int).SetBytes(serial),
			DNSNames:  []string{name + "." + ns + ".svc", name + "." + ns + ".svc.cluster.local"},
			NotBefore: compactT0, NotAfter: compactT0.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, sig.ca, &leafKey.PublicKey, sig.key)
		if err != nil {
			b.Fatal(err)
		}
		cert, _ := x509.ParseCertificate(der)
		e, err := EntryOf(cert, compactT0.Add(time.Duration(i)*time.Millisecond), Origin{Kind: quillv1.OriginKindCertificateRequest,
			Namespace: ns, Name: fmt.Sprintf("%s-%d", name, i/2500+1), UID: types.UID(compactRandomUID()),
			Certificate: name, Requester: "system:serviceaccount:cert-manager:cert-manager"})
		if err != nil {
			b.Fatal(err)
		}
		e.Certificate = nil // sealed
		if i%33 == 0 {
			e.Revocation = &EntryRevocation{Reason: quillv1.ReasonSuperseded, At: compactT0.Add(30 * time.Minute).Unix(), By: "superseded"}
		}
		entries[i] = e
	}
	var perRecord float64
	for b.Loop() {
		dir := b.TempDir()
		a := &Archive{Dir: dir}
		for i := 0; i < n; i += DefaultMaxEntries {
			if err := a.Append(compactIssuer, fmt.Sprintf("qi.ca.s%04d", i), entries[i:min(n, i+DefaultMaxEntries)]); err != nil {
				b.Fatal(err)
			}
		}
		var total int64
		files, _ := os.ReadDir(filepath.Join(dir, ArchiveDirName(compactIssuer)))
		for _, f := range files {
			info, err := f.Info()
			if err != nil {
				b.Fatal(err)
			}
			total += info.Size()
		}
		perRecord = float64(total) / n
	}
	b.ReportMetric(perRecord, "bytes/record")
}
