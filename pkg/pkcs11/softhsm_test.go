//go:build cgo

package pkcs11

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// SoftHSM2 as the CI installs it: Debian's softhsm2 package (library and
// softhsm2-util) and opensc (pkcs11-tool). QUILL_SOFTHSM2_MODULE overrides
// the library path for other distributions.
const (
	defaultSoftHSMModule = "/usr/lib/softhsm/libsofthsm2.so"
	testSOPIN            = "1234"
	// tokensPerRun must cover the takeToken calls of one run of the suite;
	// TestMain makes that many for each of -count runs.
	tokensPerRun = 32
)

// testToken is one SoftHSM token created for one test.
type testToken struct {
	label, serial, pin string
}

// softhsm is the environment TestMain prepares. It is the test suite's only
// package variable: tokens must exist before the first C_Initialize (see
// TestMain), so they are made once and handed out to tests.
var softhsm struct {
	module string
	dir    string
	tokens chan testToken
	// dupLabel is carried by two tokens, for ErrTokenAmbiguous.
	dupLabel string
	// held is TestMain's reference to the library (see TestMain).
	held *module
}

// TestMain points SoftHSM at a private token directory and creates every
// token the tests will use before any test loads the library.
//
// Tokens are created here rather than by each test because SoftHSM 2.6.1
// does not see a token created by another process (softhsm2-util) once it
// is initialised: C_GetSlotList keeps returning the old slots until
// C_Finalize and C_Initialize (TestOpenFindsTokenCreatedLater shows both).
// Each test still gets its own token with a unique label from takeToken.
//
// TestMain also keeps the library initialised for the whole run, so that
// no test's Open initialises it while another test's pkcs11-tool writes to
// a token: SoftHSM 2.6.1 then misses that token until the next
// re-initialisation (measured: 91 of 1,861 initialisations during
// pkcs11-tool --keypairgen runs missed the token).
func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	softhsm.module = os.Getenv("QUILL_SOFTHSM2_MODULE")
	if softhsm.module == "" {
		softhsm.module = defaultSoftHSMModule
	}
	var missing []string
	if _, err := os.Stat(softhsm.module); err != nil {
		missing = append(missing, softhsm.module)
	}
	for _, tool := range []string{"softhsm2-util", "pkcs11-tool", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: the PKCS#11 tests need SoftHSM2, OpenSC and OpenSSL; missing %s.\n"+
			"Install the Debian packages softhsm2 and opensc (apt-get install softhsm2 opensc openssl).\n",
			strings.Join(missing, ", "))
		return 1
	}
	dir, err := os.MkdirTemp("", "quill-pkcs11-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	softhsm.dir = dir
	tokenDir := filepath.Join(dir, "tokens")
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.Mkdir(tokenDir, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokenDir+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Before anything loads the library: SoftHSM reads it in C_Initialize.
	os.Setenv("SOFTHSM2_CONF", conf)

	flag.Parse() // for -count, before m.Run parses the flags
	poolSize := tokensPerRun
	if f := flag.Lookup("test.count"); f != nil {
		if n, err := strconv.Atoi(f.Value.String()); err == nil && n > 1 {
			poolSize *= n
		}
	}
	prefix := fmt.Sprintf("q%d", os.Getpid())
	var labels []string
	for i := range poolSize {
		labels = append(labels, fmt.Sprintf("%s-%03d", prefix, i))
	}
	softhsm.dupLabel = prefix + "-dup"
	labels = append(labels, softhsm.dupLabel, softhsm.dupLabel)
	for i, label := range labels {
		if out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label,
			"--so-pin", testSOPIN, "--pin", tokenPIN(i)).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "softhsm2-util --init-token: %v\n%s", err, out)
			return 1
		}
	}
	serials, err := tokenSerials()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	softhsm.tokens = make(chan testToken, poolSize)
	for i, label := range labels[:poolSize] {
		softhsm.tokens <- testToken{label: label, serial: serials[label], pin: tokenPIN(i)}
	}
	if softhsm.held, err = registry.acquire(softhsm.module); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if err := registry.release(softhsm.held); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return code
}

func tokenPIN(i int) string { return fmt.Sprintf("pin-%04d", 1000+i) }

// tokenSerials maps token labels to serial numbers as softhsm2-util shows them.
func tokenSerials() (map[string]string, error) {
	out, err := exec.Command("softhsm2-util", "--show-slots").Output()
	if err != nil {
		return nil, fmt.Errorf("softhsm2-util --show-slots: %w", err)
	}
	serials := map[string]string{}
	var serial string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		field, value, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok {
			continue
		}
		switch field {
		case "Serial number":
			serial = strings.TrimSpace(value)
		case "Label":
			serials[strings.TrimSpace(value)] = serial
		}
	}
	return serials, sc.Err()
}

// takeToken hands the test a token of its own.
func takeToken(t testing.TB) testToken {
	t.Helper()
	select {
	case tok := <-softhsm.tokens:
		return tok
	default:
		t.Fatalf("all SoftHSM tokens are taken; raise tokensPerRun (%d)", tokensPerRun)
		return testToken{}
	}
}

// config selects the key labelled keyLabel on tok.
func (tok testToken) config(keyLabel string) Config {
	return Config{ModulePath: softhsm.module, TokenLabel: tok.label, KeyLabel: keyLabel, PIN: tok.pin}
}

// sequentialWrites: tests that write to a token with pkcs11-tool (or
// softhsm2-util) do not call t.Parallel, so that no other test's lookup
// reads token information while another process writes a token. Measured
// on SoftHSM 2.6.1: C_GetTokenInfo for a token another process is writing
// answers CKR_GENERAL_ERROR about once in two hundred calls, and the token
// can stay unreadable in this process after the writer exits (seen as
// ErrTokenNotFound in a parallel run), until the library is re-initialised.
// Go runs all sequential tests before resuming any parallel one, so
// sequential writers never overlap parallel readers.

// tool runs pkcs11-tool logged in to tok.
func (tok testToken) tool(t testing.TB, args ...string) string {
	t.Helper()
	login := []string{"--module", softhsm.module, "--token-label", tok.label, "--login", "--pin", tok.pin}
	out, err := exec.Command("pkcs11-tool", append(login, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("pkcs11-tool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// keypairgen creates a key pair with pkcs11-tool; keyType is its
// --key-type, such as "EC:prime256v1", "rsa:2048" or "EC:edwards25519".
func (tok testToken) keypairgen(t testing.TB, keyType, label string, id []byte) {
	t.Helper()
	tok.tool(t, "--keypairgen", "--key-type", keyType, "--label", label, "--id", hex.EncodeToString(id))
}

// importKey writes a software key pair to tok with pkcs11-tool, the way an
// operator moves an existing CA key into an HSM.
func (tok testToken) importKey(t testing.TB, key crypto.Signer, label string, id []byte) {
	t.Helper()
	tok.importPrivate(t, key, label, id)
	tok.importPublic(t, key.Public(), label, id)
}

// importPrivate writes only the private key object.
func (tok testToken) importPrivate(t testing.TB, key crypto.Signer, label string, id []byte) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	tok.writeObject(t, der, "privkey", label, id)
}

// importPublic writes only a public key object.
func (tok testToken) importPublic(t testing.TB, pub crypto.PublicKey, label string, id []byte) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	tok.writeObject(t, der, "pubkey", label, id)
}

func (tok testToken) writeObject(t testing.TB, der []byte, typ, label string, id []byte) {
	t.Helper()
	file := filepath.Join(t.TempDir(), typ+".der")
	if err := os.WriteFile(file, der, 0o600); err != nil {
		t.Fatal(err)
	}
	tok.tool(t, "--write-object", file, "--type", typ, "--label", label, "--id", hex.EncodeToString(id))
}

// reinitialise deletes tok and creates an empty token with the same label
// and PIN, as an operator re-initialising an HSM partition would. It
// returns once every Key on tok must notice at its next Sign (see
// waitTokenCheck).
func (tok testToken) reinitialise(t testing.TB) {
	t.Helper()
	for _, args := range [][]string{
		{"--delete-token", "--token", tok.label},
		{"--init-token", "--free", "--label", tok.label, "--so-pin", testSOPIN, "--pin", tok.pin},
	} {
		if out, err := exec.Command("softhsm2-util", args...).CombinedOutput(); err != nil {
			t.Fatalf("softhsm2-util %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	waitTokenCheck()
}

// waitTokenCheck waits until every Key signing with a session copy checks
// its token object again at its next Sign. SoftHSM keeps session objects
// in this process's memory, so a copy still signs after another process
// deleted its token; Keys notice within tokenCheckInterval.
func waitTokenCheck() { time.Sleep(tokenCheckInterval) }

// loginCounter counts C_Login calls made for one Config.
type loginCounter struct {
	calls atomic.Int32
	last  atomic.Value // error of the last call, as a string
}

func (c *loginCounter) hooks() *hooks {
	return &hooks{login: func(err error) {
		c.calls.Add(1)
		c.last.Store(fmt.Sprint(err))
	}}
}

// verifySignature checks sig with Go's crypto: the outside verifier of
// what the token signed.
func verifySignature(t testing.TB, pub crypto.PublicKey, digest, sig []byte, opts crypto.SignerOpts) {
	t.Helper()
	var err error
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, digest, sig) {
			err = errors.New("ECDSA signature does not verify")
		}
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			// Verify with the salt length the signer promised, not Auto,
			// so a wrong salt length is caught.
			want := *pss
			if want.SaltLength == rsa.PSSSaltLengthAuto {
				want.SaltLength = rsa.PSSSaltLengthEqualsHash
			}
			err = rsa.VerifyPSS(pub, pss.Hash, digest, sig, &want)
		} else {
			err = rsa.VerifyPKCS1v15(pub, opts.HashFunc(), digest, sig)
		}
	case ed25519.PublicKey:
		if !ed25519.Verify(pub, digest, sig) {
			err = errors.New("Ed25519 signature does not verify")
		}
	default:
		err = fmt.Errorf("public key of type %T", pub)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// openKey opens cfg and closes the Key when the test ends.
func openKey(t testing.TB, cfg Config) *Key {
	t.Helper()
	k, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := k.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return k
}

// generateKey generates alg on tok and closes the Key when the test ends.
func generateKey(t testing.TB, cfg Config, alg Algorithm) *Key {
	t.Helper()
	k, err := GenerateKey(cfg, alg)
	if err != nil {
		t.Fatalf("GenerateKey(%s): %v", alg, err)
	}
	t.Cleanup(func() {
		if err := k.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return k
}
