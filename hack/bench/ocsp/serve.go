package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers/revocationdata"
	"github.com/quill-pki/quill/controllers/revocationhttp"
	"github.com/quill-pki/quill/pkg/castore"
	"github.com/quill-pki/quill/pkg/ledger"
	"github.com/quill-pki/quill/pkg/ocspserver"
)

// The benchmark's issuer: a QuillClusterIssuer whose CA Secret and
// delegated responder Secret live in benchNamespace.
const (
	benchNamespace = "quill-system"
	benchIssuer    = "bench"
)

// quillPath is the OCSP URL of the benchmark's issuer, as the controller
// puts it into the certificates it signs.
var quillPath = "/ocsp/" + revocationdata.IssuerPath(benchID)

var benchID = quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: benchIssuer}

// serveQuill runs Quill's production CRL/OCSP handler
// (controllers/revocationhttp, the router and responders quill-controller
// serves) for the data in dir on a loopback port until the process is
// killed; it prints the address on stdout once it listens. The API server
// is an in-memory fake holding the issuer, its CA Secret, its delegated
// responder Secret and its ledger: an entry per issued serial in sealed
// LedgerSegments of 2000, as the compactor leaves them. The ledger index
// reads them as a replica's does (ledger.Index.Run: paged list, then
// watch), and the responder serves once it has. It runs in its own
// process, as openssl ocsp does, so neither responder shares a Go runtime
// with the load generator.
func serveQuill(dir string) error {
	src, err := readIndex(filepath.Join(dir, fileIndex))
	if err != nil {
		return err
	}
	segments, err := ledgerSegments(src)
	if err != nil {
		return err
	}
	api, err := benchAPI(dir, segments...)
	if err != nil {
		return err
	}
	index := ledger.NewIndex()
	go func() { _ = index.Run(context.Background(), api) }()
	for end := time.Now().Add(time.Minute); !index.Synced(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			return errIndexNotSynced
		}
	}
	clk := clock.RealClock{}
	srv := revocationhttp.New(revocationhttp.Config{
		Reader: api, Cached: api, Index: index, ClusterResourceNamespace: benchNamespace, Clock: clk,
		Store: &castore.Store{Reader: api, Metadata: api, Writer: api, Clock: clk},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	return ocspserver.NewServer("", srv.Handler()).Serve(ln)
}

var errIndexNotSynced = errors.New("the ledger index did not load the benchmark's ledger within a minute")

// segmentEntries is how many entries the compactor puts in a sealed
// segment.
const segmentEntries = 2000

// ledgerSegments turns the openssl database's statuses into the issuer's
// ledger: one entry per serial (the database has no certificates, so the
// fingerprint stands in: the responder reads serial, validity and
// revocation only), sealed segments of segmentEntries.
func ledgerSegments(src indexSource) ([]client.Object, error) {
	reasons := map[int]quillv1.RevocationReason{}
	for name, code := range quillv1.RevocationReasonCodes {
		reasons[code] = name
	}
	now := time.Now()
	var (
		out     []client.Object
		entries []ledger.Entry
	)
	flush := func() error {
		if len(entries) == 0 {
			return nil
		}
		seg, err := ledger.NewSegment(benchID, benchNamespace, quillv1.LedgerStageSealed, now, entries)
		if err != nil {
			return err
		}
		out, entries = append(out, seg), nil
		return nil
	}
	for hexSerial, st := range src {
		sum := sha256.Sum256([]byte(hexSerial))
		e := ledger.Entry{Serial: hexSerial, Fingerprint: hex.EncodeToString(sum[:]), IssuedAt: now.UnixMicro(),
			NotBefore: now.Add(-time.Hour).Unix(), NotAfter: st.NotAfter.Unix(), KeyAlgorithm: "ECDSA-P256", SignatureAlgorithm: "ECDSA-SHA256"}
		if st.Revoked {
			e.Revocation = &ledger.EntryRevocation{Reason: reasons[st.Reason], At: st.RevokedAt.Unix(), By: "bench"}
		}
		if entries = append(entries, e); len(entries) == segmentEntries {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	return out, flush()
}

// benchAPI is a fake API server with the benchmark's issuer (delegated
// OCSP responder, answers valid for an hour), its Secrets and
// ledgerObjects.
func benchAPI(dir string, ledgerObjects ...client.Object) (client.WithWatch, error) {
	read := func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) }
	caPEM, err := read(fileCA)
	if err != nil {
		return nil, err
	}
	caKeyPEM, err := read(fileCAKey)
	if err != nil {
		return nil, err
	}
	signerPEM, err := read(fileSigner)
	if err != nil {
		return nil, err
	}
	signerKeyPEM, err := read(fileKey)
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, quillv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	iss := &quillv1.QuillClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: benchIssuer}}
	iss.Spec.CA.SecretRef = &quillv1.SecretReference{Name: benchIssuer + "-ca"}
	iss.Spec.Revocation.OCSP.Responder = quillv1.OCSPResponderDelegated
	iss.Spec.Revocation.OCSP.ResponseValidity = &metav1.Duration{Duration: revocationdata.DefaultOCSPValidity}
	// The "nonce" series compares signing per request with OpenSSL's, so
	// the bound on fresh nonce signatures is set as high as the API allows;
	// at the default (100/s) most nonce requests would be answered from
	// the cache (BenchmarkNonceFlood in pkg/ocspserver measures that).
	iss.Spec.Revocation.OCSP.MaxNonceSignaturesPerSecond = ptr.To[int32](100_000)
	caSecret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNamespace, Name: benchIssuer + "-ca"},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{castore.KeyTLSCrt: caPEM, castore.KeyTLSKey: caKeyPEM, castore.KeyCACrt: caPEM},
	}
	responder := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNamespace, Name: revocationdata.OCSPResponderSecretName(benchIssuer)},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: signerPEM, corev1.TLSPrivateKeyKey: signerKeyPEM},
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(append([]client.Object{iss, caSecret, responder}, ledgerObjects...)...).Build(), nil
}
