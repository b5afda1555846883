// Package harness runs a real Kubernetes control plane for Quill's
// integration and end-to-end tests: kube-apiserver and etcd built by
// `make tools` (hack/build-tools.sh) and started through controller-runtime's
// envtest, cert-manager's and Quill's CRDs installed, and optionally a real
// cert-manager controller with cert-manager's admission webhook registered
// with the API server (webhook.go). Everything it starts is stopped by Stop, by a
// signal, or — if the test binary dies — by the kernel: every child runs
// with a parent-death signal.
package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/controllers"
)

var errMissingBinary = errors.New("binary missing from bin/")

// Env is a running control plane.
type Env struct {
	// Root is the repository root.
	Root string
	// Config reaches the API server as a cluster administrator.
	Config *rest.Config
	// Client is a controller-runtime client for Config, with the core,
	// cert-manager and Quill types registered.
	Client client.Client
	// Scheme is Client's scheme.
	Scheme *runtime.Scheme
	// Kubeconfig is the path of a kubeconfig file for Config, for child
	// processes.
	Kubeconfig string

	env     *envtest.Environment
	workdir string
	// certManagerKubeconfig authenticates as CertManagerUsername, the
	// identity cert-manager's controller has in a default installation.
	certManagerKubeconfig string

	mu             sync.Mutex
	procs          []*exec.Cmd
	webhookStarted bool
}

// CertManagerUsername is the user cert-manager's controller authenticates as
// (and so, through its webhook, the requester of every CertificateRequest it
// creates): the default of Quill's --cert-manager-username, which is the
// service account of cert-manager's Helm chart.
const CertManagerUsername = controllers.DefaultCertManagerUsername

// Start starts kube-apiserver and etcd from bin/ and installs cert-manager's
// and Quill's CRDs. It fails with the make target to run when a binary is
// missing.
func Start() (*Env, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(root, "bin")
	for _, name := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			return nil, fmt.Errorf("%w: %s: run `make tools` to build it", errMissingBinary, filepath.Join(bin, name))
		}
	}
	cmCRDs, err := CertManagerCRDDir(root)
	if err != nil {
		return nil, err
	}
	workdir, err := os.MkdirTemp("", "quill-harness-")
	if err != nil {
		return nil, err
	}
	e := &Env{Root: root, workdir: workdir}
	// The wrappers give kube-apiserver and etcd a parent-death signal, which
	// envtest cannot set: if the test binary is killed (go test -timeout,
	// a panic), they die with it instead of lingering.
	apiserver, err := deathWrapper(workdir, filepath.Join(bin, "kube-apiserver"))
	if err != nil {
		_ = os.RemoveAll(workdir)
		return nil, err
	}
	etcd, err := deathWrapper(workdir, filepath.Join(bin, "etcd"))
	if err != nil {
		_ = os.RemoveAll(workdir)
		return nil, err
	}
	e.env = &envtest.Environment{
		CRDDirectoryPaths:        []string{cmCRDs, filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	e.env.ControlPlane.APIServer = &envtest.APIServer{Path: apiserver}
	e.env.ControlPlane.Etcd = &envtest.Etcd{Path: etcd}
	// A loaded 2-core machine can take a while to answer; give the API
	// server room so that benchmarks measure it, not client timeouts.
	e.env.ControlPlane.APIServer.Configure().Set("max-requests-inflight", "800").Set("max-mutating-requests-inflight", "400")

	cfg, err := e.env.Start()
	if err != nil {
		_ = os.RemoveAll(workdir)
		return nil, fmt.Errorf("starting control plane: %w", err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	e.Config = cfg
	e.Scheme = runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, cmapi.AddToScheme, quillv1.AddToScheme} {
		if err := add(e.Scheme); err != nil {
			_ = e.Stop()
			return nil, err
		}
	}
	if e.Client, err = client.New(cfg, client.Options{Scheme: e.Scheme}); err != nil {
		_ = e.Stop()
		return nil, err
	}
	e.Kubeconfig = filepath.Join(workdir, "kubeconfig")
	if err := os.WriteFile(e.Kubeconfig, e.env.KubeConfig, 0o600); err != nil {
		_ = e.Stop()
		return nil, err
	}
	// cert-manager runs as its own user, not as the administrator the
	// tests use, so that a request's requester tells the two apart.
	// system:masters stands in for the RBAC of cert-manager's chart.
	cm, err := e.env.AddUser(envtest.User{Name: CertManagerUsername, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		_ = e.Stop()
		return nil, fmt.Errorf("adding cert-manager's user: %w", err)
	}
	cmKubeconfig, err := cm.KubeConfig()
	if err != nil {
		_ = e.Stop()
		return nil, err
	}
	e.certManagerKubeconfig = filepath.Join(workdir, "cert-manager.kubeconfig")
	if err := os.WriteFile(e.certManagerKubeconfig, cmKubeconfig, 0o600); err != nil {
		_ = e.Stop()
		return nil, err
	}
	return e, nil
}

// Stop stops every process the harness started, then the control plane, and
// removes its files. It is safe to call more than once.
func (e *Env) Stop() error {
	e.mu.Lock()
	procs := e.procs
	e.procs = nil
	e.mu.Unlock()
	var errs []error
	for _, p := range procs {
		errs = append(errs, stopProcess(p))
	}
	if e.env != nil {
		errs = append(errs, e.env.Stop())
		e.env = nil
	}
	if e.workdir != "" {
		errs = append(errs, os.RemoveAll(e.workdir))
		e.workdir = ""
	}
	return errors.Join(errs...)
}

// StartProcess runs a binary from bin/ (built by `make tools` or `make
// build`; one of Quill's own that is older than its sources is refused)
// with args, logging to <workdir>/<name>.log, and stops it with the
// environment. The returned function stops it earlier.
func (e *Env) StartProcess(name string, args ...string) (stop func() error, err error) {
	return e.StartProcessEnv(name, nil, args...)
}

// StartProcessEnv is StartProcess with environ ("KEY=value") added to the
// environment the process inherits from the test.
func (e *Env) StartProcessEnv(name string, environ []string, args ...string) (stop func() error, err error) {
	path, err := e.binary(name)
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(e.workdir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), environ...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	e.mu.Lock()
	e.procs = append(e.procs, cmd)
	e.mu.Unlock()
	return func() error {
		e.mu.Lock()
		for i, p := range e.procs {
			if p == cmd {
				e.procs = append(e.procs[:i], e.procs[i+1:]...)
				break
			}
		}
		e.mu.Unlock()
		err := stopProcess(cmd)
		_ = logf.Close()
		return err
	}, nil
}

// Kill sends SIGKILL to the process group of every running process started
// as name, as a crash would, and waits for them to exit.
func (e *Env) Kill(name string) error {
	e.mu.Lock()
	var victims, rest []*exec.Cmd
	for _, p := range e.procs {
		if filepath.Base(p.Path) == name {
			victims = append(victims, p)
		} else {
			rest = append(rest, p)
		}
	}
	e.procs = rest
	e.mu.Unlock()
	if len(victims) == 0 {
		return fmt.Errorf("no running process %s", name)
	}
	for _, p := range victims {
		_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
		_ = p.Wait()
	}
	return nil
}

// Log returns what a process started by StartProcess has written so far,
// for test failure messages.
func (e *Env) Log(name string) string {
	b, _ := os.ReadFile(filepath.Join(e.workdir, name+".log"))
	return string(b)
}

// StartCertManager runs the cert-manager controller (bin/cert-manager-controller,
// built by `make tools`) against the environment as CertManagerUsername,
// after starting cert-manager's webhook (bin/cert-manager-webhook) if it is
// not running yet. Extra args are passed on, e.g.
// "--controllers=*,-certificaterequests-approver". The returned function
// stops the controller only: the webhook stays registered until Stop.
func (e *Env) StartCertManager(args ...string) (stop func() error, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*webhookReadyTimeout)
	defer cancel()
	if err := e.startCertManagerWebhook(ctx); err != nil {
		return nil, err
	}
	return e.StartProcess("cert-manager-controller", append([]string{"--kubeconfig", e.certManagerKubeconfig}, args...)...)
}

// stopProcess sends SIGTERM to a child's process group and waits, then
// kills it if it has not exited after ten seconds.
func stopProcess(cmd *exec.Cmd) error {
	if cmd.Process == nil || cmd.ProcessState != nil {
		// Never started, or already reaped (Kill): its process group id
		// may belong to someone else by now.
		return nil
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return fmt.Errorf("%s did not stop within 10s and was killed", filepath.Base(cmd.Path))
	}
}

// deathWrapper writes a script that execs binary under setpriv with a
// parent-death signal, so the process dies with whoever started it.
func deathWrapper(dir, binary string) (string, error) {
	if _, err := exec.LookPath("setpriv"); err != nil {
		return "", fmt.Errorf("setpriv (util-linux) is needed to tie control-plane processes to the test: %w", err)
	}
	path := filepath.Join(dir, filepath.Base(binary))
	script := fmt.Sprintf("#!/bin/sh\nexec setpriv --pdeathsig KILL -- %q \"$@\"\n", binary)
	return path, os.WriteFile(path, []byte(script), 0o755)
}

// repoRoot walks up from the working directory to the folder holding Quill's go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/quill-pki/quill\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("harness: not inside the Quill repository")
		}
		dir = parent
	}
}

// CertManagerCRDDir is the deploy/crds folder of the cert-manager module
// version Quill's go.mod requires, from the module cache.
func CertManagerCRDDir(root string) (string, error) {
	cmd := exec.CommandContext(context.Background(), "go", "list", "-m", "-f", "{{.Dir}}", "github.com/cert-manager/cert-manager")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locating the cert-manager module (go mod download): %w", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "deploy", "crds")
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("cert-manager CRDs: %w", err)
	}
	return dir, nil
}
