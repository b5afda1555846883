package tlsconfig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// selfSigned is a throwaway ECDSA server certificate for 127.0.0.1; the
// tests here are about key exchange, not about Quill's certificates
// (test/pq covers those).
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tlsconfig test"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

type result struct {
	client    tls.ConnectionState
	clientErr error
	serverErr error
	serverCS  tls.ConnectionState
}

// handshake runs one handshake over an in-memory pipe between a server
// with cfg and a client with clientCfg.
func handshake(t *testing.T, cfg, clientCfg *tls.Config) result {
	t.Helper()
	c, s := net.Pipe()
	defer c.Close()
	defer s.Close()
	deadline := time.Now().Add(10 * time.Second)
	_ = c.SetDeadline(deadline)
	_ = s.SetDeadline(deadline)
	server := tls.Server(s, cfg)
	done := make(chan result, 1)
	go func() {
		err := server.Handshake()
		if err != nil {
			// Unblock the client, which may still wait for a reply.
			s.Close()
		}
		done <- result{serverErr: err, serverCS: server.ConnectionState()}
	}()
	client := tls.Client(c, clientCfg)
	clientErr := client.Handshake()
	if clientErr != nil {
		c.Close()
	}
	r := <-done
	r.clientErr = clientErr
	r.client = client.ConnectionState()
	return r
}

func TestServerNegotiates(t *testing.T) {
	t.Parallel()
	cert, pool := selfSigned(t)
	tests := []struct {
		name        string
		require     bool
		clientCurve []tls.CurveID
		clientMax   uint16
		wantGroup   tls.CurveID
		wantVersion uint16
		wantRefused bool
	}{
		{name: "go-default-client-gets-hybrid", wantGroup: tls.X25519MLKEM768, wantVersion: tls.VersionTLS13},
		{name: "go-default-client-gets-hybrid-when-required", require: true, wantGroup: tls.X25519MLKEM768, wantVersion: tls.VersionTLS13},
		{name: "classical-client-still-served-by-default", clientCurve: []tls.CurveID{tls.X25519}, wantGroup: tls.X25519, wantVersion: tls.VersionTLS13},
		{name: "p256-client-still-served-by-default", clientCurve: []tls.CurveID{tls.CurveP256}, wantGroup: tls.CurveP256, wantVersion: tls.VersionTLS13},
		{name: "tls12-client-served-by-default", clientMax: tls.VersionTLS12, wantGroup: tls.X25519, wantVersion: tls.VersionTLS12},
		{name: "secp256r1mlkem768-client-accepted-when-required", require: true, clientCurve: []tls.CurveID{tls.SecP256r1MLKEM768}, wantGroup: tls.SecP256r1MLKEM768, wantVersion: tls.VersionTLS13},
		{name: "mlkem1024-only-client-accepted-when-required", require: true, clientCurve: []tls.CurveID{tls.MLKEM1024}, wantGroup: tls.MLKEM1024, wantVersion: tls.VersionTLS13},
		{name: "hybrid-offered-but-classical-preferred-by-client", require: true, clientCurve: []tls.CurveID{tls.X25519, tls.X25519MLKEM768}, wantGroup: tls.X25519MLKEM768, wantVersion: tls.VersionTLS13},
		{name: "classical-client-refused-when-required", require: true, clientCurve: []tls.CurveID{tls.X25519, tls.CurveP256}, wantRefused: true},
		{name: "tls12-client-refused-when-required", require: true, clientMax: tls.VersionTLS12, wantRefused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := Server(Options{Certificates: []tls.Certificate{cert}, RequirePostQuantum: tt.require})
			r := handshake(t, cfg, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", CurvePreferences: tt.clientCurve, MaxVersion: tt.clientMax})
			if tt.wantRefused {
				if r.clientErr == nil || r.serverErr == nil {
					t.Fatalf("handshake succeeded with %s (client error %v, server error %v), want refused", r.client.CurveID, r.clientErr, r.serverErr)
				}
				if tt.clientMax == 0 && !errors.Is(r.serverErr, ErrNoPostQuantumGroup) {
					t.Errorf("server error %v, want ErrNoPostQuantumGroup", r.serverErr)
				}
				return
			}
			if r.clientErr != nil || r.serverErr != nil {
				t.Fatalf("handshake failed: client %v, server %v", r.clientErr, r.serverErr)
			}
			if r.client.CurveID != tt.wantGroup || r.serverCS.CurveID != tt.wantGroup {
				t.Errorf("negotiated %s (server %s), want %s", r.client.CurveID, r.serverCS.CurveID, tt.wantGroup)
			}
			if r.client.Version != tt.wantVersion {
				t.Errorf("version %x, want %x", r.client.Version, tt.wantVersion)
			}
		})
	}
}

// The refusal names what the client offered, so that an operator reading
// the server's log knows which client to upgrade.
func TestRefusalNamesOfferedGroups(t *testing.T) {
	t.Parallel()
	cert, pool := selfSigned(t)
	cfg := Server(Options{Certificates: []tls.Certificate{cert}, RequirePostQuantum: true})
	r := handshake(t, cfg, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", CurvePreferences: []tls.CurveID{tls.CurveP384}})
	if r.serverErr == nil || !strings.Contains(r.serverErr.Error(), "offered: CurveP384") {
		t.Fatalf("server error %v, want it to name CurveP384", r.serverErr)
	}
}

func TestCurvePreferencesNeverClassicalOnly(t *testing.T) {
	t.Parallel()
	for _, require := range []bool{false, true} {
		c := Server(Options{RequirePostQuantum: require})
		if len(c.CurvePreferences) == 0 || c.CurvePreferences[0] != tls.X25519MLKEM768 {
			t.Errorf("require=%v: CurvePreferences %v, want X25519MLKEM768 first", require, c.CurvePreferences)
		}
		if require && slices.ContainsFunc(c.CurvePreferences, func(id tls.CurveID) bool { return !IsPostQuantum(id) }) {
			t.Errorf("require=true: CurvePreferences %v hold a classical group", c.CurvePreferences)
		}
		if require && c.MinVersion != tls.VersionTLS13 {
			t.Errorf("require=true: MinVersion %x, want TLS 1.3 (no hybrid groups in TLS 1.2)", c.MinVersion)
		}
	}
}

// KeyExchange is applied to configs that controller-runtime builds; a
// GetConfigForClient already there must keep working behind the check.
func TestKeyExchangeWrapsGetConfigForClient(t *testing.T) {
	t.Parallel()
	cert, pool := selfSigned(t)
	called := 0
	cfg := &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		called++
		return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, CurvePreferences: PostQuantumGroups()}, nil
	}}
	KeyExchange(true)(cfg)

	r := handshake(t, cfg, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if r.clientErr != nil || r.serverErr != nil {
		t.Fatalf("handshake: client %v, server %v", r.clientErr, r.serverErr)
	}
	if called != 1 || r.client.CurveID != tls.X25519MLKEM768 {
		t.Errorf("inner GetConfigForClient called %d times, group %s", called, r.client.CurveID)
	}
	r = handshake(t, cfg, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", CurvePreferences: []tls.CurveID{tls.X25519}})
	if !errors.Is(r.serverErr, ErrNoPostQuantumGroup) || called != 1 {
		t.Errorf("classical client: server error %v, inner called %d times; want refusal before the inner callback", r.serverErr, called)
	}
}

func TestIsPostQuantum(t *testing.T) {
	t.Parallel()
	for id, want := range map[tls.CurveID]bool{
		tls.X25519MLKEM768: true, tls.SecP256r1MLKEM768: true, tls.SecP384r1MLKEM1024: true, tls.MLKEM1024: true,
		tls.X25519: false, tls.CurveP256: false, tls.CurveP384: false, tls.CurveP521: false,
	} {
		if got := IsPostQuantum(id); got != want {
			t.Errorf("IsPostQuantum(%s) = %v, want %v", id, got, want)
		}
	}
}
