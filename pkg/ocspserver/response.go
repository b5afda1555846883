package ocspserver

import (
	"crypto"
	"crypto/sha1" //nolint:gosec // RFC 6960 §4.2.1 fixes SHA-1 for the responder's KeyHash.
	"encoding/asn1"
	"math/big"
	"strconv"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// ResponseStatus is the OCSPResponseStatus of RFC 6960 §4.2.1.
type ResponseStatus int

// The response statuses this responder sends. Only Successful responses are
// signed; the others are the fixed unsigned bodies RFC 6960 defines.
const (
	Successful       ResponseStatus = 0
	MalformedRequest ResponseStatus = 1
	InternalError    ResponseStatus = 2
	// TryLater is the answer while the Source is not ready (Config.Ready):
	// the responder cannot tell the true status yet, and any signed answer
	// would be one that caches keep.
	TryLater     ResponseStatus = 3
	Unauthorized ResponseStatus = 6
)

func (s ResponseStatus) String() string {
	switch s {
	case Successful:
		return "successful"
	case MalformedRequest:
		return "malformedRequest"
	case InternalError:
		return "internalError"
	case TryLater:
		return "tryLater"
	case Unauthorized:
		return "unauthorized"
	}
	return "status(" + strconv.Itoa(int(s)) + ")"
}

// errorBody is the DER OCSPResponse carrying status s and no responseBytes.
func errorBody(s ResponseStatus) []byte {
	return []byte{0x30, 0x03, 0x0a, 0x01, byte(s)}
}

var oidBasicResponse = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}

// certStatus is the CertStatus CHOICE of a SingleResponse.
type certStatus int

const (
	statusGood certStatus = iota
	statusRevoked
	statusUnknown
)

// single is everything one SingleResponse says.
type single struct {
	hashIndex          int
	nameHash, keyHash  []byte
	serial             *big.Int
	status             certStatus
	revokedAt          time.Time
	reason             int // written only when 1..10 and not 7
	thisUpdate, nextUp time.Time
}

// signer is the identity responses are signed under: the CA itself or a
// delegated responder certificate the CA issued.
type signer struct {
	key       crypto.Signer
	spec      sigSpec
	keyHash   []byte    // SHA-1 of the signer's subjectPublicKey, the responderID
	certDER   []byte    // the delegated responder certificate, nil for the CA
	notAfter  time.Time // responses never claim to be valid past it
	delegated bool
}

func responderKeyHash(subjectPublicKey []byte) []byte {
	sum := sha1.Sum(subjectPublicKey) //nolint:gosec // fixed by RFC 6960
	return sum[:]
}

// buildResponse encodes and signs a successful OCSPResponse holding one
// SingleResponse, with the nonce (an extnValue, as received) echoed in the
// responseExtensions when given.
func buildResponse(sg *signer, s single, producedAt time.Time, nonce []byte) ([]byte, error) {
	var tbs cryptobyte.Builder
	tbs.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		// version v1 is the DEFAULT and so left out.
		b.AddASN1(tag2, func(b *cryptobyte.Builder) { // responderID byKey
			b.AddASN1OctetString(sg.keyHash)
		})
		b.AddASN1GeneralizedTime(producedAt.UTC())
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			addSingle(b, s)
		})
		if nonce != nil {
			b.AddASN1(tag1, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oidNonce)
						b.AddASN1OctetString(nonce)
					})
				})
			})
		}
	})
	tbsDER, err := tbs.Bytes()
	if err != nil {
		return nil, err
	}
	sig, err := sg.spec.sign(sg.key, tbsDER)
	if err != nil {
		return nil, err
	}
	var basic cryptobyte.Builder
	basic.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbsDER)
		b.AddBytes(sg.spec.algID)
		b.AddASN1BitString(sig)
		if sg.certDER != nil {
			b.AddASN1(tag0, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddBytes(sg.certDER)
				})
			})
		}
	})
	basicDER, err := basic.Bytes()
	if err != nil {
		return nil, err
	}
	var resp cryptobyte.Builder
	resp.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Enum(int64(Successful))
		b.AddASN1(tag0, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidBasicResponse)
				b.AddASN1OctetString(basicDER)
			})
		})
	})
	return resp.Bytes()
}

var (
	tagGood    = cbasn1.Tag(0).ContextSpecific()
	tagUnknown = cbasn1.Tag(2).ContextSpecific()
)

func addSingle(b *cryptobyte.Builder, s single) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // certID
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(hashes[s.hashIndex].oid)
				b.AddASN1NULL()
			})
			b.AddASN1OctetString(s.nameHash)
			b.AddASN1OctetString(s.keyHash)
			b.AddASN1BigInt(s.serial)
		})
		switch s.status {
		case statusGood:
			b.AddASN1(tagGood, func(*cryptobyte.Builder) {})
		case statusUnknown:
			b.AddASN1(tagUnknown, func(*cryptobyte.Builder) {})
		case statusRevoked:
			b.AddASN1(tag1, func(b *cryptobyte.Builder) {
				b.AddASN1GeneralizedTime(s.revokedAt.UTC())
				if reasonWritten(s.reason) {
					b.AddASN1(tag0, func(b *cryptobyte.Builder) {
						b.AddASN1Enum(int64(s.reason))
					})
				}
			})
		}
		b.AddASN1GeneralizedTime(s.thisUpdate.UTC())
		b.AddASN1(tag0, func(b *cryptobyte.Builder) {
			b.AddASN1GeneralizedTime(s.nextUp.UTC())
		})
	})
}

// validReason reports whether r is an RFC 5280 CRLReason value.
func validReason(r int) bool { return r >= 0 && r <= 10 && r != 7 }

// reasonWritten reports whether the revocationReason is written: like a CRL
// entry, an OCSP response expresses "unspecified" by leaving it out.
func reasonWritten(r int) bool { return r != 0 && validReason(r) }
