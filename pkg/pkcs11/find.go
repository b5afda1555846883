//go:build cgo

package pkcs11

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"strings"

	p11 "github.com/miekg/pkcs11"
)

// PKCS#11 3.0 values that github.com/miekg/pkcs11 v1.1.2 does not define.
const (
	ckkECEdwards            = 0x40
	ckmECEdwardsKeyPairGen  = 0x1055
	ckmEdDSA                = 0x1057
	maxObjectsAmbiguityScan = 2
)

// Curve identifiers as they appear in CKA_EC_PARAMS.
var (
	oidP256    = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384    = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	oidP521    = asn1.ObjectIdentifier{1, 3, 132, 0, 35}
	oidEd25519 = asn1.ObjectIdentifier{1, 3, 101, 112}
)

// tokenRef is a token found in the library's slot list.
type tokenRef struct {
	slot uint
	// id identifies the token across slot renumbering: serial and label.
	// A re-initialised SoftHSM token gets a new serial, so a re-created
	// token with the same label is a different identity.
	id string
}

// findToken returns the one initialised token that cfg selects.
func findToken(ctx *p11.Ctx, cfg Config) (tokenRef, error) {
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return tokenRef{}, fmt.Errorf("list slots: %w", err)
	}
	var (
		found      []tokenRef
		unreadable int
		lastErr    error
	)
	for _, slot := range slots {
		ti, err := ctx.GetTokenInfo(slot)
		if err != nil {
			// SoftHSM answers CKR_GENERAL_ERROR for a token deleted since
			// the library was initialised, and for a moment while another
			// process writes to a token; the error message counts them.
			unreadable++
			lastErr = err
			continue
		}
		if ti.Flags&p11.CKF_TOKEN_INITIALIZED == 0 {
			continue
		}
		label := strings.TrimRight(ti.Label, " \x00")
		serial := strings.TrimRight(ti.SerialNumber, " \x00")
		if (cfg.TokenSerial != "" && serial == cfg.TokenSerial) || (cfg.TokenLabel != "" && label == cfg.TokenLabel) {
			found = append(found, tokenRef{slot: slot, id: serial + "\x00" + label})
		}
	}
	switch len(found) {
	case 0:
		if unreadable > 0 {
			return tokenRef{}, fmt.Errorf("%w: no initialised %s among %d slots (%d unreadable: %v)", ErrTokenNotFound, cfg.tokenName(), len(slots), unreadable, lastErr)
		}
		return tokenRef{}, fmt.Errorf("%w: no initialised %s among %d slots", ErrTokenNotFound, cfg.tokenName(), len(slots))
	case 1:
		return found[0], nil
	default:
		return tokenRef{}, fmt.Errorf("%w: %d tokens match %s; select the token by serial", ErrTokenAmbiguous, len(found), cfg.tokenName())
	}
}

// findObjects returns up to max objects matching tmpl.
func findObjects(ctx *p11.Ctx, sh p11.SessionHandle, tmpl []*p11.Attribute, max int) ([]p11.ObjectHandle, error) {
	if err := ctx.FindObjectsInit(sh, tmpl); err != nil {
		return nil, fmt.Errorf("find objects: %w", err)
	}
	objs, _, err := ctx.FindObjects(sh, max)
	if ferr := ctx.FindObjectsFinal(sh); err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		return nil, fmt.Errorf("find objects: %w", err)
	}
	return objs, nil
}

// attribute reads one attribute. A missing attribute (the library answers
// CKR_ATTRIBUTE_TYPE_INVALID) comes back as nil without error, since
// libraries differ in which optional attributes they keep.
func attribute(ctx *p11.Ctx, sh p11.SessionHandle, obj p11.ObjectHandle, typ uint) ([]byte, error) {
	attrs, err := ctx.GetAttributeValue(sh, obj, []*p11.Attribute{p11.NewAttribute(typ, nil)})
	if isCode(err, p11.CKR_ATTRIBUTE_TYPE_INVALID) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read attribute %#x: %w", typ, err)
	}
	if len(attrs) != 1 {
		return nil, nil
	}
	return attrs[0].Value, nil
}

// ulong decodes a CK_ULONG attribute value, stored in the platform's
// native size and byte order.
func ulong(b []byte) (uint, bool) {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b)), true
	case 4:
		return uint(binary.NativeEndian.Uint32(b)), true
	}
	return 0, false
}

// foundKey is a private key object and what is known of its public half.
type foundKey struct {
	handle p11.ObjectHandle
	id     []byte
	// pub is nil when the token keeps no public key object for an EC or
	// Ed25519 key; the caller then relies on Config.Expected.
	pub     crypto.PublicKey
	keyType uint
	curve   elliptic.Curve // ECDSA only
}

// findKey finds the one private key cfg selects and reads its public key.
// It looks at token objects only: the session copies that Keys of this
// process sign with (see Config.DisableSessionCopy) carry the same label
// and ID and are visible to every session of the process.
func findKey(ctx *p11.Ctx, sh p11.SessionHandle, cfg Config) (foundKey, error) {
	tmpl := []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY),
		p11.NewAttribute(p11.CKA_TOKEN, true),
	}
	if cfg.KeyLabel != "" {
		tmpl = append(tmpl, p11.NewAttribute(p11.CKA_LABEL, cfg.KeyLabel))
	}
	if len(cfg.KeyID) > 0 {
		tmpl = append(tmpl, p11.NewAttribute(p11.CKA_ID, cfg.KeyID))
	}
	objs, err := findObjects(ctx, sh, tmpl, maxObjectsAmbiguityScan)
	if err != nil {
		return foundKey{}, err
	}
	switch len(objs) {
	case 0:
		return foundKey{}, fmt.Errorf("%w: no private key with %s on %s", ErrKeyNotFound, cfg.keyName(), cfg.tokenName())
	case 1:
	default:
		return foundKey{}, fmt.Errorf("%w: several private keys with %s on %s", ErrKeyAmbiguous, cfg.keyName(), cfg.tokenName())
	}
	k := foundKey{handle: objs[0]}
	rawType, err := attribute(ctx, sh, k.handle, p11.CKA_KEY_TYPE)
	if err != nil {
		return foundKey{}, err
	}
	keyType, ok := ulong(rawType)
	if !ok {
		return foundKey{}, fmt.Errorf("%w: unreadable key type", ErrUnsupportedKey)
	}
	k.keyType = keyType
	if k.id, err = attribute(ctx, sh, k.handle, p11.CKA_ID); err != nil {
		return foundKey{}, err
	}
	label, err := attribute(ctx, sh, k.handle, p11.CKA_LABEL)
	if err != nil {
		return foundKey{}, err
	}
	switch keyType {
	case p11.CKK_RSA:
		k.pub, err = rsaPublic(ctx, sh, k.handle)
		if err == nil && k.pub == nil {
			// Not every library keeps the public exponent on the private
			// object; the public object always has both.
			pubObj, perr := findPublicObject(ctx, sh, keyType, k.id, label)
			if perr != nil {
				return foundKey{}, perr
			}
			if pubObj != nil {
				k.pub, err = rsaPublic(ctx, sh, *pubObj)
			}
		}
	case p11.CKK_EC, ckkECEdwards:
		var params []byte
		if params, err = attribute(ctx, sh, k.handle, p11.CKA_EC_PARAMS); err != nil {
			return foundKey{}, err
		}
		if k.curve, err = curveOf(keyType, params); err != nil {
			return foundKey{}, err
		}
		var pubObj *p11.ObjectHandle
		if pubObj, err = findPublicObject(ctx, sh, keyType, k.id, label); err != nil {
			return foundKey{}, err
		}
		if pubObj != nil {
			var point []byte
			if point, err = attribute(ctx, sh, *pubObj, p11.CKA_EC_POINT); err != nil {
				return foundKey{}, err
			}
			k.pub, err = ecPublic(k.curve, point)
		}
	default:
		return foundKey{}, fmt.Errorf("%w: PKCS#11 key type %#x", ErrUnsupportedKey, keyType)
	}
	if err != nil {
		return foundKey{}, err
	}
	return k, nil
}

// findPublicObject finds the public key object paired with a private key:
// by CKA_ID when the private key has one (the PKCS#11 convention), by
// label otherwise. It returns nil when there is none. Several objects are
// accepted only when they hold the same public key.
func findPublicObject(ctx *p11.Ctx, sh p11.SessionHandle, keyType uint, id, label []byte) (*p11.ObjectHandle, error) {
	tmpl := []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PUBLIC_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, keyType),
	}
	switch {
	case len(id) > 0:
		tmpl = append(tmpl, p11.NewAttribute(p11.CKA_ID, id))
	case len(label) > 0:
		tmpl = append(tmpl, p11.NewAttribute(p11.CKA_LABEL, label))
	default:
		return nil, nil
	}
	objs, err := findObjects(ctx, sh, tmpl, 16)
	if err != nil || len(objs) == 0 {
		return nil, err
	}
	attr := uint(p11.CKA_EC_POINT)
	if keyType == p11.CKK_RSA {
		attr = p11.CKA_MODULUS
	}
	first, err := attribute(ctx, sh, objs[0], attr)
	if err != nil {
		return nil, err
	}
	for _, o := range objs[1:] {
		v, err := attribute(ctx, sh, o, attr)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(v, first) {
			return nil, fmt.Errorf("%w: public key objects paired with the private key disagree", ErrKeyAmbiguous)
		}
	}
	return &objs[0], nil
}

// rsaPublic reads an RSA public key from a private or public key object; it
// returns nil when the object lacks the modulus or the exponent.
func rsaPublic(ctx *p11.Ctx, sh p11.SessionHandle, obj p11.ObjectHandle) (crypto.PublicKey, error) {
	n, err := attribute(ctx, sh, obj, p11.CKA_MODULUS)
	if err != nil {
		return nil, err
	}
	e, err := attribute(ctx, sh, obj, p11.CKA_PUBLIC_EXPONENT)
	if err != nil {
		return nil, err
	}
	if len(n) == 0 || len(e) == 0 {
		return nil, nil
	}
	exp := new(big.Int).SetBytes(e)
	if !exp.IsInt64() || exp.Int64() > 1<<31-1 || exp.Int64() < 3 {
		return nil, fmt.Errorf("%w: RSA public exponent %s", ErrUnsupportedKey, exp)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp.Int64())}, nil
}

// curveOf decodes CKA_EC_PARAMS: a named-curve OID, or for Ed25519 the
// PrintableString "edwards25519" that SoftHSM and OpenSC write. It returns
// nil for Ed25519.
func curveOf(keyType uint, params []byte) (elliptic.Curve, error) {
	var oid asn1.ObjectIdentifier
	if rest, err := asn1.Unmarshal(params, &oid); err == nil && len(rest) == 0 {
		switch {
		case keyType == p11.CKK_EC && oid.Equal(oidP256):
			return elliptic.P256(), nil
		case keyType == p11.CKK_EC && oid.Equal(oidP384):
			return elliptic.P384(), nil
		case keyType == p11.CKK_EC && oid.Equal(oidP521):
			return elliptic.P521(), nil
		case keyType == ckkECEdwards && oid.Equal(oidEd25519):
			return nil, nil
		}
		return nil, fmt.Errorf("%w: curve %s", ErrUnsupportedKey, oid)
	}
	var name string
	if rest, err := asn1.Unmarshal(params, &name); err == nil && len(rest) == 0 {
		if keyType == ckkECEdwards && name == "edwards25519" {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: curve %q", ErrUnsupportedKey, name)
	}
	return nil, fmt.Errorf("%w: unreadable EC parameters %x", ErrUnsupportedKey, params)
}

// ecPublic decodes CKA_EC_POINT for curve (nil: Ed25519). PKCS#11 asks for
// the point wrapped in a DER OCTET STRING, which SoftHSM does; some
// libraries return it bare, so a value of exactly the bare size is taken
// as is (a wrapped value is always longer).
func ecPublic(curve elliptic.Curve, point []byte) (crypto.PublicKey, error) {
	size := ed25519.PublicKeySize
	if curve != nil {
		size = 1 + 2*((curve.Params().BitSize+7)/8)
	}
	if len(point) != size {
		var inner []byte
		rest, err := asn1.Unmarshal(point, &inner)
		if err != nil || len(rest) != 0 || len(inner) != size {
			return nil, fmt.Errorf("%w: EC point of %d bytes", ErrUnsupportedKey, len(point))
		}
		point = inner
	}
	if curve == nil {
		return ed25519.PublicKey(bytes.Clone(point)), nil
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
	if err != nil {
		return nil, fmt.Errorf("%w: EC point: %w", ErrUnsupportedKey, err)
	}
	return pub, nil
}

// publicMatchesType reports whether pub is a key of the type and curve
// found on the token, so that Config.Expected can stand in for a missing
// public key object.
func publicMatchesType(pub crypto.PublicKey, k foundKey) bool {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		return k.keyType == p11.CKK_EC && p.Curve == k.curve
	case ed25519.PublicKey:
		return k.keyType == ckkECEdwards
	case *rsa.PublicKey:
		return k.keyType == p11.CKK_RSA
	}
	return false
}

// samePublic compares public keys of the types this package supports.
func samePublic(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

var errNoPublic = errors.New("the token holds no public key object for this key; set Config.Expected (the CA certificate's key)")
