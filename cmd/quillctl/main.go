// Command quillctl runs the ceremonies around a Quill CA that happen
// outside the cluster: creating an offline root, requesting and signing a
// subordinate CA, preparing CA keys on a PKCS#11 token, and turning CA
// material (a PFX, or PEM files) into the Secret a QuillIssuer or
// QuillClusterIssuer reads. It also reads back what Quill recorded in a
// cluster: an issuer's audit report and the crypto inventory.
//
// Every failure prints one line, "quillctl: <message>", on stderr and
// exits with status 1, having written nothing.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/quill-pki/quill/pkg/ceremony"
	// The key backends quillctl offers (pkg/kms/backends lists them);
	// keyResolver picks them up from the registry.
	_ "github.com/quill-pki/quill/pkg/kms/backends"
)

func main() {
	a := &app{
		stdin:  os.Stdin,
		stdout: os.Stdout,
		stderr: os.Stderr,
		now:    time.Now,
		getenv: os.LookupEnv,
		keys:   keyResolver(os.LookupEnv),
	}
	// Ctrl-C or SIGTERM cancels the command's context: a command stops
	// there and removes what it had half written (audit report --out)
	// instead of dying with it in place.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := a.command().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "quillctl: "+oneLine(err.Error()))
		os.Exit(1)
	}
}

var lineBreaks = regexp.MustCompile(`\s*\n\s*`)

// oneLine joins a multi-line message (errors.Join, cobra's suggestions)
// into one line, so scripts and logs get one line per failure.
func oneLine(msg string) string {
	return lineBreaks.ReplaceAllString(strings.TrimSpace(msg), "; ")
}

// app holds what the commands need from the outside world, so tests can
// replace it.
type app struct {
	stdin          *os.File
	stdout, stderr io.Writer
	now            func() time.Time
	getenv         func(string) (string, bool)
	keys           ceremony.KeyResolver
	// connect reaches the cluster for the commands that read it; nil
	// means the kubeconfig, as kubectl reads it (see connect).
	connect func(kubeconfig, kubeContext string) (clientcmd.ClientConfig, client.Client, error)
}

func (a *app) warn(msgs ...string) {
	for _, m := range msgs {
		fmt.Fprintln(a.stderr, "quillctl: warning: "+oneLine(m))
	}
}
