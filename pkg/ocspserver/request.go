package ocspserver

import (
	"bytes"
	"crypto"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// ErrMalformedRequest marks bytes that are not an OCSP request this
// responder can answer. The responder answers them with the unsigned
// malformedRequest response.
var ErrMalformedRequest = errors.New("malformed OCSP request")

// MaxNonceLength is the longest nonce accepted (RFC 8954 §2.1 bounds it to
// 32 octets; longer ones are a known way to make responders sign
// attacker-chosen bytes).
const MaxNonceLength = 32

var (
	oidNonce             = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
	oidAcceptable        = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 4}
	oidServiceLocator    = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 7}
	oidPreferredSigAlgos = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 8}
)

// hashes are the CertID hash algorithms answered, in the order their
// precomputed issuer hashes are kept.
var hashes = []struct {
	hash crypto.Hash
	oid  asn1.ObjectIdentifier
}{
	{crypto.SHA1, asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}},
	{crypto.SHA256, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}},
	{crypto.SHA384, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}},
	{crypto.SHA512, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}},
}

// Request is the one certificate status request an OCSP request carries.
type Request struct {
	// HashAlgorithm is the CertID hash: SHA-1, SHA-256, SHA-384 or SHA-512.
	HashAlgorithm crypto.Hash
	// IssuerNameHash and IssuerKeyHash identify the issuing CA.
	IssuerNameHash []byte
	IssuerKeyHash  []byte
	// Serial is the serial number of the certificate asked about.
	Serial *big.Int
	// Nonce is the extnValue of the request's id-pkix-ocsp-nonce extension,
	// byte for byte (to be echoed unchanged), or nil when there is none.
	Nonce []byte

	hashIndex int
}

// ParseRequest parses a DER OCSPRequest (RFC 6960 §4.1.1). Every error wraps
// ErrMalformedRequest. Beyond what x/crypto/ocsp checks, it refuses:
//
//   - trailing data after the request, or inside any of its structures;
//   - a version other than v1;
//   - an empty requestList, and more than one request: Quill answers one
//     certificate per request, as RFC 5019 profiles and every common client
//     sends, rather than sign a partial answer;
//   - CertID hash algorithms other than SHA-1, SHA-256, SHA-384, SHA-512,
//     and hashes of the wrong length for their algorithm;
//   - a nonce longer than MaxNonceLength octets or empty, or given twice;
//   - an unknown extension marked critical.
//
// A request signature (optionalSignature) is accepted and not checked:
// status is public information, and RFC 6960 leaves signed requests optional.
func ParseRequest(der []byte) (*Request, error) {
	req, err := parseRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedRequest, err)
	}
	return req, nil
}

var (
	tag0 = cbasn1.Tag(0).Constructed().ContextSpecific()
	tag1 = cbasn1.Tag(1).Constructed().ContextSpecific()
	tag2 = cbasn1.Tag(2).Constructed().ContextSpecific()
)

func parseRequest(der []byte) (*Request, error) {
	input := cryptobyte.String(der)
	var ocspReq, tbs cryptobyte.String
	if !input.ReadASN1(&ocspReq, cbasn1.SEQUENCE) {
		return nil, errors.New("not a DER SEQUENCE")
	}
	if !input.Empty() {
		return nil, errors.New("trailing data after the request")
	}
	if !ocspReq.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return nil, errors.New("no tbsRequest")
	}
	if !ocspReq.SkipOptionalASN1(tag0) { // optionalSignature
		return nil, errors.New("bad optionalSignature")
	}
	if !ocspReq.Empty() {
		return nil, errors.New("trailing data after tbsRequest")
	}

	var version cryptobyte.String
	var hasVersion bool
	if !tbs.ReadOptionalASN1(&version, &hasVersion, tag0) {
		return nil, errors.New("bad version")
	}
	if hasVersion {
		// DER leaves the default v1 out; a client that writes it anyway is
		// still asking in v1, so only other values are refused.
		var v int64
		if !version.ReadASN1Int64WithTag(&v, cbasn1.INTEGER) || !version.Empty() {
			return nil, errors.New("bad version")
		}
		if v != 0 {
			return nil, fmt.Errorf("unsupported version %d", v+1)
		}
	}
	if !tbs.SkipOptionalASN1(tag1) { // requestorName
		return nil, errors.New("bad requestorName")
	}
	var list cryptobyte.String
	if !tbs.ReadASN1(&list, cbasn1.SEQUENCE) {
		return nil, errors.New("no requestList")
	}
	var exts cryptobyte.String
	var hasExts bool
	if !tbs.ReadOptionalASN1(&exts, &hasExts, tag2) {
		return nil, errors.New("bad requestExtensions")
	}
	if !tbs.Empty() {
		return nil, errors.New("trailing data in tbsRequest")
	}

	var single cryptobyte.String
	if !list.ReadASN1(&single, cbasn1.SEQUENCE) {
		return nil, errors.New("empty or malformed requestList")
	}
	if !list.Empty() {
		return nil, errors.New("more than one request in requestList; send one request per certificate")
	}
	req, err := parseSingle(single)
	if err != nil {
		return nil, err
	}
	if hasExts {
		nonce, err := parseExtensions(exts, true)
		if err != nil {
			return nil, fmt.Errorf("requestExtensions: %w", err)
		}
		req.Nonce = nonce
	}
	return req, nil
}

func parseSingle(single cryptobyte.String) (*Request, error) {
	var certID, alg cryptobyte.String
	if !single.ReadASN1(&certID, cbasn1.SEQUENCE) {
		return nil, errors.New("no reqCert")
	}
	var singleExts cryptobyte.String
	var hasSingleExts bool
	if !single.ReadOptionalASN1(&singleExts, &hasSingleExts, tag0) || !single.Empty() {
		return nil, errors.New("bad singleRequestExtensions")
	}
	if hasSingleExts {
		nonce, err := parseExtensions(singleExts, false)
		if err != nil {
			return nil, fmt.Errorf("singleRequestExtensions: %w", err)
		}
		if nonce != nil {
			return nil, errors.New("nonce among singleRequestExtensions")
		}
	}

	if !certID.ReadASN1(&alg, cbasn1.SEQUENCE) {
		return nil, errors.New("no hashAlgorithm")
	}
	var oid asn1.ObjectIdentifier
	if !alg.ReadASN1ObjectIdentifier(&oid) {
		return nil, errors.New("bad hashAlgorithm")
	}
	// Parameters are absent or NULL for every hash accepted.
	if !alg.Empty() {
		var null cryptobyte.String
		if !alg.ReadASN1(&null, cbasn1.NULL) || !null.Empty() || !alg.Empty() {
			return nil, errors.New("bad hashAlgorithm parameters")
		}
	}
	req := &Request{hashIndex: -1}
	for i, h := range hashes {
		if h.oid.Equal(oid) {
			req.HashAlgorithm, req.hashIndex = h.hash, i
		}
	}
	if req.hashIndex < 0 {
		return nil, fmt.Errorf("unsupported CertID hash algorithm %s; use SHA-1, SHA-256, SHA-384 or SHA-512", oid)
	}
	var nameHash, keyHash cryptobyte.String
	if !certID.ReadASN1(&nameHash, cbasn1.OCTET_STRING) || !certID.ReadASN1(&keyHash, cbasn1.OCTET_STRING) {
		return nil, errors.New("bad issuer hashes")
	}
	if len(nameHash) != req.HashAlgorithm.Size() || len(keyHash) != req.HashAlgorithm.Size() {
		return nil, fmt.Errorf("issuer hashes are not %d-octet %s hashes", req.HashAlgorithm.Size(), req.HashAlgorithm)
	}
	req.IssuerNameHash = bytes.Clone(nameHash)
	req.IssuerKeyHash = bytes.Clone(keyHash)
	req.Serial = new(big.Int)
	if !certID.ReadASN1Integer(req.Serial) {
		return nil, errors.New("bad serialNumber")
	}
	if !certID.Empty() {
		return nil, errors.New("trailing data in CertID")
	}
	return req, nil
}

// parseExtensions walks an Extensions SEQUENCE and returns the nonce's
// extnValue when nonceAllowed and one is present.
func parseExtensions(exts cryptobyte.String, nonceAllowed bool) ([]byte, error) {
	var seq cryptobyte.String
	if !exts.ReadASN1(&seq, cbasn1.SEQUENCE) || !exts.Empty() {
		return nil, errors.New("not a SEQUENCE of extensions")
	}
	if seq.Empty() {
		return nil, errors.New("empty extensions")
	}
	var nonce []byte
	for !seq.Empty() {
		var ext, value cryptobyte.String
		var oid asn1.ObjectIdentifier
		critical := false
		if !seq.ReadASN1(&ext, cbasn1.SEQUENCE) ||
			!ext.ReadASN1ObjectIdentifier(&oid) ||
			!ext.ReadOptionalASN1Boolean(&critical, cbasn1.BOOLEAN, false) ||
			!ext.ReadASN1(&value, cbasn1.OCTET_STRING) ||
			!ext.Empty() {
			return nil, errors.New("malformed extension")
		}
		switch {
		case nonceAllowed && oid.Equal(oidNonce):
			if nonce != nil {
				return nil, errors.New("nonce given twice")
			}
			if err := checkNonce(value); err != nil {
				return nil, err
			}
			nonce = bytes.Clone(value)
		case oid.Equal(oidAcceptable), oid.Equal(oidServiceLocator), oid.Equal(oidPreferredSigAlgos):
			// Understood well enough to ignore: the answer is always a
			// basic response, signed with the one algorithm configured,
			// from this responder.
		case critical:
			return nil, fmt.Errorf("unsupported critical extension %s", oid)
		}
	}
	return nonce, nil
}

// checkNonce bounds the nonce's length. RFC 8954 defines the extnValue as a
// DER OCTET STRING of 1 to 32 octets; clients older than it (RFC 2560 left
// the syntax open) may send the nonce bytes directly, and those are held to
// the same bound.
func checkNonce(value cryptobyte.String) error {
	n := len(value)
	inner := value
	var octets cryptobyte.String
	if inner.ReadASN1(&octets, cbasn1.OCTET_STRING) && inner.Empty() {
		n = len(octets)
	}
	if n == 0 || n > MaxNonceLength {
		return fmt.Errorf("nonce of %d octets; RFC 8954 allows 1 to %d", n, MaxNonceLength)
	}
	return nil
}
