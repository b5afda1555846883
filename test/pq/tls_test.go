package pq

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/tlsconfig"
)

// server is a loopback TLS server with a config from pkg/tlsconfig that
// answers each connection with one line and records each handshake.
type server struct {
	addr string
	mu   sync.Mutex
	seen []handshakeResult
}

type handshakeResult struct {
	group tls.CurveID
	err   error
}

func startServer(t *testing.T, cfg *tls.Config) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(20 * time.Second))
				tc := tls.Server(c, cfg)
				err := tc.Handshake()
				s.mu.Lock()
				s.seen = append(s.seen, handshakeResult{group: tc.ConnectionState().CurveID, err: err})
				s.mu.Unlock()
				if err == nil {
					_, _ = io.WriteString(tc, "quill\n")
					// close_notify, which s_client expects before EOF.
					_ = tc.Close()
				}
			}()
		}
	}()
	return s
}

func (s *server) results() []handshakeResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]handshakeResult(nil), s.seen...)
}

// sClient runs openssl s_client against addr and returns its output and
// whether it exited successfully.
func sClient(t *testing.T, bin, addr, caFile string, extra ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"s_client", "-connect", addr, "-servername", "localhost", "-CAfile", caFile,
		"-verify_return_error", "-verify_hostname", "localhost", "-brief"}, extra...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestOpenSSLHandshakeWithMLDSAChain: OpenSSL 3.5's s_client completes a
// handshake with a Go server that uses pkg/tlsconfig and presents a Quill
// ML-DSA chain, verifies that chain, and negotiates X25519MLKEM768, with
// and without the post-quantum requirement; a classical-only s_client is
// refused only when the requirement is on.
func TestOpenSSLHandshakeWithMLDSAChain(t *testing.T) {
	t.Parallel()
	bin := OpenSSL35(t)
	chains := map[string][3]issuance.KeyAlgorithm{
		"ml-dsa-65-chain":                    {issuance.MLDSA65, issuance.MLDSA65, issuance.MLDSA65},
		"ml-dsa-87-root-ml-dsa-44-leaf":      {issuance.MLDSA87, issuance.MLDSA65, issuance.MLDSA44},
		"ml-dsa-chain-ecdsa-leaf":            {issuance.MLDSA65, issuance.MLDSA65, issuance.ECDSAP256},
		"classical-root-ml-dsa-intermediate": {issuance.ECDSAP384, issuance.MLDSA65, issuance.MLDSA65},
	}
	for name, algs := range chains {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := NewChain(algs[0], algs[1], algs[2])
			if err != nil {
				t.Fatal(err)
			}
			cert, err := c.TLSCertificate()
			if err != nil {
				t.Fatal(err)
			}
			caFile := write(t, t.TempDir(), "root.pem", c.RootPEM)
			leafAlg, _ := issuance.KeyAlgorithmOf(c.Leaf.PublicKey)
			for _, require := range []bool{false, true} {
				s := startServer(t, tlsconfig.Server(tlsconfig.Options{Certificates: []tls.Certificate{cert}, RequirePostQuantum: require}))

				out, err := sClient(t, bin, s.addr, caFile)
				if err != nil {
					t.Fatalf("require=%v: s_client failed: %v\n%s", require, err, out)
				}
				for _, want := range []string{"Protocol version: TLSv1.3", "Negotiated TLS1.3 group: X25519MLKEM768", "Verification: OK", "Signature type: " + sigTypeName(leafAlg)} {
					if !strings.Contains(out, want) {
						t.Errorf("require=%v: s_client output lacks %q:\n%s", require, want, out)
					}
				}
				if r := s.results(); len(r) != 1 || r[0].err != nil || r[0].group != tls.X25519MLKEM768 {
					t.Errorf("require=%v: server saw %+v, want one X25519MLKEM768 handshake", require, r)
				}

				out, err = sClient(t, bin, s.addr, caFile, "-groups", "X25519:P-256")
				r := s.results()
				if require {
					if err == nil || len(r) != 2 || !errors.Is(r[1].err, tlsconfig.ErrNoPostQuantumGroup) {
						t.Errorf("classical-only s_client not refused: err %v, server saw %+v\n%s", err, r, out)
					}
				} else if err != nil || !strings.Contains(out, "Peer Temp Key: X25519,") {
					t.Errorf("classical-only s_client should still connect by default: err %v\n%s", err, out)
				}
			}
		})
	}
}

// sigTypeName is how s_client -brief names the server's signature.
func sigTypeName(alg issuance.KeyAlgorithm) string {
	switch alg {
	case issuance.MLDSA44:
		return "mldsa44"
	case issuance.MLDSA65:
		return "mldsa65"
	case issuance.MLDSA87:
		return "mldsa87"
	case issuance.ECDSAP256:
		return "ecdsa_secp256r1_sha256"
	}
	return string(alg)
}

// TestGoClientAgainstMLDSAChain: a Go client trusting only the ML-DSA root
// verifies the chain and negotiates X25519MLKEM768; one restricted to
// classical groups is refused when the server requires post-quantum key
// exchange.
func TestGoClientAgainstMLDSAChain(t *testing.T) {
	t.Parallel()
	c, err := NewChain(issuance.MLDSA87, issuance.MLDSA65, issuance.MLDSA65)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := c.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, tlsconfig.Server(tlsconfig.Options{Certificates: []tls.Certificate{cert}, RequirePostQuantum: true}))
	dial := func(curves []tls.CurveID) (tls.ConnectionState, error) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", s.addr,
			&tls.Config{RootCAs: c.Roots(), ServerName: "localhost", CurvePreferences: curves})
		if err != nil {
			return tls.ConnectionState{}, err
		}
		defer conn.Close()
		line, err := io.ReadAll(conn)
		if err != nil || string(line) != "quill\n" {
			return tls.ConnectionState{}, errors.Join(err, errors.New("unexpected reply "+string(line)))
		}
		return conn.ConnectionState(), nil
	}
	cs, err := dial(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cs.CurveID != tls.X25519MLKEM768 || cs.Version != tls.VersionTLS13 {
		t.Errorf("negotiated %s, version %x", cs.CurveID, cs.Version)
	}
	if got, _ := issuance.KeyAlgorithmOf(cs.PeerCertificates[0].PublicKey); got != issuance.MLDSA65 {
		t.Errorf("server certificate key %s", got)
	}
	if _, err := dial([]tls.CurveID{tls.X25519, tls.CurveP256}); err == nil {
		t.Error("classical-only Go client was not refused")
	}
}
