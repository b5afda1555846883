package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quill-pki/quill/pkg/pkcs11"
)

func TestPercentile(t *testing.T) {
	t.Parallel()
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i + 1)
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      int
		want   time.Duration
	}{
		{name: "one-sample", sorted: []time.Duration{7}, p: 99, want: 7},
		{name: "median-of-hundred", sorted: hundred, p: 50, want: 50},
		{name: "p99-of-hundred", sorted: hundred, p: 99, want: 99},
		{name: "p99-of-ten-is-the-largest", sorted: hundred[:10], p: 99, want: 10},
		{name: "median-of-two-is-the-smaller", sorted: []time.Duration{1, 2}, p: 50, want: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("percentile(p%d) = %d, want %d", tc.p, got, tc.want)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		args        []string
		goroutines  []int
		tokenObject bool
		wantErr     error
	}{
		{name: "defaults", goroutines: []int{1, 4, 8}},
		{name: "goroutines-with-spaces", args: []string{"-goroutines", "2, 16"}, goroutines: []int{2, 16}},
		{name: "zero-goroutines", args: []string{"-goroutines", "0"}, wantErr: errBadFlag},
		{name: "zero-sessions", args: []string{"-sessions", "0"}, wantErr: errBadFlag},
		{name: "unknown-algorithm", args: []string{"-algorithms", "p384"}, wantErr: errBadFlag},
		{name: "stray-argument", args: []string{"extra"}, wantErr: errBadFlag},
		{name: "token-object", args: []string{"-token-object"}, goroutines: []int{1, 4, 8}, tokenObject: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, err := parseFlags(tc.args)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("parseFlags(%q) error = %v, want %v", tc.args, err, tc.wantErr)
			}
			if err == nil && !slices.Equal(o.goroutines, tc.goroutines) {
				t.Errorf("goroutines = %v, want %v", o.goroutines, tc.goroutines)
			}
			if err == nil && o.tokenObject != tc.tokenObject {
				t.Errorf("tokenObject = %v, want %v", o.tokenObject, tc.tokenObject)
			}
		})
	}
}

var errTokenGone = errors.New("token gone")

// failingSigner signs with its key ok times, then fails every call.
type failingSigner struct {
	crypto.Signer
	ok    int
	calls atomic.Int32
}

func (f *failingSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if int(f.calls.Add(1)) > f.ok {
		return nil, errTokenGone
	}
	return f.Signer.Sign(r, digest, opts)
}

// otherKeySigner signs with one key and claims another's public key.
type otherKeySigner struct {
	crypto.Signer
	pub crypto.PublicKey
}

func (o otherKeySigner) Public() crypto.PublicKey { return o.pub }

func TestSignForFails(t *testing.T) {
	t.Parallel()
	key := mustP256(t)
	other := mustP256(t)
	digest := sha256.Sum256([]byte("test"))
	for _, tc := range []struct {
		name    string
		signer  crypto.Signer
		wantErr error
	}{
		{name: "sign-error", signer: &failingSigner{Signer: key, ok: 10}, wantErr: errTokenGone},
		{name: "signature-of-another-key", signer: otherKeySigner{Signer: key, pub: other.Public()}, wantErr: errBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := signFor(context.Background(), tc.signer, digest[:], 2, 50*time.Millisecond, 16)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("signFor error = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestSignForCountsEverySignature(t *testing.T) {
	t.Parallel()
	digest := sha256.Sum256([]byte("test"))
	r, err := signFor(context.Background(), mustP256(t), digest[:], 3, 50*time.Millisecond, 16)
	if err != nil {
		t.Fatal(err)
	}
	if r.signatures == 0 || r.goroutines != 3 || r.p50 > r.p99 || r.p99 > r.max {
		t.Errorf("implausible result %+v", r)
	}
}

func mustP256(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestBackendsAlternateOrder(t *testing.T) {
	t.Parallel()
	names := func(bs []backend) []string {
		var out []string
		for _, b := range bs {
			out = append(out, b.name)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		p     pair
		cell  int
		order []string
	}{
		{name: "two-even", p: pair{software: mustP256(t)}, cell: 0, order: []string{backendSoftware, backendPKCS11}},
		{name: "two-odd", p: pair{software: mustP256(t)}, cell: 1, order: []string{backendPKCS11, backendSoftware}},
		{name: "three-even", p: pair{software: mustP256(t), token: new(pkcs11.Key)}, cell: 2, order: []string{backendSoftware, backendPKCS11, backendToken}},
		{name: "three-odd", p: pair{software: mustP256(t), token: new(pkcs11.Key)}, cell: 3, order: []string{backendToken, backendPKCS11, backendSoftware}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := names(tc.p.backends(tc.cell)); !slices.Equal(got, tc.order) {
				t.Errorf("backends(%d) = %q, want %q", tc.cell, got, tc.order)
			}
		})
	}
}

func TestReportComparesTokenObject(t *testing.T) {
	t.Parallel()
	run := func(cell int, backend string, signatures int, cpu time.Duration) result {
		return result{backend: backend, algorithm: "ECDSA P-256", cell: cell, goroutines: 4, signatures: signatures,
			wall: time.Second, p50: time.Microsecond, p99: time.Microsecond, max: time.Microsecond, cpu: cpu}
	}
	// Two cells of the same algorithm and goroutines (-goroutines 4,4):
	// each compares its own runs.
	results := []result{
		run(0, backendSoftware, 80000, 2*time.Second),
		run(0, backendPKCS11, 48000, 2*time.Second),
		run(0, backendToken, 32000, 2*time.Second),
		run(1, backendToken, 30000, 2*time.Second),
		run(1, backendPKCS11, 20000, 2*time.Second),
		run(1, backendSoftware, 40000, 2*time.Second),
	}
	for _, tc := range []struct {
		name        string
		tokenObject bool
		want        []string
	}{
		{name: "without-token-object", want: []string{
			"| ECDSA P-256 | 4 | 80000 | 48000 | 0.60× | 1.0× | 1.7× |\n",
			"| ECDSA P-256 | 4 | 40000 | 20000 | 0.50× | 1.0× | 2.0× |\n",
		}},
		{name: "with-token-object", tokenObject: true, want: []string{
			"| ECDSA P-256 | 4 | 80000 | 32000 | 0.40× | 48000 | 0.60× | 1.50× | 0.67× |\n",
			"| ECDSA P-256 | 4 | 40000 | 30000 | 0.75× | 20000 | 0.50× | 0.67× | 1.50× |\n",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b strings.Builder
			report(&b, options{goroutines: []int{4}, algorithms: algorithms[:1], sessions: 4, tokenObject: tc.tokenObject}, "0 0 0", "0 0 0", results)
			out := b.String()
			for _, want := range tc.want {
				if !strings.Contains(out, want) {
					t.Errorf("report lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "token object sig/s") != tc.tokenObject {
				t.Errorf("comparison table present = %v, want %v:\n%s", !tc.tokenObject, tc.tokenObject, out)
			}
		})
	}
}
