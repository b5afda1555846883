package issuance

import (
	"crypto"
	"crypto/mldsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCirclEngineSignsForCrypto509(t *testing.T) {
	t.Parallel()
	for _, alg := range []KeyAlgorithm{MLDSA44, MLDSA65, MLDSA87} {
		t.Run(strings.ToLower(string(alg)), func(t *testing.T) {
			t.Parallel()
			certPEM, keyPEM, err := NewSelfSignedRoot(pkix.Name{CommonName: "engine " + string(alg)}, alg, 24*time.Hour, testNow)
			if err != nil {
				t.Fatal(err)
			}
			ca, err := LoadAuthority(certPEM, keyPEM, nil)
			if err != nil {
				t.Fatal(err)
			}
			s, ok := ca.Signer.(*circlMLDSA)
			if !ok {
				t.Fatalf("LoadAuthority kept %T, want the circl engine", ca.Signer)
			}
			pub := s.key.PublicKey()
			msg := []byte("to be signed")

			sig, err := s.Sign(nil, msg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := mldsa.Verify(pub, msg, sig, nil); err != nil {
				t.Errorf("crypto/mldsa rejects the circl signature: %v", err)
			}
			// Hedged: two signatures of one message differ.
			if again, _ := s.Sign(nil, msg, nil); string(again) == string(sig) {
				t.Error("two signatures are identical; want hedged signing")
			}
			// A context is honoured, and binds the signature to it.
			ctxSig, err := s.Sign(nil, msg, &mldsa.Options{Context: "quill"})
			if err != nil {
				t.Fatal(err)
			}
			if err := mldsa.Verify(pub, msg, ctxSig, &mldsa.Options{Context: "quill"}); err != nil {
				t.Errorf("context signature: %v", err)
			}
			if err := mldsa.Verify(pub, msg, ctxSig, nil); err == nil {
				t.Error("a signature with a context verifies without it")
			}
			if _, err := s.Sign(nil, msg, &mldsa.Options{Context: strings.Repeat("x", 256)}); err == nil {
				t.Error("a 256-byte context was accepted")
			}

			issued := mustSign(t, ca, Request{CSR: newCSR(t, withKeyAlg(ECDSAP256)), KeyUsage: x509.KeyUsageDigitalSignature}, baseOptions())
			if err := issued.Certificate.CheckSignatureFrom(ca.Certificate); err != nil {
				t.Errorf("crypto/x509 rejects a certificate signed by the circl engine: %v", err)
			}
		})
	}
}

func TestFastSignerLeavesOtherKeys(t *testing.T) {
	t.Parallel()
	for _, alg := range []KeyAlgorithm{ECDSAP256, RSA2048, Ed25519} {
		k, err := GenerateKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		if got := fastSigner(k); fmt.Sprintf("%T", got) != fmt.Sprintf("%T", k) {
			t.Errorf("%s: fastSigner replaced the %T key with %T", alg, k, got)
		}
	}
}

// BenchmarkMLDSAIssuance measures one Sign (CSR check, signing,
// crypto/x509's own check of the new signature, and the self-check) from an
// ML-DSA CA, with each signing engine and each self-check: check=x509 is
// crypto/x509's Certificate.Verify (crypto/mldsa), check=circl the ML-DSA
// self-check. The leaf key is ECDSA P-256, what cert-manager Certificates
// request.
//
//	go test -run '^$' -bench MLDSAIssuance -count 8 ./pkg/issuance/ | benchstat -filter /sign:circl -col /check -
//
// cpu-ns/op is the process's user and system CPU time per Sign, garbage
// collection included.
func BenchmarkMLDSAIssuance(b *testing.B) {
	for _, alg := range []KeyAlgorithm{MLDSA44, MLDSA65, MLDSA87} {
		certPEM, keyPEM, err := NewSelfSignedRoot(pkix.Name{CommonName: "bench " + string(alg)}, alg, 24*time.Hour, testNow)
		if err != nil {
			b.Fatal(err)
		}
		fast, err := LoadAuthority(certPEM, keyPEM, nil)
		if err != nil {
			b.Fatal(err)
		}
		std := *fast
		std.Signer = fast.Signer.(*circlMLDSA).key
		std.selfCheckWithGo = true
		fastGoCheck := *fast
		fastGoCheck.selfCheckWithGo = true
		req := Request{CSR: newCSR(b, withKeyAlg(ECDSAP256)), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		for _, e := range []struct {
			name string
			ca   *Authority
		}{{"sign=std/check=x509", &std}, {"sign=circl/check=x509", &fastGoCheck}, {"sign=circl/check=circl", fast}} {
			b.Run("ca="+string(alg)+"/"+e.name, func(b *testing.B) {
				cpu := processCPU(b)
				for b.Loop() {
					if _, err := e.ca.Sign(req, baseOptions()); err != nil {
						b.Fatal(err)
					}
				}
				// The target is CPU time; on a shared machine wall time per
				// operation also counts the time other processes ran.
				b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// processCPU is the CPU time the process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// unwrapper is a key backend's wrapper around an in-memory signer, as
// pkg/kms/softkey's Key is.
type unwrapper struct{ crypto.Signer }

func (u unwrapper) Unwrap() crypto.Signer { return u.Signer }

// TestEngineFoundBehindBackendWrapper: an Authority whose signer is a
// backend's wrapper of the circl engine still finds the engine, so the
// ML-DSA self-check keeps the engine's unpacked key.
func TestEngineFoundBehindBackendWrapper(t *testing.T) {
	t.Parallel()
	_, keyPEM, err := NewSelfSignedRoot(pkix.Name{CommonName: "wrapped engine"}, MLDSA65, 24*time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := SigningKeyFromPEM(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		signer crypto.Signer
	}{
		{name: "bare", signer: signer},
		{name: "wrapped", signer: unwrapper{signer}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if s, ok := engineOf(tt.signer); !ok || s.verifyKey == nil {
				t.Fatalf("engineOf(%T) = %v, want the circl engine with its verify key", tt.signer, ok)
			}
		})
	}
}
