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
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
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
	// tokensPerProcess covers the takeToken calls of the SoftHSM test
	// that takes the most (TestRecoveryUnderLoad: four).
	tokensPerProcess = 4
	// isolatedEnv marks a child process that runs one SoftHSM test (see
	// isolate) and names the directory its SoftHSM keeps its tokens in.
	isolatedEnv = "QUILL_PKCS11_TEST_DIR"
)

// testToken is one SoftHSM token created for one test.
type testToken struct {
	label, serial, pin string
}

// softhsm is the environment TestMain prepares in a process that uses
// SoftHSM. It is the test suite's only package variable: tokens must exist
// before the first C_Initialize (see TestMain), so they are made up front
// and handed out to the test.
var softhsm struct {
	module string
	// ready says this process has its own SoftHSM: it runs one isolated
	// test, or benchmarks.
	ready  bool
	tokens chan testToken
	// dupLabel is carried by two tokens, for ErrTokenAmbiguous.
	dupLabel string
	// held is TestMain's reference to the library (see TestMain).
	held *module
}

// TestMain gives every test that uses SoftHSM a process and a token
// directory of its own. In a normal run it only checks that SoftHSM2,
// OpenSC and OpenSSL are installed: each SoftHSM test calls isolate, which
// runs the test again in a child process of the test binary with
// isolatedEnv naming a new directory. In that child (and in a run with
// -test.bench, for the benchmarks) TestMain points SoftHSM at the
// directory and creates the tokens the test takes before anything loads
// the library.
//
// A process per test because SoftHSM 2.6.1 reads SOFTHSM2_CONF once, in
// C_Initialize, and does not see a token created by another process
// (softhsm2-util) once it is initialised: C_GetSlotList keeps returning
// the old slots until C_Finalize and C_Initialize
// (TestOpenFindsTokenCreatedLater shows both). So one process cannot
// switch token directories, and its tokens are made before the library is
// loaded; the test gets them from takeToken.
//
// TestMain also keeps the library initialised for the whole process, so
// that no Open initialises it while the test's pkcs11-tool writes to a
// token: SoftHSM 2.6.1 then misses that token until the next
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
	flag.Parse() // for -test.bench, before m.Run parses the flags
	dir := os.Getenv(isolatedEnv)
	if dir == "" {
		if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
			return m.Run()
		}
		var err error
		if dir, err = os.MkdirTemp("", "quill-pkcs11-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
	}
	if err := setupSoftHSM(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var err error
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

// setupSoftHSM points this process's SoftHSM at a token folder in dir and
// creates tokensPerProcess tokens for takeToken and two that share
// dupLabel.
func setupSoftHSM(dir string) error {
	tokenDir := filepath.Join(dir, "tokens")
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.Mkdir(tokenDir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokenDir+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		return err
	}
	// Before anything loads the library: SoftHSM reads it in C_Initialize.
	// pkcs11-tool and softhsm2-util inherit it.
	if err := os.Setenv("SOFTHSM2_CONF", conf); err != nil {
		return err
	}
	var labels []string
	for i := range tokensPerProcess {
		labels = append(labels, fmt.Sprintf("q-%d", i))
	}
	softhsm.dupLabel = "q-dup"
	labels = append(labels, softhsm.dupLabel, softhsm.dupLabel)
	for i, label := range labels {
		if out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label,
			"--so-pin", testSOPIN, "--pin", tokenPIN(i)).CombinedOutput(); err != nil {
			return fmt.Errorf("softhsm2-util --init-token: %w\n%s", err, out)
		}
	}
	serials, err := tokenSerials()
	if err != nil {
		return err
	}
	softhsm.tokens = make(chan testToken, tokensPerProcess)
	for i, label := range labels[:tokensPerProcess] {
		softhsm.tokens <- testToken{label: label, serial: serials[label], pin: tokenPIN(i)}
	}
	softhsm.ready = true
	return nil
}

// isolate runs the calling top-level test in a child process of the test
// binary with a SoftHSM token directory of its own (see TestMain), and
// reports whether it did: the caller then returns at once. In the child it
// reports false and the test runs. A parallel test calls it after
// t.Parallel, so that its child runs while other tests' children do.
//
// The child runs the test once (-test.count=1: each run in the parent
// starts its own child) with the subtests the parent's -test.run selects,
// -test.skip, -test.short, -test.failfast, GOMAXPROCS and the time left
// before the parent's deadline. It always runs verbose: its output goes to
// t.Log, which the parent's -test.v governs, so a failure shows every step.
// The test fails if the child fails or does not report having run it.
func isolate(t *testing.T) bool {
	t.Helper()
	if os.Getenv(isolatedEnv) != "" {
		return false
	}
	args := []string{
		"-test.run=" + childRunPattern(t.Name()),
		"-test.count=1",
		"-test.v=true",
		"-test.cpu=" + strconv.Itoa(runtime.GOMAXPROCS(0)),
	}
	for _, name := range []string{"test.skip", "test.short", "test.failfast"} {
		if f := flag.Lookup(name); f != nil {
			args = append(args, "-"+name+"="+f.Value.String())
		}
	}
	if deadline, ok := t.Deadline(); ok {
		args = append(args, "-test.timeout="+time.Until(deadline).String())
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), isolatedEnv+"="+t.TempDir())
	if gorace := os.Getenv("GORACE"); !strings.Contains(gorace, "atexit_sleep_ms") {
		// A -race binary sleeps a second before it exits, to let racing
		// goroutines be reported; the child's test has finished by then.
		cmd.Env = append(cmd.Env, "GORACE="+strings.TrimSpace(gorace+" atexit_sleep_ms=0"))
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout // one pipe, so the lines keep their order
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the child process for %s: %v", t.Name(), err)
	}
	// Stream the output, so a hung child shows how far it got.
	var result string
	r := bufio.NewReader(out)
	for {
		line, err := r.ReadString('\n')
		if line = strings.TrimSuffix(line, "\n"); line != "" || err == nil {
			t.Log(line)
			if strings.HasPrefix(line, "--- ") && strings.Contains(line, " "+t.Name()+" (") {
				result = line
			}
		}
		if err != nil {
			if err != io.EOF {
				t.Errorf("reading the child process's output: %v", err)
			}
			break
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the child process running %s failed: %v (its output is above)", t.Name(), err)
	}
	switch {
	case strings.HasPrefix(result, "--- PASS: "):
	case strings.HasPrefix(result, "--- SKIP: "):
		t.Skip("skipped in the child process (its output is above)")
	default:
		t.Fatalf("the child process did not report running %s (its output is above)", t.Name())
	}
	return true
}

// childRunPattern is the -test.run pattern that selects the top-level test
// name and, below it, the subtests the parent's -test.run selects there.
func childRunPattern(name string) string {
	self := "^" + regexp.QuoteMeta(name) + "$"
	var alts []string
	for _, alt := range splitRunPattern(flag.Lookup("test.run").Value.String()) {
		if ok, err := regexp.MatchString(alt[0], name); err != nil || !ok {
			continue
		}
		if len(alt) == 1 {
			return self // this alternative runs every subtest
		}
		alts = append(alts, self+"/"+strings.Join(alt[1:], "/"))
	}
	if len(alts) == 0 {
		return self
	}
	return strings.Join(alts, "|")
}

// splitRunPattern splits a -test.run pattern as the testing package does:
// into alternatives at each '|', and those into one expression per level
// of test at each '/', outside brackets and parentheses.
func splitRunPattern(s string) [][]string {
	var alts [][]string
	var levels []string
	brackets, parens, start := 0, 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '[':
			brackets++
		case ']':
			brackets = max(brackets-1, 0)
		case '(':
			if brackets == 0 {
				parens++
			}
		case ')':
			if brackets == 0 {
				parens--
			}
		case '/', '|':
			if brackets == 0 && parens == 0 {
				levels = append(levels, s[start:i])
				start = i + 1
				if s[i] == '|' {
					alts, levels = append(alts, levels), nil
				}
			}
		}
	}
	return append(alts, append(levels, s[start:]))
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

// takeToken hands the test a token of its own, from the tokens TestMain
// made in this process.
func takeToken(t testing.TB) testToken {
	t.Helper()
	if !softhsm.ready {
		t.Fatal("no SoftHSM in this process: a test that uses SoftHSM starts with isolate(t)")
	}
	select {
	case tok := <-softhsm.tokens:
		return tok
	default:
		t.Fatalf("all SoftHSM tokens are taken; raise tokensPerProcess (%d)", tokensPerProcess)
		return testToken{}
	}
}

// config selects the key labelled keyLabel on tok.
func (tok testToken) config(keyLabel string) Config {
	return Config{ModulePath: softhsm.module, TokenLabel: tok.label, KeyLabel: keyLabel, PIN: tok.pin}
}

// sequentialWrites: a test writes to its tokens with pkcs11-tool (or
// softhsm2-util) only while none of its own Keys or lookups are busy, so
// that nothing in the process reads token information while another
// process writes a token: such writing subtests run one after the other.
// Measured on SoftHSM 2.6.1: C_GetTokenInfo for a token another process is
// writing answers CKR_GENERAL_ERROR about once in two hundred calls, and
// the token can stay unreadable in this process after the writer exits
// (seen as ErrTokenNotFound in a parallel run), until the library is
// re-initialised. Other tests do not matter: each runs in a process and
// token directory of its own (isolate), so all of them are parallel.

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
