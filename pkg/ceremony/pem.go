package ceremony

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

var errBadPEM = errors.New("malformed PEM")

var pemBegin = []byte("-----BEGIN ")

// decodePEM splits data into PEM blocks and refuses anything else: text
// before, between or after blocks, or a block without its END line. A file
// cut short or two files pasted together must not be read as whatever part
// happens to parse, least of all for a CA.
func decodePEM(data []byte) ([]*pem.Block, error) {
	var blocks []*pem.Block
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		if !bytes.HasPrefix(rest, pemBegin) {
			if len(blocks) == 0 {
				return nil, fmt.Errorf("%w: the data is not PEM (it does not start with %q)", errBadPEM, pemBegin)
			}
			return nil, fmt.Errorf("%w: unexpected data after PEM block %d", errBadPEM, len(blocks))
		}
		block, tail := pem.Decode(rest)
		// pem.Decode skips a damaged block and returns the next good one;
		// the consumed part holding a second BEGIN line betrays that.
		if block == nil || bytes.Count(rest[:len(rest)-len(tail)], pemBegin) != 1 {
			return nil, fmt.Errorf("%w: PEM block %d is truncated or damaged", errBadPEM, len(blocks)+1)
		}
		blocks = append(blocks, block)
		rest = bytes.TrimSpace(tail)
	}
	if len(blocks) == 0 {
		return nil, fmt.Errorf("%w: the file is empty", errBadPEM)
	}
	return blocks, nil
}

// parseCertificatesPEM reads a PEM bundle of certificates only.
func parseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	blocks, err := decodePEM(data)
	if err != nil {
		return nil, err
	}
	certs := make([]*x509.Certificate, 0, len(blocks))
	for i, b := range blocks {
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: PEM block %d is %q, want \"CERTIFICATE\"", errBadPEM, i+1, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i+1, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// encodeCertificatesPEM writes certs as one PEM bundle, in order.
func encodeCertificatesPEM(certs ...*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		buf.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return buf.Bytes()
}
