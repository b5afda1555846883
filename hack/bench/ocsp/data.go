package main

import (
	"bufio"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/ocspserver"
)

// Files both responders read, in the benchmark's directory.
const (
	fileCA      = "ca.pem"
	fileCAKey   = "ca.key"
	fileSigner  = "responder.pem"
	fileKey     = "responder.key"
	fileIndex   = "index.txt"
	utcTimeForm = "060102150405Z"
)

// dataset is the revocation data both responders serve.
type dataset struct {
	ca       *x509.Certificate
	serials  []*big.Int // issued, in index order
	revoked  map[string]bool
	unknown  []*big.Int // never issued
	signer   *x509.Certificate
	notAfter time.Time
}

// makeDataset creates an ECDSA P-256 CA, a delegated responder (ECDSA
// P-256, issued by issuance.Authority.IssueResponder) that both responders
// sign with, and n issued certificates of which every tenth is revoked,
// written as an openssl ca database.
func makeDataset(dir string, n int) (*dataset, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Quill OCSP Benchmark CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	responder, signerKey, err := (&issuance.Authority{Certificate: ca, Root: ca, Signer: caKey}).IssueResponder(24*time.Hour, "", now)
	if err != nil {
		return nil, err
	}
	signer := responder.Certificate
	keyDER, err := x509.MarshalPKCS8PrivateKey(signerKey)
	if err != nil {
		return nil, err
	}
	caKeyDER, err := x509.MarshalPKCS8PrivateKey(caKey)
	if err != nil {
		return nil, err
	}
	ds := &dataset{ca: ca, signer: signer, revoked: map[string]bool{}, notAfter: now.Add(90 * 24 * time.Hour)}
	var idx strings.Builder
	for i := range n + n/100 {
		serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
		if err != nil {
			return nil, err
		}
		serial.SetBit(serial, 126, 1)
		if i >= n {
			ds.unknown = append(ds.unknown, serial)
			continue
		}
		ds.serials = append(ds.serials, serial)
		status, rev := "V", ""
		if i%10 == 0 {
			status = "R"
			rev = now.Add(-time.Duration(mrand.Int64N(int64(30*24*time.Hour)))).UTC().Format(utcTimeForm) + ",keyCompromise"
			ds.revoked[serial.Text(16)] = true
		}
		fmt.Fprintf(&idx, "%s\t%s\t%s\t%s\tunknown\t/CN=leaf-%d\n", status, ds.notAfter.UTC().Format(utcTimeForm), rev, strings.ToUpper(serial.Text(16)), i)
	}
	files := map[string][]byte{
		fileCA:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}),
		fileSigner: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: signer.Raw}),
		fileKey:    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		fileCAKey:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: caKeyDER}),
		fileIndex:  []byte(idx.String()),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	return ds, nil
}

// indexSource is an ocspserver.Source read from the openssl ca database,
// so Quill serves exactly what openssl ocsp -index serves.
type indexSource map[string]ocspserver.Status

func (s indexSource) Lookup(serial *big.Int) (ocspserver.Status, bool) {
	st, ok := s[serial.Text(16)]
	return st, ok
}

func readIndex(path string) (indexSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	src := indexSource{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) != 6 {
			return nil, fmt.Errorf("index line %q: want 6 fields", sc.Text())
		}
		serial, ok := new(big.Int).SetString(fields[3], 16)
		if !ok {
			return nil, fmt.Errorf("index serial %q", fields[3])
		}
		notAfter, err := time.Parse(utcTimeForm, fields[1])
		if err != nil {
			return nil, err
		}
		st := ocspserver.Status{NotAfter: notAfter}
		if fields[0] == "R" {
			when, reason, _ := strings.Cut(fields[2], ",")
			if st.RevokedAt, err = time.Parse(utcTimeForm, when); err != nil {
				return nil, err
			}
			st.Revoked = true
			if reason == "keyCompromise" {
				st.Reason = 1
			}
		}
		src[serial.Text(16)] = st
	}
	return src, sc.Err()
}

func readPEM(path, typ string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != typ {
		return nil, fmt.Errorf("%s: no %s PEM block", path, typ)
	}
	return block.Bytes, nil
}

func loadSigner(dir string) (*x509.Certificate, *x509.Certificate, crypto.Signer, error) {
	caDER, err := readPEM(filepath.Join(dir, fileCA), "CERTIFICATE")
	if err != nil {
		return nil, nil, nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, err
	}
	certDER, err := readPEM(filepath.Join(dir, fileSigner), "CERTIFICATE")
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := readPEM(filepath.Join(dir, fileKey), "PRIVATE KEY")
	if err != nil {
		return nil, nil, nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		return nil, nil, nil, err
	}
	key, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, nil, errors.New("responder key is not a signer")
	}
	return ca, cert, key, nil
}
