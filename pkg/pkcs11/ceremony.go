//go:build cgo

package pkcs11

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	p11 "github.com/miekg/pkcs11"
)

// keySpec is how GenerateKey creates one Algorithm.
type keySpec struct {
	mech    uint
	keyType uint
	params  []byte // CKA_EC_PARAMS; nil for RSA
	bits    int    // CKA_MODULUS_BITS; RSA only
}

func mustOID(oid asn1.ObjectIdentifier) []byte {
	b, err := asn1.Marshal(oid)
	if err != nil {
		panic(err) // constant input
	}
	return b
}

var keySpecs = map[Algorithm]keySpec{
	ECDSAP256: {mech: p11.CKM_EC_KEY_PAIR_GEN, keyType: p11.CKK_EC, params: mustOID(oidP256)},
	ECDSAP384: {mech: p11.CKM_EC_KEY_PAIR_GEN, keyType: p11.CKK_EC, params: mustOID(oidP384)},
	ECDSAP521: {mech: p11.CKM_EC_KEY_PAIR_GEN, keyType: p11.CKK_EC, params: mustOID(oidP521)},
	// RFC 8410's OID rather than the "edwards25519" string OpenSC writes:
	// PKCS#11 3.0 allows both, SoftHSM 2.6.1 accepts both, and the OID is
	// what X.509 tooling recognises.
	Ed25519: {mech: ckmECEdwardsKeyPairGen, keyType: ckkECEdwards, params: mustOID(oidEd25519)},
	RSA2048: {mech: p11.CKM_RSA_PKCS_KEY_PAIR_GEN, keyType: p11.CKK_RSA, bits: 2048},
	RSA3072: {mech: p11.CKM_RSA_PKCS_KEY_PAIR_GEN, keyType: p11.CKK_RSA, bits: 3072},
	RSA4096: {mech: p11.CKM_RSA_PKCS_KEY_PAIR_GEN, keyType: p11.CKK_RSA, bits: 4096},
}

// GenerateKey creates a key pair of algorithm alg on the token cfg selects
// and returns it opened. quillctl calls it in CA ceremonies.
//
// cfg.KeyLabel is required and becomes CKA_LABEL of both objects; CKA_ID is
// cfg.KeyID, or 16 random bytes when empty (see Key.KeyID). The private key
// is a token object that is private, sensitive, never extractable and only
// allowed to sign. A label or ID already used by a key on the token fails
// with ErrKeyAmbiguous before anything is created; cfg.Expected must be
// nil (ErrInvalidConfig). An unknown alg fails with ErrUnsupportedKey.
func GenerateKey(cfg Config, alg Algorithm) (*Key, error) {
	fail := func(err error) (*Key, error) {
		return nil, fmt.Errorf("pkcs11: generate %s on %s: %w", alg, cfg, err)
	}
	if err := cfg.validate(true); err != nil {
		return fail(err)
	}
	spec, ok := keySpecs[alg]
	switch {
	case !ok:
		return fail(fmt.Errorf("%w: algorithm %q", ErrUnsupportedKey, alg))
	case cfg.KeyLabel == "":
		return fail(fmt.Errorf("%w: a generated key needs a label", ErrInvalidConfig))
	case cfg.Expected != nil:
		return fail(fmt.Errorf("%w: a key about to be generated cannot have an expected public key", ErrInvalidConfig))
	}
	if len(cfg.KeyID) == 0 {
		cfg.KeyID = make([]byte, 16)
		if _, err := rand.Read(cfg.KeyID); err != nil {
			return fail(err)
		}
	}
	err := withSession(cfg, true, func(ctx *p11.Ctx, sh p11.SessionHandle) error {
		for _, class := range []uint{p11.CKO_PRIVATE_KEY, p11.CKO_PUBLIC_KEY} {
			for _, a := range []*p11.Attribute{p11.NewAttribute(p11.CKA_LABEL, cfg.KeyLabel), p11.NewAttribute(p11.CKA_ID, cfg.KeyID)} {
				objs, err := findObjects(ctx, sh, []*p11.Attribute{p11.NewAttribute(p11.CKA_CLASS, class), a}, 1)
				if err != nil {
					return err
				}
				if len(objs) > 0 {
					return fmt.Errorf("%w: a key with this label or ID already exists", ErrKeyAmbiguous)
				}
			}
		}
		pubT := []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PUBLIC_KEY),
			p11.NewAttribute(p11.CKA_KEY_TYPE, spec.keyType),
			p11.NewAttribute(p11.CKA_TOKEN, true),
			p11.NewAttribute(p11.CKA_PRIVATE, false),
			p11.NewAttribute(p11.CKA_VERIFY, true),
			p11.NewAttribute(p11.CKA_ENCRYPT, false),
			p11.NewAttribute(p11.CKA_WRAP, false),
			p11.NewAttribute(p11.CKA_LABEL, cfg.KeyLabel),
			p11.NewAttribute(p11.CKA_ID, cfg.KeyID),
		}
		if spec.params != nil {
			pubT = append(pubT, p11.NewAttribute(p11.CKA_EC_PARAMS, spec.params))
		} else {
			pubT = append(pubT,
				p11.NewAttribute(p11.CKA_MODULUS_BITS, spec.bits),
				p11.NewAttribute(p11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}))
		}
		privT := []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY),
			p11.NewAttribute(p11.CKA_KEY_TYPE, spec.keyType),
			p11.NewAttribute(p11.CKA_TOKEN, true),
			p11.NewAttribute(p11.CKA_PRIVATE, true),
			p11.NewAttribute(p11.CKA_SENSITIVE, true),
			p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
			p11.NewAttribute(p11.CKA_SIGN, true),
			p11.NewAttribute(p11.CKA_DECRYPT, false),
			p11.NewAttribute(p11.CKA_UNWRAP, false),
			p11.NewAttribute(p11.CKA_DERIVE, false),
			p11.NewAttribute(p11.CKA_LABEL, cfg.KeyLabel),
			p11.NewAttribute(p11.CKA_ID, cfg.KeyID),
		}
		if _, _, err := ctx.GenerateKeyPair(sh, []*p11.Mechanism{p11.NewMechanism(spec.mech, nil)}, pubT, privT); err != nil {
			return fmt.Errorf("generate key pair: %w", err)
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	k, err := Open(cfg)
	if err != nil {
		return fail(fmt.Errorf("the key pair was created but cannot be opened: %w", err))
	}
	return k, nil
}

// ImportCertificate stores an X.509 certificate (DER) on the token as a
// public token object with CKA_LABEL label and, when id is non-empty,
// CKA_ID id (use the key's ID to keep a CA certificate with its key).
// quillctl calls it after a ceremony. cfg's key fields are ignored; its PIN
// logs in, since most tokens only create objects for a logged-in user.
// A label already used by a certificate fails with ErrCertificateAmbiguous.
func ImportCertificate(cfg Config, label string, id []byte, der []byte) error {
	fail := func(err error) error {
		return fmt.Errorf("pkcs11: import certificate %q to %s: %w", label, cfg.tokenName(), err)
	}
	if err := cfg.validate(false); err != nil {
		return fail(err)
	}
	if label == "" {
		return fail(fmt.Errorf("%w: a certificate needs a label", ErrInvalidConfig))
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fail(err)
	}
	serial, err := asn1.Marshal(cert.SerialNumber)
	if err != nil {
		return fail(err)
	}
	err = withSession(cfg, true, func(ctx *p11.Ctx, sh p11.SessionHandle) error {
		objs, err := findCertificates(ctx, sh, label)
		if err != nil {
			return err
		}
		if len(objs) > 0 {
			return fmt.Errorf("%w: a certificate with this label already exists", ErrCertificateAmbiguous)
		}
		tmpl := []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_CERTIFICATE),
			p11.NewAttribute(p11.CKA_CERTIFICATE_TYPE, p11.CKC_X_509),
			p11.NewAttribute(p11.CKA_TOKEN, true),
			p11.NewAttribute(p11.CKA_PRIVATE, false),
			p11.NewAttribute(p11.CKA_LABEL, label),
			p11.NewAttribute(p11.CKA_SUBJECT, cert.RawSubject),
			p11.NewAttribute(p11.CKA_ISSUER, cert.RawIssuer),
			p11.NewAttribute(p11.CKA_SERIAL_NUMBER, serial),
			p11.NewAttribute(p11.CKA_VALUE, der),
		}
		if len(id) > 0 {
			tmpl = append(tmpl, p11.NewAttribute(p11.CKA_ID, id))
		}
		if _, err := ctx.CreateObject(sh, tmpl); err != nil {
			return fmt.Errorf("create object: %w", err)
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	return nil
}

// FindCertificate returns the DER of the one certificate labelled label on
// the token cfg selects; the CA signer calls it to load a CA certificate
// kept with its key. cfg's key fields are ignored; an empty PIN reads
// without logging in, which finds public certificates only. Errors:
// ErrCertificateNotFound, ErrCertificateAmbiguous, and those of Open.
func FindCertificate(cfg Config, label string) ([]byte, error) {
	var der []byte
	fail := func(err error) error {
		return fmt.Errorf("pkcs11: find certificate %q on %s: %w", label, cfg.tokenName(), err)
	}
	if err := cfg.validate(false); err != nil {
		return nil, fail(err)
	}
	err := withSession(cfg, false, func(ctx *p11.Ctx, sh p11.SessionHandle) error {
		objs, err := findCertificates(ctx, sh, label)
		if err != nil {
			return err
		}
		switch len(objs) {
		case 0:
			return ErrCertificateNotFound
		case 1:
		default:
			return ErrCertificateAmbiguous
		}
		v, err := attribute(ctx, sh, objs[0], p11.CKA_VALUE)
		if err != nil {
			return err
		}
		der = bytes.Clone(v)
		return nil
	})
	if err != nil {
		return nil, fail(err)
	}
	return der, nil
}

func findCertificates(ctx *p11.Ctx, sh p11.SessionHandle, label string) ([]p11.ObjectHandle, error) {
	return findObjects(ctx, sh, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_CERTIFICATE),
		p11.NewAttribute(p11.CKA_LABEL, label),
	}, maxObjectsAmbiguityScan)
}

// withSession runs fn on a new session of cfg's token, logged in when cfg
// has a PIN, and closes the session afterwards (without C_Logout, which
// would log out every Key on the token). The library cannot be
// re-initialised while fn runs.
func withSession(cfg Config, rw bool, fn func(ctx *p11.Ctx, sh p11.SessionHandle) error) (err error) {
	m, err := registry.acquire(cfg.ModulePath)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := registry.release(m); err == nil {
			err = rerr
		}
	}()
	flags := uint(p11.CKF_SERIAL_SESSION)
	if rw {
		flags |= p11.CKF_RW_SESSION
	}
	var seen uint64
	run := func() error {
		return m.read(func(ctx *p11.Ctx, gen uint64) error {
			seen = gen
			tok, err := findToken(ctx, cfg)
			if err != nil {
				return err
			}
			sh, err := ctx.OpenSession(tok.slot, flags)
			if err != nil {
				return fmt.Errorf("open session: %w", err)
			}
			release := func() {}
			// Close before releasing the login record, so that no other
			// PIN can pass the record check while this session is still
			// logged in.
			defer func() {
				_ = ctx.CloseSession(sh)
				release()
			}()
			if cfg.PIN != "" {
				if release, err = m.login(ctx, sh, tok.id, &cfg); err != nil {
					release = func() {}
					return err
				}
			}
			return fn(ctx, sh)
		})
	}
	err = run()
	if errors.Is(err, ErrTokenNotFound) && m.rescan(seen, cfg.rescanAfter()) {
		err = run()
	}
	return err
}
