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

// pemBlocks splits data into PEM blocks and refuses anything else in it.
// pem.Decode alone skips text it does not understand, including a damaged
// block in front of a good one; text around or between blocks usually means
// a truncated or concatenated file, and neither a CA nor a signing decision
// should rest on a guess about which part was meant.
func pemBlocks(data []byte) ([]*pem.Block, error) {
	var blocks []*pem.Block
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		if !bytes.HasPrefix(rest, pemBegin) {
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

// parseCertificates reads a PEM bundle that must hold only certificates.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	blocks, err := pemBlocks(data)
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

// parsePrivateKey reads the one private key in a PEM file, in any of the
// encodings cert-manager and OpenSSL write: PKCS#1 (RSA), SEC1 (EC) or
// PKCS#8 (any type, including Ed25519 and seed-only ML-DSA). An "EC
// PARAMETERS" block, which `openssl ecparam -genkey` puts first, is skipped.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	blocks, err := pemBlocks(data)
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
	if len(b.Headers) != 0 {
		return nil, fmt.Errorf("%w: encrypted PEM keys are not supported", errPEMHeader)
	}
	var key any
	switch b.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(b.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("%w: encrypted PKCS#8 keys are not supported", errPEMType)
	default:
		return nil, fmt.Errorf("%w: %q is not a private key", errPEMType, b.Type)
	}
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: a %T cannot sign", errUnsupportedKey, key)
	}
	return signer, nil
}

func encodeCertificates(certs ...*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		// Writing to a bytes.Buffer cannot fail.
		_ = pem.Encode(&buf, &pem.Block{Type: pemCertificate, Bytes: c.Raw})
	}
	return buf.Bytes()
}
