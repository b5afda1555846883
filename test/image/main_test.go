// Package image runs the container image users install, built from the
// repository's Dockerfile by hack/images/image.sh (what `make image` runs),
// the way the Helm chart runs it: under podman, with the securityContext,
// arguments, environment, volumes and ServiceAccount token of the chart's
// rendered Deployment, against a real kube-apiserver and the real
// cert-manager controller. The chart tests (test/chart) run the same
// Deployment as processes; these run the image, so a missing shared
// library, a write to the read-only root filesystem or a PKCS#11 library
// that cannot be loaded in the image fails here.
//
// Containers share the host's network (the API server listens on
// loopback), so container ports are rewritten to free loopback ports, as
// test/chart does. The tests need root, podman, buildah and runc (`make
// deps`); without them they fail, saying so.
package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/quill-pki/quill/test/harness"
)

// releaseNamespace is the namespace the chart is installed in.
const releaseNamespace = "quill-system"

var (
	env *harness.Env
	// image is the reference of the image under test.
	image string
)

var errNoContainers = errors.New("cannot run containers: run `make deps` (installs buildah, podman, runc and debootstrap) as root")

func TestMain(m *testing.M) {
	ref, err := buildImage()
	if err != nil {
		fmt.Fprintln(os.Stderr, "test/image:", err)
		os.Exit(1)
	}
	image = ref
	removeStaleContainers()
	os.Exit(harness.Main(m, &env, func(e *harness.Env) (func(), error) {
		for _, ns := range []string{"cert-manager", releaseNamespace} {
			if err := e.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
				return nil, err
			}
		}
		// cert-manager's built-in approver approves requests for Quill's
		// issuers, as in a default installation.
		_, err := e.StartCertManager()
		return nil, err
	}))
}

// buildImage runs hack/images/image.sh, which builds the image unless the
// container store holds it for the current tree already (`make image` ran),
// checks it, and prints its reference.
func buildImage() (string, error) {
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("%w: the tests run as uid %d", errNoContainers, os.Geteuid())
	}
	for _, cmd := range []string{"podman", "buildah", ociRuntime()} {
		if _, err := exec.LookPath(cmd); err != nil {
			return "", fmt.Errorf("%w: %w", errNoContainers, err)
		}
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	var stdout bytes.Buffer
	cmd := exec.Command(filepath.Join(root, "hack", "images", "image.sh"))
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("hack/images/image.sh: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	ref := lines[len(lines)-1]
	if !strings.HasPrefix(ref, "localhost/quill/controller:") {
		return "", fmt.Errorf("hack/images/image.sh printed %q, want an image reference", stdout.String())
	}
	return ref, nil
}

// repoRoot walks up from the working directory to the folder holding
// hack/images/image.sh.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "hack", "images", "image.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the Quill repository")
		}
		dir = parent
	}
}
