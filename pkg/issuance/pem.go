package issuance

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

const (
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY"
	pemCSR         = "CERTIFICATE REQUEST"
	// pemLegacyCSR is the label older tools (Windows certreq, keytool)
	// still write; the content is the same PKCS#10 request.
	pemLegacyCSR = "NEW CERTIFICATE REQUEST"
)

var (
	errNoPEM     = errors.New("no PEM data found")
	errBadPEM    = errors.New("malformed PEM")
	errPEMType   = errors.New("unexpected PEM block type")
	errPEMHeader = errors.New("unexpected PEM headers")
)

var (
	pemBegin = []byte("-----BEGIN ")
	pemEnd   = []byte("-----END ")
)

// DecodePEM splits data into PEM blocks and refuses anything else in it:
// text before, between or after blocks, a block without its END line, a
// damaged block. pem.Decode alone skips text it does not understand,
// including a damaged block in front of a good one; text around or between
// blocks usually means a truncated or concatenated file, and neither a CA
// nor a signing decision should rest on a guess about which part was meant.
// Every PEM input Quill reads (Secrets, CSRs, ceremony files) goes through
// it. Its errors say which block is wrong; none is classified, since what a
// bad file means depends on whose file it is.
func DecodePEM(data []byte) ([]*pem.Block, error) {
	var blocks []*pem.Block
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		if !bytes.HasPrefix(rest, pemBegin) {
			if len(blocks) == 0 {
				return nil, fmt.Errorf("%w: unexpected data %q where a PEM block should start (the data is not PEM)", errBadPEM, excerpt(rest))
			}
			return nil, fmt.Errorf("%w: unexpected data %q where a PEM block should start", errBadPEM, excerpt(rest))
		}
		end := bytes.Index(rest, pemEnd)
		if end < 0 {
			return nil, fmt.Errorf("%w: block %d has no END line (truncated?)", errBadPEM, len(blocks)+1)
		}
		lineEnd := bytes.IndexByte(rest[end:], '\n')
		if lineEnd < 0 {
			lineEnd = len(rest)
		} else {
			lineEnd += end + 1
		}
		segment := rest[:lineEnd]
		if bytes.Count(segment, pemBegin) != 1 {
			return nil, fmt.Errorf("%w: block %d has no END line before the next BEGIN line", errBadPEM, len(blocks)+1)
		}
		block, tail := pem.Decode(segment)
		if block == nil || len(bytes.TrimSpace(tail)) != 0 {
			return nil, fmt.Errorf("%w: block %d is damaged (bad base64 or mismatched BEGIN/END lines)", errBadPEM, len(blocks)+1)
		}
		blocks = append(blocks, block)
		rest = bytes.TrimSpace(rest[lineEnd:])
	}
	if len(blocks) == 0 {
		return nil, errNoPEM
	}
	return blocks, nil
}

func excerpt(b []byte) string {
	const n = 24
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// ParseCertificatesPEM reads a PEM bundle that must hold only certificates,
// without headers, in the order given. Its errors are DecodePEM's or name
// the block that is not a certificate.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	blocks, err := DecodePEM(data)
	if err != nil {
		return nil, err
	}
	certs := make([]*x509.Certificate, 0, len(blocks))
	for i, b := range blocks {
		if b.Type != pemCertificate {
			return nil, fmt.Errorf("%w: block %d is %q, want %q", errPEMType, i+1, b.Type, pemCertificate)
		}
		if len(b.Headers) != 0 {
			return nil, fmt.Errorf("%w: certificate %d", errPEMHeader, i+1)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i+1, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// ParsePrivateKeyPEM reads the one unencrypted private key of a PEM file, as
// parsePrivateKey does, and refuses a key Quill would not use for a CA or
// a certificate (KeyAlgorithmOf): a ceremony must never make a key an
// issuer would not load.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	s, err := parsePrivateKey(data)
	if err != nil {
		return nil, err
	}
	if _, err := describeKey(s.Public()); err != nil {
		return nil, err
	}
	return s, nil
}

// MarshalPrivateKeyPEM encodes key as a PEM "PRIVATE KEY" (PKCS#8) block,
// the form Quill's Secrets hold. ML-DSA keys are written seed-only, which is
// what Go reads back and what OpenSSL 3.5 can convert to.
func MarshalPrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("%w: encode %T as PKCS#8: %w", errUnsupportedKey, key, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// parsePrivateKey reads the one private key in a PEM file, in any of the
// encodings cert-manager and OpenSSL write: PKCS#1 (RSA), SEC1 (EC) or
// PKCS#8 (any type, including Ed25519 and seed-only ML-DSA). An "EC
// PARAMETERS" block, which `openssl ecparam -genkey` puts first, is skipped.
// Encrypted keys are refused (errUnsupportedKey) with the command that
// decrypts them; everything else that is not one key wraps errBadPEM.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	blocks, err := DecodePEM(data)
	if err != nil {
		return nil, err
	}
	var keyBlocks []*pem.Block
	for _, b := range blocks {
		if b.Type != "EC PARAMETERS" {
			keyBlocks = append(keyBlocks, b)
		}
	}
	if len(keyBlocks) != 1 {
		return nil, fmt.Errorf("%w: want exactly one private key block, found %d", errBadPEM, len(keyBlocks))
	}
	b := keyBlocks[0]
	// Quill holds no passwords: a Secret's key is protected by the API
	// server's access control, a ceremony key file by its permissions.
	const decrypt = "decrypt it first (openssl pkey -in KEY -out PLAIN)"
	switch {
	case b.Type == "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("%w: encrypted PKCS#8 keys are not supported; %s", errUnsupportedKey, decrypt)
	case len(b.Headers) != 0:
		return nil, fmt.Errorf("%w: encrypted PEM keys are not supported; %s", errUnsupportedKey, decrypt)
	}
	var key any
	switch b.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(b.Bytes)
	case pemPrivateKey:
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("%w: PEM block %q is not a private key", errBadPEM, b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadPEM, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: a %T cannot sign", errUnsupportedKey, key)
	}
	return signer, nil
}

func EncodeCertificatesPEM(certs ...*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		// Writing to a bytes.Buffer cannot fail.
		_ = pem.Encode(&buf, &pem.Block{Type: pemCertificate, Bytes: c.Raw})
	}
	return buf.Bytes()
}
