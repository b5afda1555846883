// Package tlsconfig is the one place where Quill decides how its TLS
// servers (metrics, health, CRL/OCSP over HTTPS, the demo) negotiate: TLS
// 1.3 preferred, hybrid post-quantum key exchange (X25519MLKEM768) first,
// and, on request, no connection at all for clients that offer no
// post-quantum group.
//
// Every server Quill runs takes its tls.Config from Server, or, when a
// library builds the config (controller-runtime's metrics server), applies
// KeyExchange to it. Nothing else in Quill sets CurvePreferences: setting it
// to classical curves silently turns post-quantum key exchange off.
package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrNoPostQuantumGroup is returned from the handshake (and logged by
// net/http as a TLS handshake error) when RequirePostQuantum is set and the
// client's supported groups contain no post-quantum key exchange.
var ErrNoPostQuantumGroup = errors.New("client offers no post-quantum key exchange group")

// postQuantumGroups are the post-quantum groups Go's crypto/tls implements,
// in the order Quill prefers them: X25519MLKEM768 is what browsers, OpenSSL
// 3.5 and Go clients send first; pure ML-KEM-1024 comes last, for clients
// that offer nothing else.
var postQuantumGroups = []tls.CurveID{tls.X25519MLKEM768, tls.SecP256r1MLKEM768, tls.SecP384r1MLKEM1024, tls.MLKEM1024}

// classicalGroups stay accepted unless RequirePostQuantum is set, so that
// clients without ML-KEM (older Prometheus, curl on OpenSSL 3.0) still
// connect.
var classicalGroups = []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521}

// PostQuantumGroups returns the post-quantum key exchange groups Quill's
// servers accept, most preferred first.
func PostQuantumGroups() []tls.CurveID { return slices.Clone(postQuantumGroups) }

// IsPostQuantum reports whether id is a key exchange group that resists a
// quantum attacker (a hybrid with ML-KEM, or ML-KEM alone).
func IsPostQuantum(id tls.CurveID) bool {
	return slices.Contains(postQuantumGroups, id)
}

// Options configure a server's tls.Config.
type Options struct {
	// Certificates and GetCertificate are copied to the tls.Config as they
	// are; one of them must serve the server's chain.
	Certificates   []tls.Certificate
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)

	// ClientAuth and ClientCAs ask for and verify client certificates
	// (mutual TLS); the zero value asks for none.
	ClientAuth tls.ClientAuthType
	ClientCAs  *x509.CertPool

	// NextProtos is the ALPN list; nil leaves ALPN to the caller (net/http
	// adds "h2" and "http/1.1" itself).
	NextProtos []string

	// RequirePostQuantum refuses, before any key exchange, clients whose
	// ClientHello lists no post-quantum group, and offers only
	// post-quantum groups and TLS 1.3. A refused client gets a TLS alert
	// and the server sees ErrNoPostQuantumGroup as the handshake error.
	RequirePostQuantum bool
}

// Server returns the tls.Config for a Quill server: TLS 1.3 preferred (1.2
// still accepted unless RequirePostQuantum), the hybrid groups of
// PostQuantumGroups ahead of classical ones, and the certificates and
// client authentication of opts. The result is a fresh Config the caller
// may extend; it must not replace CurvePreferences, MinVersion or
// GetConfigForClient.
func Server(opts Options) *tls.Config {
	c := &tls.Config{
		Certificates:   opts.Certificates,
		GetCertificate: opts.GetCertificate,
		ClientAuth:     opts.ClientAuth,
		ClientCAs:      opts.ClientCAs,
		NextProtos:     opts.NextProtos,
	}
	KeyExchange(opts.RequirePostQuantum)(c)
	return c
}

// KeyExchange returns a function that applies Quill's key exchange policy
// to a tls.Config someone else builds, in the form controller-runtime's
// metricsserver.Options.TLSOpts and webhook options take: it sets
// MinVersion and CurvePreferences and, when requirePostQuantum, installs a
// GetConfigForClient that refuses clients without a post-quantum group
// (wrapping any GetConfigForClient already set).
func KeyExchange(requirePostQuantum bool) func(*tls.Config) {
	return func(c *tls.Config) {
		// The list is explicit rather than Go's default so that neither a
		// GODEBUG setting (tlsmlkem=0) nor a later release's default can
		// drop the hybrid groups unnoticed; Go chooses among them in its
		// own preference order, which puts X25519MLKEM768 first.
		if requirePostQuantum {
			c.MinVersion = tls.VersionTLS13
			c.CurvePreferences = PostQuantumGroups()
		} else {
			c.MinVersion = tls.VersionTLS12
			c.CurvePreferences = append(PostQuantumGroups(), classicalGroups...)
			return
		}
		next := c.GetConfigForClient
		// The check reads the ClientHello's supported groups rather than
		// the negotiated group (VerifyConnection): it refuses before any
		// key exchange or certificate is sent, and its error names what
		// the client offered.
		c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			if !slices.ContainsFunc(hello.SupportedCurves, IsPostQuantum) {
				return nil, fmt.Errorf("%w (offered: %s)", ErrNoPostQuantumGroup, groupNames(hello.SupportedCurves))
			}
			if next != nil {
				return next(hello)
			}
			return nil, nil
		}
	}
}

func groupNames(ids []tls.CurveID) string {
	if len(ids) == 0 {
		return "none"
	}
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = id.String()
	}
	return strings.Join(names, ", ")
}
