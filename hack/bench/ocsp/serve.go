package main

import (
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"

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
// is an in-memory fake holding the issuer, its CA Secret and its delegated
// responder Secret; the ledger index holds a record per issued serial, as a
// replica's index does after reading the ledger. It runs in its own
// process, as openssl ocsp does, so neither responder shares a Go runtime
// with the load generator.
func serveQuill(dir string) error {
	api, err := benchAPI(dir)
	if err != nil {
		return err
	}
	src, err := readIndex(filepath.Join(dir, fileIndex))
	if err != nil {
		return err
	}
	// The index is handed the whole ledger at once, as the watch's first
	// list does: until then the responder answers tryLater.
	reasons := map[int]quillv1.RevocationReason{}
	for name, code := range quillv1.RevocationReasonCodes {
		reasons[code] = name
	}
	entries := make([]any, 0, len(src))
	for hexSerial, st := range src {
		serial, _ := new(big.Int).SetString(hexSerial, 16)
		e := &quillv1.IssuedCertificate{
			ObjectMeta: metav1.ObjectMeta{Name: ledger.EntryName(benchID, serial), Namespace: benchNamespace},
			Spec:       quillv1.IssuedCertificateSpec{IssuerRef: benchID.Ref(), SerialNumber: ledger.SerialHex(serial), NotAfter: metav1.NewTime(st.NotAfter)},
		}
		if st.Revoked {
			e.Status.Revocation = &quillv1.RevocationRecord{Reason: reasons[st.Reason], RevokedAt: metav1.NewTime(st.RevokedAt)}
		}
		entries = append(entries, e)
	}
	index := ledger.NewIndex()
	if err := index.Replace(entries, "1"); err != nil {
		return err
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

// benchAPI is a fake API server with the benchmark's issuer (delegated
// OCSP responder, answers valid for an hour) and its Secrets.
func benchAPI(dir string) (client.WithWatch, error) {
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
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(iss, caSecret, responder).Build(), nil
}
