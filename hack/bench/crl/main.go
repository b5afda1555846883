// Command crl compares how long Quill's pkg/crl takes to build and sign a
// CRL with how long `openssl ca -gencrl` takes for the same revoked
// entries, and how big each CRL is.
//
//	go run ./hack/bench/crl [-entries 10000,100000] [-keys p256,rsa2048] [-reps 5]
//
// For each CA key type it makes a self-signed CA (key usage certSign and
// cRLSign, a subject key identifier) and, for each entry count, the same
// revoked entries for both: random 128-bit serials, revocation times in
// the last 90 days, reasons unspecified / keyCompromise / affiliationChanged
// / superseded / cessationOfOperation, certificates valid for a year. It
// writes them as an openssl `ca` database (index.txt, status R) with a
// config that asks for SHA-256, 24 h validity and an authority key
// identifier, as crl.Build writes.
//
// Each repetition times, back to back and alternating which goes first:
//
//   - Quill: crl.Build in this process, from the entries in memory to DER;
//   - OpenSSL: the whole `openssl ca -gencrl -config … -out crl.pem` run,
//     process start, reading index.txt and writing PEM included, since that
//     is what using it costs.
//
// It reports the median and minimum of -reps repetitions, the ratio of the
// medians, and the DER size of each CRL. Both CRLs of the last repetition
// are checked: each parses, verifies against the CA in Go, and lists
// exactly the generated serials with their reasons; any failure ends the
// run with a non-zero status. The markdown goes to stdout.
package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/quill-pki/quill/pkg/crl"
)

type keyType struct {
	flag, name string
	gen        func() (crypto.Signer, error)
}

var keyTypes = []keyType{
	{"p256", "ECDSA P-256", func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }},
	{"rsa2048", "RSA-2048", func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) }},
}

// Reasons both sides can write: openssl ca knows no privilegeWithdrawn or
// aACompromise, and wants a hold instruction with certificateHold.
var reasons = []struct {
	code int
	name string
}{{0, ""}, {1, "keyCompromise"}, {3, "affiliationChanged"}, {4, "superseded"}, {5, "cessationOfOperation"}}

func main() {
	entriesFlag := flag.String("entries", "10000,100000", "comma-separated revoked entry counts")
	keysFlag := flag.String("keys", "p256,rsa2048", "CA key types: p256, rsa2048")
	reps := flag.Int("reps", 5, "repetitions per cell (median reported)")
	flag.Parse()
	if err := run(*entriesFlag, *keysFlag, *reps); err != nil {
		fmt.Fprintln(os.Stderr, "crl bench:", err)
		os.Exit(1)
	}
}

type cell struct {
	key               string
	n                 int
	quill, openssl    []time.Duration
	quillDER, osslDER int
	quillRaw, osslRaw []byte
	wantSerials       map[string]int
	ca                *x509.Certificate
}

func run(entriesFlag, keysFlag string, reps int) error {
	if reps < 1 {
		return errors.New("-reps must be at least 1")
	}
	var counts []int
	for f := range strings.SplitSeq(entriesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return fmt.Errorf("bad -entries value %q", f)
		}
		counts = append(counts, n)
	}
	var kts []keyType
	for f := range strings.SplitSeq(keysFlag, ",") {
		i := slices.IndexFunc(keyTypes, func(k keyType) bool { return k.flag == strings.TrimSpace(f) })
		if i < 0 {
			return fmt.Errorf("unknown key type %q", f)
		}
		kts = append(kts, keyTypes[i])
	}
	opensslBin, err := exec.LookPath("openssl")
	if err != nil {
		return fmt.Errorf("openssl is not on PATH: %w", err)
	}
	version, _ := exec.Command(opensslBin, "version").Output()
	load0, _ := os.ReadFile("/proc/loadavg")
	dir, err := os.MkdirTemp("", "quill-crl-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	var cells []*cell
	for _, kt := range kts {
		ca, key, err := newCA(kt)
		if err != nil {
			return err
		}
		for _, n := range counts {
			fmt.Fprintf(os.Stderr, "%s, %d entries...\n", kt.name, n)
			c, err := measure(opensslBin, filepath.Join(dir, fmt.Sprintf("%s-%d", kt.flag, n)), kt, ca, key, n, reps)
			if err != nil {
				return fmt.Errorf("%s, %d entries: %w", kt.name, n, err)
			}
			if err := c.check(); err != nil {
				return fmt.Errorf("%s, %d entries: %w", kt.name, n, err)
			}
			cells = append(cells, c)
		}
	}
	load1, _ := os.ReadFile("/proc/loadavg")
	report(cells, reps, strings.TrimSpace(string(version)), strings.TrimSpace(string(load0)), strings.TrimSpace(string(load1)))
	return nil
}

func newCA(kt keyType) (*x509.Certificate, crypto.Signer, error) {
	key, err := kt.gen()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Quill CRL Benchmark CA " + kt.name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func measure(bin, dir string, kt keyType, ca *x509.Certificate, key crypto.Signer, n, reps int) (*cell, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	entries, index := generate(n, now)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{
		"ca.pem":    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}),
		"key.pem":   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"index.txt": index,
		"openssl.cnf": []byte(`[ ca ]
default_ca = bench
[ bench ]
dir               = ` + dir + `
database          = $dir/index.txt
certificate       = $dir/ca.pem
private_key       = $dir/key.pem
crlnumber         = $dir/crlnumber
default_md        = sha256
default_crl_hours = 24
unique_subject    = no
crl_extensions    = crl_ext
[ crl_ext ]
authorityKeyIdentifier = keyid:always
`),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	c := &cell{key: kt.name, n: n, ca: ca, wantSerials: map[string]int{}}
	for _, e := range entries {
		c.wantSerials[e.Serial.Text(16)] = e.Reason
	}
	out := filepath.Join(dir, "crl.pem")
	for rep := range reps {
		quillRun := func() error {
			runtime.GC() // do not bill this run for the previous one's garbage
			start := time.Now()
			der, err := crl.Build(ca, key, entries, crl.Params{Number: big.NewInt(int64(rep + 1)), ThisUpdate: now, Validity: 24 * time.Hour})
			c.quill = append(c.quill, time.Since(start))
			c.quillRaw = der
			return err
		}
		osslRun := func() error {
			if err := os.WriteFile(filepath.Join(dir, "crlnumber"), []byte(fmt.Sprintf("%02X\n", rep+1)), 0o600); err != nil {
				return err
			}
			start := time.Now()
			msg, err := exec.Command(bin, "ca", "-gencrl", "-batch", "-config", filepath.Join(dir, "openssl.cnf"), "-out", out).CombinedOutput()
			c.openssl = append(c.openssl, time.Since(start))
			if err != nil {
				return fmt.Errorf("openssl ca -gencrl: %w\n%s", err, msg)
			}
			return nil
		}
		first, second := quillRun, osslRun
		if rep%2 == 1 {
			first, second = osslRun, quillRun
		}
		if err := first(); err != nil {
			return nil, err
		}
		if err := second(); err != nil {
			return nil, err
		}
	}
	pemCRL, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(pemCRL)
	if block == nil {
		return nil, errors.New("openssl wrote no PEM CRL")
	}
	c.osslRaw = block.Bytes
	c.quillDER, c.osslDER = len(c.quillRaw), len(c.osslRaw)
	return c, nil
}

// generate makes n entries and the openssl ca database listing them.
func generate(n int, now time.Time) ([]crl.Entry, []byte) {
	entries := make([]crl.Entry, n)
	var idx strings.Builder
	const utc = "060102150405Z"
	for i := range entries {
		serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
		if err != nil {
			panic(err)
		}
		serial.SetBit(serial, 126, 1) // 16 octets, positive, like Quill's serials
		r := reasons[i%len(reasons)]
		revoked := now.Add(-time.Duration(mrand.Int64N(int64(90 * 24 * time.Hour)))).Truncate(time.Second)
		notAfter := now.Add(365 * 24 * time.Hour)
		entries[i] = crl.Entry{Serial: serial, RevokedAt: revoked, Reason: r.code, NotAfter: notAfter}
		rev := revoked.Format(utc)
		if r.name != "" {
			rev += "," + r.name
		}
		fmt.Fprintf(&idx, "R\t%s\t%s\t%s\tunknown\t/CN=leaf-%d\n", notAfter.Format(utc), rev, strings.ToUpper(serial.Text(16)), i)
	}
	return entries, []byte(idx.String())
}

// check verifies both CRLs and that they list the same entries.
func (c *cell) check() error {
	for name, der := range map[string][]byte{"Quill": c.quillRaw, "OpenSSL": c.osslRaw} {
		got, err := x509.ParseRevocationList(der)
		if err != nil {
			return fmt.Errorf("%s CRL: %w", name, err)
		}
		if err := got.CheckSignatureFrom(c.ca); err != nil {
			return fmt.Errorf("%s CRL signature: %w", name, err)
		}
		if len(got.RevokedCertificateEntries) != len(c.wantSerials) {
			return fmt.Errorf("%s CRL has %d entries, want %d", name, len(got.RevokedCertificateEntries), len(c.wantSerials))
		}
		for _, e := range got.RevokedCertificateEntries {
			reason, ok := c.wantSerials[e.SerialNumber.Text(16)]
			if !ok || reason != e.ReasonCode {
				return fmt.Errorf("%s CRL lists serial %s with reason %d (known %v, want %d)", name, e.SerialNumber.Text(16), e.ReasonCode, ok, reason)
			}
		}
	}
	return nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

func report(cells []*cell, reps int, version, load0, load1 string) {
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	fmt.Printf("Machine: %d CPUs (%s), %s, %s. Load average before: %s; after: %s.\n\n", runtime.NumCPU(), cpu, runtime.Version(), version, load0, load1)
	fmt.Printf("Median (min) of %d repetitions.\n\n", reps)
	fmt.Println("| CA key | entries | Quill crl.Build | openssl ca -gencrl | OpenSSL / Quill | Quill DER | OpenSSL DER |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	for _, c := range cells {
		q, o := median(c.quill), median(c.openssl)
		fmt.Printf("| %s | %d | %s (%s) | %s (%s) | %.1f× | %d B | %d B |\n", c.key, c.n, ms(q), ms(slices.Min(c.quill)), ms(o), ms(slices.Min(c.openssl)), float64(o)/float64(q), c.quillDER, c.osslDER)
	}
}
