package issuance

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
)

// mustStapleExtension is the TLS feature extension (RFC 7633, OID
// 1.3.6.1.5.5.7.1.24) holding status_request (5): the certificate asks TLS
// clients to insist on a stapled OCSP response.
var mustStapleExtension = pkix.Extension{
	Id:    asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 24},
	Value: []byte{0x30, 0x03, 0x02, 0x01, 0x05}, // SEQUENCE { INTEGER 5 }
}

// Recall returns the bundle for a certificate this CA signed earlier, as
// Sign would have returned it: the ledger keeps the certificate so that a
// request retried after a crash receives it again instead of a second
// signature. It fails when certPEM is not exactly one certificate or was not
// signed by this CA's key.
func (a *Authority) Recall(certPEM []byte) (*Issued, error) {
	certs, err := ParseCertificatesPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("recorded certificate: %w", err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("recorded certificate: want one certificate, found %d", len(certs))
	}
	if err := certs[0].CheckSignatureFrom(a.Certificate); err != nil {
		return nil, fmt.Errorf("recorded certificate serial %x was not signed by the current CA %q: %w", certs[0].SerialNumber, a.Certificate.Subject, err)
	}
	return a.bundle(certs[0]), nil
}
