package image

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/quill-pki/quill/test/harness"
)

// releaseName is the Helm release every test renders.
const releaseName = "quill"

// serviceAccountDir is where the kubelet mounts a pod's ServiceAccount
// token, and where client-go's in-cluster configuration reads it.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// render runs `helm template` (bin/helm, from `make tools`) on the chart
// with values and returns the manifests.
func render(t *testing.T, values string) []*unstructured.Unstructured {
	t.Helper()
	bin := filepath.Join(env.Root, "bin", "helm")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s missing: run `make tools` to build it", bin)
	}
	vf := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(vf, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "template", releaseName, filepath.Join(env.Root, "charts", "quill"),
		"--namespace", releaseNamespace, "-f", vf)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr.String())
	}
	var objs []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(&stdout))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatal(err)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Fatal(err)
		}
		if string(js) == "null" {
			continue
		}
		var u unstructured.Unstructured
		if err := u.UnmarshalJSON(js); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, &u)
	}
}

// install applies the rendered manifests as `helm install` would
// (server-side apply) and returns the Deployment. A lease left by an
// earlier test's containers is deleted, so that the new ones need not wait
// for it to expire.
func install(t *testing.T, objs []*unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	ctx := context.Background()
	var dep appsv1.Deployment
	for _, o := range objs {
		if err := env.Client.Patch(ctx, o.DeepCopy(), client.Apply, //nolint:staticcheck // unstructured SSA
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
	_ = env.Client.Delete(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNamespace, Name: "quill-controller.quill.dev"}})
	return &dep
}

// pod is one replica of the Deployment, run as a podman container of the
// image under test the way a kubelet would run the pod.
type pod struct {
	name  string         // container name and hostname
	ports map[string]int // container port name -> loopback port
}

// startPod runs the Deployment's "controller" container from the image
// under test as pod name:
//   - securityContext (pod and container): the user and group, fsGroup and
//     supplemental groups, runAsNonRoot (checked against the user, as the
//     kubelet does), a read-only root filesystem, dropped and added
//     capabilities, no privilege escalation, and the seccomp profile
//     (RuntimeDefault is podman's default profile; none is Unconfined, the
//     kubelet's default);
//   - volumes: emptyDir (a fresh world-writable folder), configMap and
//     secret (their keys as files, read-only), hostPath (the host's path);
//   - the ServiceAccount's token, CA and namespace at serviceAccountDir
//     unless automountServiceAccountToken is false, and the
//     KUBERNETES_SERVICE_HOST/PORT variables, so the controller uses its
//     in-cluster configuration with exactly the chart RBAC's permissions;
//   - the container's args and env.
//
// The container shares the host's network, so an argument ":<port>" naming
// a container port becomes "127.0.0.1:<free port>".
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
	if len(spec.InitContainers) > 0 || len(c.EnvFrom) > 0 {
		t.Fatal("init containers and envFrom are not supported")
	}
	root := t.TempDir()
	p := &pod{name: fmt.Sprintf("quill-image-test-%d-%s", os.Getpid(), name), ports: map[string]int{}}
	flags := []string{"run", "--detach", "--name", p.name,
		"--label", fmt.Sprintf("%s=%d", ownerLabel, os.Getpid()),
		"--network", "host", "--uts", "private", "--hostname", name, "--pull", "never"}
	flags = append(flags, ulimitFlags()...)
	flags = append(flags, securityFlags(t, spec, c)...)

	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			t.Fatalf("volume mount %s names no volume", m.Name)
		}
		if m.SubPath != "" || m.SubPathExpr != "" {
			t.Fatalf("volume mount %s: subPath is not supported", m.Name)
		}
		src, readOnly := materialise(t, dep.Namespace, v, filepath.Join(root, "volumes", v.Name), spec.SecurityContext)
		opt := ""
		if readOnly || m.ReadOnly {
			opt = ":ro"
		}
		flags = append(flags, "--volume", src+":"+m.MountPath+opt)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		dir := serviceAccountToken(t, dep.Namespace, spec.ServiceAccountName, filepath.Join(root, "serviceaccount"))
		flags = append(flags, "--volume", dir+":"+serviceAccountDir+":ro")
	}

	api, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	flags = append(flags, "--env", "KUBERNETES_SERVICE_HOST="+api.Hostname(), "--env", "KUBERNETES_SERVICE_PORT="+api.Port())
	for _, e := range c.Env {
		flags = append(flags, "--env", e.Name+"="+envValue(t, dep, e))
	}

	portOf := map[string]int{} // container port -> loopback port
	for _, cp := range c.Ports {
		addr, err := harness.FreeAddress()
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(port)
		p.ports[cp.Name] = n
		portOf[strconv.Itoa(int(cp.ContainerPort))] = n
	}
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		if flag, addr, ok := strings.Cut(a, "="); ok && strings.HasPrefix(addr, ":") {
			if port, ok := portOf[addr[1:]]; ok {
				a = fmt.Sprintf("%s=127.0.0.1:%d", flag, port)
			}
		}
		args[i] = a
	}
	flags = append(append(flags, image), args...)

	t.Cleanup(func() {
		if t.Failed() {
			if out, err := containerLogs(p.name, 60); err == nil {
				t.Logf("%s log:\n%s", name, out)
			} else {
				t.Log(err)
			}
		}
		// SIGTERM, then SIGKILL after 10s, as the kubelet's grace period.
		if _, err := podman("rm", "--force", "--time", "10", p.name); err != nil {
			t.Error(err)
		}
	})
	mustPodman(t, flags...)
	t.Logf("%s: podman %s", name, strings.Join(flags, " "))
	return p
}

// securityFlags turns the pod's and the container's securityContext (the
// container's fields win) into podman flags.
func securityFlags(t *testing.T, spec corev1.PodSpec, c corev1.Container) []string {
	t.Helper()
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	csc := c.SecurityContext
	if csc == nil {
		csc = &corev1.SecurityContext{}
	}
	if ptr.Deref(csc.Privileged, false) {
		t.Fatal("the container is privileged")
	}
	var flags []string
	// The user: the securityContext's, else the image's.
	user := mustPodman(t, "image", "inspect", "--format", "{{.Config.User}}", image)
	uid, gid, _ := strings.Cut(user, ":")
	if u := firstSet(csc.RunAsUser, psc.RunAsUser); u != nil {
		uid = strconv.FormatInt(*u, 10)
	}
	if g := firstSet(csc.RunAsGroup, psc.RunAsGroup); g != nil {
		gid = strconv.FormatInt(*g, 10)
	}
	if ptr.Deref(firstSet(csc.RunAsNonRoot, psc.RunAsNonRoot), false) {
		// The kubelet refuses a root or non-numeric user.
		if n, err := strconv.Atoi(uid); err != nil || n == 0 {
			t.Fatalf("runAsNonRoot, but the container would run as user %q", uid)
		}
	}
	if gid != "" {
		uid += ":" + gid
	}
	flags = append(flags, "--user", uid)
	if psc.FSGroup != nil {
		flags = append(flags, "--group-add", strconv.FormatInt(*psc.FSGroup, 10))
	}
	for _, g := range psc.SupplementalGroups {
		flags = append(flags, "--group-add", strconv.FormatInt(g, 10))
	}
	if ptr.Deref(csc.ReadOnlyRootFilesystem, false) {
		// No tmpfs on /tmp, /run and /var/tmp either: a kubelet adds none;
		// the chart mounts an emptyDir on /tmp itself.
		flags = append(flags, "--read-only", "--read-only-tmpfs=false")
	}
	if caps := csc.Capabilities; caps != nil {
		for _, d := range caps.Drop {
			flags = append(flags, "--cap-drop", string(d))
		}
		for _, a := range caps.Add {
			flags = append(flags, "--cap-add", string(a))
		}
	}
	if !ptr.Deref(csc.AllowPrivilegeEscalation, true) {
		flags = append(flags, "--security-opt", "no-new-privileges")
	}
	seccomp := csc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	switch {
	case seccomp == nil || seccomp.Type == corev1.SeccompProfileTypeUnconfined:
		flags = append(flags, "--security-opt", "seccomp=unconfined")
	case seccomp.Type == corev1.SeccompProfileTypeRuntimeDefault:
		// podman's default profile is the runtime's default.
	default:
		t.Fatalf("seccomp profile %s is not supported", seccomp.Type)
	}
	return flags
}

func firstSet[T any](vs ...*T) *T {
	for _, v := range vs {
		if v != nil {
			return v
		}
	}
	return nil
}

// materialise makes what volume v shows the container under dir, and
// returns the host path to mount and whether the kubelet mounts it
// read-only whatever the volume mount says.
func materialise(t *testing.T, ns string, v corev1.Volume, dir string, psc *corev1.PodSecurityContext) (string, bool) {
	t.Helper()
	ctx := context.Background()
	var files map[string][]byte
	switch {
	case v.HostPath != nil:
		return v.HostPath.Path, false
	case v.EmptyDir != nil:
		if err := os.MkdirAll(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		// The kubelet makes emptyDir world-writable.
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		return dir, false
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
		t.Fatalf("volume %s: only emptyDir, configMap, secret and hostPath volumes are supported", v.Name)
	}
	writeFiles(t, dir, files)
	return dir, true
}

// writeFiles writes files into dir as the kubelet's atomic writer leaves
// them to the container: readable by everyone (defaultMode 0644).
func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for k, data := range files {
		if err := os.WriteFile(filepath.Join(dir, k), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// serviceAccountToken writes what the kubelet projects into serviceAccountDir
// for ServiceAccount ns/sa into dir: a token issued to it (TokenRequest),
// the API server's CA and the namespace.
func serviceAccountToken(t *testing.T, ns, sa, dir string) string {
	t.Helper()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for ServiceAccount %s/%s: %v", ns, sa, err)
	}
	writeFiles(t, dir, map[string][]byte{
		"token": []byte(tok.Status.Token), "ca.crt": env.Config.CAData, "namespace": []byte(ns),
	})
	return dir
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
	t.Fatalf("env %s: this valueFrom is not supported", e.Name)
	return ""
}

// waitReady polls the container's readiness probe, as the kubelet would,
// and fails if the container exits first.
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
	u := fmt.Sprintf("http://127.0.0.1:%d%s", port, probe.HTTPGet.Path)
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if state, err := podman("inspect", "--format", "{{.State.Status}}", p.name); err != nil || state == "exited" {
			t.Fatalf("%s exited before it was ready (%v)", p.name, err)
		}
		resp, err := http.Get(u)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s not ready at %s within 90s", p.name, u)
}

// kill kills the container with SIGKILL, as a crash would (no graceful
// lease release), and waits until it has stopped.
func (p *pod) kill(t *testing.T) {
	t.Helper()
	mustPodman(t, "kill", "--signal", "KILL", p.name)
	waitExited(t, p.name)
}

// metric sums the samples of a Prometheus metric whose labels contain all
// of the given label="value" pairs, from the pod's metrics port.
func (p *pod) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	return harness.Metric(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", p.ports["metrics"]), name, labels...)
}
