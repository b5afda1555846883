package image

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ownerLabel marks every container these tests start with the test
// process's pid, so that a later run removes what a killed run left, and
// only that.
const ownerLabel = "dev.quill.test-image-owner"

// ociRuntime is the OCI runtime podman runs containers with: runc, as
// hack/images/podman.sh explains, unless QUILL_OCI_RUNTIME names another.
func ociRuntime() string {
	if r := os.Getenv("QUILL_OCI_RUNTIME"); r != "" {
		return r
	}
	return "runc"
}

// podman runs podman with the OCI runtime and returns its standard output;
// an error carries its standard error.
func podman(args ...string) (string, error) {
	cmd := exec.Command("podman", append([]string{"--runtime", ociRuntime()}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// mustPodman is podman that fails the test on an error.
func mustPodman(t *testing.T, args ...string) string {
	t.Helper()
	out, err := podman(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// containerLogs returns what container name wrote to its standard output
// and error, the last tail lines when tail > 0.
func containerLogs(name string, tail int) (string, error) {
	args := []string{"logs", name}
	if tail > 0 {
		args = []string{"logs", "--tail", strconv.Itoa(tail), name}
	}
	out, err := exec.Command("podman", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// ulimitFlags sets the container's open-file and process limits as
// hack/images/podman.sh does: podman's defaults are refused by runc on
// these hosts. Open files: this process's hard limit; processes: 4096, far
// above the controller's threads.
func ulimitFlags() []string {
	nofile := "1024:1024"
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err == nil {
		nofile = fmt.Sprintf("%d:%d", r.Max, r.Max)
	}
	return []string{"--ulimit", "nofile=" + nofile, "--ulimit", "nproc=4096:4096"}
}

// removeStaleContainers removes the containers of earlier runs whose test
// process is gone (killed before its cleanup ran).
func removeStaleContainers() {
	out, err := podman("ps", "-a", "--filter", "label="+ownerLabel,
		"--format", `{{.Names}} {{index .Labels "`+ownerLabel+`"}}`)
	if err != nil {
		fmt.Fprintln(os.Stderr, "test/image: listing old containers:", err)
		return
	}
	for _, line := range strings.Split(out, "\n") {
		name, owner, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(owner)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue // its test is still running
		}
		if _, err := podman("rm", "--force", name); err != nil {
			fmt.Fprintln(os.Stderr, "test/image: removing an old container:", err)
		}
	}
}

// procStatus reads the fields of /proc/<pid>/status of the container's
// first process, as the host sees it.
func procStatus(t *testing.T, name string) map[string]string {
	t.Helper()
	pid := mustPodman(t, "inspect", "--format", "{{.State.Pid}}", name)
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return fields
}

// rootMountOptions returns the mount options of the container's root
// filesystem, from /proc/<pid>/mountinfo.
func rootMountOptions(t *testing.T, name string) []string {
	t.Helper()
	pid := mustPodman(t, "inspect", "--format", "{{.State.Pid}}", name)
	b, err := os.ReadFile("/proc/" + pid + "/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var opts []string
	for _, line := range strings.Split(string(b), "\n") {
		// id parent major:minor root mountpoint options ...
		f := strings.Fields(line)
		if len(f) > 5 && f[4] == "/" {
			opts = strings.Split(f[5], ",") // the last mount on / is the one seen
		}
	}
	if opts == nil {
		t.Fatalf("no root mount in /proc/%s/mountinfo", pid)
	}
	return opts
}

// waitExited waits until container name has stopped.
func waitExited(t *testing.T, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		state, err := podman("inspect", "--format", "{{.State.Status}}", name)
		if err != nil || state == "exited" || state == "stopped" {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("container %s still running 30s after it was killed", name)
}
