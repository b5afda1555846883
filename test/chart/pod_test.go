package chart

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/quill-pki/quill/test/harness"
)

// install applies rendered manifests to the control plane for real, as
// `helm install` would (server-side apply), and returns the Deployment.
func install(t *testing.T, objs []*unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	var dep appsv1.Deployment
	for _, o := range objs {
		if err := env.Client.Patch(context.Background(), o.DeepCopy(), client.Apply, //nolint:staticcheck // unstructured SSA
			client.FieldOwner("helm"), client.ForceOwnership); err != nil {
			t.Fatalf("applying %s %s: %v", o.GetKind(), o.GetName(), err)
		}
		if o.GetKind() == "Deployment" {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &dep); err != nil {
				t.Fatal(err)
			}
		}
	}
	if dep.Name == "" {
		t.Fatal("the chart rendered no Deployment")
	}
	return &dep
}

// pod is quill-controller started the way a kubelet would start the
// Deployment's pod, without a kubelet: the container's args and
// environment, the files its volumes mount, and the ServiceAccount's
// identity. Two things differ, because the process shares the host's
// network and filesystem instead of having its own: each container port is
// served on a free loopback port (an argument ":8080" becomes
// "127.0.0.1:<port>"), and each mount path lives under a private folder
// (arguments and variables naming it are rewritten to match).
type pod struct {
	name  string
	ports map[string]int // container port name -> loopback port
	cmd   *exec.Cmd
	log   string
	done  chan struct{}
}

// startPod runs the Deployment's "controller" container as pod name.
func startPod(t *testing.T, dep *appsv1.Deployment, name string) *pod {
	t.Helper()
	spec := dep.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("the Deployment has %d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	if len(c.Command) > 0 {
		t.Fatalf("container command %v overrides the image's entrypoint; only args are supported", c.Command)
	}
	root := t.TempDir()
	p := &pod{name: name, ports: map[string]int{}, log: filepath.Join(root, "controller.log"), done: make(chan struct{})}

	// Volumes: materialise each mount under root.
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	var mounts []string
	for _, m := range c.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			t.Fatalf("volume mount %s names no volume", m.Name)
		}
		materialise(t, dep.Namespace, v, filepath.Join(root, m.MountPath))
		mounts = append(mounts, m.MountPath)
	}
	// Longest first, so that /a/b wins over /a.
	slices.SortFunc(mounts, func(a, b string) int { return len(b) - len(a) })
	rewrite := func(s string) string {
		for _, m := range mounts {
			s = replacePath(s, m, filepath.Join(root, m))
		}
		return s
	}

	portOf := map[string]int{} // container port -> loopback port
	for _, cp := range c.Ports {
		port := loopbackPort(t)
		p.ports[cp.Name] = port
		portOf[strconv.Itoa(int(cp.ContainerPort))] = port
	}
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		if flag, addr, ok := strings.Cut(a, "="); ok && strings.HasPrefix(addr, ":") {
			if port, ok := portOf[addr[1:]]; ok {
				a = fmt.Sprintf("%s=127.0.0.1:%d", flag, port)
			}
		}
		args[i] = rewrite(a)
	}

	// Environment: the image's (distroless sets only PATH), the
	// container's, and a kubeconfig carrying a token of the pod's
	// ServiceAccount, standing in for the in-cluster configuration.
	envv := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + root}
	for _, e := range c.Env {
		envv = append(envv, e.Name+"="+rewrite(envValue(t, dep, e)))
	}
	envv = append(envv, "KUBECONFIG="+serviceAccountKubeconfig(t, dep.Namespace, spec.ServiceAccountName, root))

	bin := filepath.Join(env.Root, "bin", "quill-controller")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s missing: run `make build`", bin)
	}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env, p.cmd.Dir = envv, root
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); _ = logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.kill(syscall.SIGTERM)
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("%s log:\n%s", p.name, lastLines(string(b), 40))
		}
	})
	t.Logf("%s: quill-controller %s", name, strings.Join(args, " "))
	return p
}

// kill sends sig and waits for the process to exit (SIGKILL after 10s).
func (p *pod) kill(sig syscall.Signal) {
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// waitReady polls the container's readiness probe, as the kubelet would.
func (p *pod) waitReady(t *testing.T, dep *appsv1.Deployment) {
	t.Helper()
	probe := dep.Spec.Template.Spec.Containers[0].ReadinessProbe
	if probe == nil || probe.HTTPGet == nil {
		t.Fatal("the container has no HTTP readiness probe")
	}
	port, ok := p.ports[probe.HTTPGet.Port.String()]
	if !ok {
		t.Fatalf("readiness probe port %s is not a container port", probe.HTTPGet.Port.String())
	}
	url := fmt.Sprintf("http://127.0.0.1:%d%s", port, probe.HTTPGet.Path)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("%s exited before it was ready", p.name)
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s not ready at %s within 60s", p.name, url)
}

// metric sums the samples of a Prometheus metric whose labels contain all
// of the given label="value" pairs, from the pod's metrics port.
func (p *pod) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	return harness.Metric(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", p.ports["metrics"]), name, labels...)
}

// materialise writes what volume v would show at dir.
func materialise(t *testing.T, ns string, v corev1.Volume, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var files map[string][]byte
	switch {
	case v.EmptyDir != nil:
		return
	case v.ConfigMap != nil:
		var cm corev1.ConfigMap
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: v.ConfigMap.Name}, &cm); err != nil {
			t.Fatalf("volume %s: %v", v.Name, err)
		}
		files = map[string][]byte{}
		for k, s := range cm.Data {
			files[k] = []byte(s)
		}
	case v.Secret != nil:
		var s corev1.Secret
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: v.Secret.SecretName}, &s); err != nil {
			t.Fatalf("volume %s: %v", v.Name, err)
		}
		files = s.Data
	default:
		t.Fatalf("volume %s: only emptyDir, configMap and secret volumes can be run without a kubelet", v.Name)
	}
	for k, data := range files {
		if err := os.WriteFile(filepath.Join(dir, k), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// envValue resolves one container environment variable.
func envValue(t *testing.T, dep *appsv1.Deployment, e corev1.EnvVar) string {
	t.Helper()
	if e.ValueFrom == nil {
		return e.Value
	}
	ctx := context.Background()
	switch f := e.ValueFrom; {
	case f.FieldRef != nil:
		switch f.FieldRef.FieldPath {
		case "metadata.namespace":
			return dep.Namespace
		case "spec.serviceAccountName":
			return dep.Spec.Template.Spec.ServiceAccountName
		}
	case f.ConfigMapKeyRef != nil:
		var cm corev1.ConfigMap
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: dep.Namespace, Name: f.ConfigMapKeyRef.Name}, &cm); err != nil {
			t.Fatalf("env %s: %v", e.Name, err)
		}
		return cm.Data[f.ConfigMapKeyRef.Key]
	case f.SecretKeyRef != nil:
		var s corev1.Secret
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: dep.Namespace, Name: f.SecretKeyRef.Name}, &s); err != nil {
			t.Fatalf("env %s: %v", e.Name, err)
		}
		return string(s.Data[f.SecretKeyRef.Key])
	}
	t.Fatalf("env %s: this valueFrom cannot be resolved without a kubelet", e.Name)
	return ""
}

// serviceAccountKubeconfig writes a kubeconfig that authenticates with a
// token issued to the ServiceAccount (TokenRequest), so the controller has
// exactly the permissions the chart's RBAC grants it.
func serviceAccountKubeconfig(t *testing.T, ns, sa, dir string) string {
	t.Helper()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1CreateOptions)
	if err != nil {
		t.Fatalf("token for ServiceAccount %s/%s: %v", ns, sa, err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: env.Config.Host, CertificateAuthorityData: env.Config.CAData}
	cfg.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "sa", Namespace: ns}
	cfg.CurrentContext = "c"
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// replacePath replaces path old by new in s where it stands as a whole path
// (after the start, "=", ":" or ","; before the end or "/").
func replacePath(s, old, replacement string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, old)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		end := i + len(old)
		startOK := i == 0 || strings.ContainsRune("=:,", rune(s[i-1]))
		endOK := end == len(s) || s[end] == '/'
		b.WriteString(s[:i])
		if startOK && endOK {
			b.WriteString(replacement)
		} else {
			b.WriteString(old)
		}
		s = s[end:]
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// handedOut holds every loopback port loopbackPort gave a pod in this test
// process: a port is free only until its pod binds it, so without the
// record two pods started together could be given the same one (seen: a
// second replica's health probe port).
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// loopbackPort returns a loopback port that is free now and was not handed
// out before.
func loopbackPort(t *testing.T) int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return port
		}
	}
	t.Fatal("no loopback port that was not handed out already")
	return 0
}
