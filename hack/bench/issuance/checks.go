package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/quill-pki/quill/test/harness"
)

// checkPhase verifies, outside the measured window, that a Secret issued in
// ns chains to the CA of kind (for Quill (PKCS#11), the one whose key is on
// the token), and counts the CertificateRequests (one per Certificate when
// nothing was retried).
func (b *bench) checkPhase(ctx context.Context, ns string, kind issuerKind) (int, error) {
	crs, err := b.cm.CertmanagerV1().CertificateRequests(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	s, err := b.kube.CoreV1().Secrets(ns).Get(ctx, "c0000-tls", metav1.GetOptions{})
	if err != nil {
		return 0, err
	}
	leafBlock, _ := pem.Decode(s.Data[corev1.TLSCertKey])
	caPEM := b.caCert
	if kind == kindPKCS11 {
		caPEM = b.hsm.certPEM
	}
	caBlock, _ := pem.Decode(caPEM)
	if leafBlock == nil || caBlock == nil {
		return 0, fmt.Errorf("%w: %s/c0000-tls holds no PEM certificate", errWrongChain, ns)
	}
	leaf, err := x509.ParseCertificate(leafBlock.Bytes)
	if err != nil {
		return 0, err
	}
	ca, err := x509.ParseCertificate(caBlock.Bytes)
	if err != nil {
		return 0, err
	}
	if err := leaf.CheckSignatureFrom(ca); err != nil {
		return 0, fmt.Errorf("%w: %s/c0000-tls: %w", errWrongChain, ns, err)
	}
	return len(crs.Items), nil
}

// eventReasons counts the Events recorded in ns by reporter, object kind
// and reason, to tell whose events the request totals hold. core/v1 and
// events.k8s.io/v1 Events are one resource, so one list sees both; an
// Event the recorder aggregated counts as often as it happened.
func (b *bench) eventReasons(ctx context.Context, ns string) (map[string]float64, error) {
	list, err := b.kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, ev := range list.Items {
		reporter := ev.ReportingController
		if reporter == "" {
			reporter = ev.Source.Component
		}
		n := float64(max(ev.Count, 1))
		if ev.Series != nil {
			n = float64(max(ev.Series.Count, 1))
		}
		out[reporter+" "+ev.InvolvedObject.Kind+" "+ev.Reason] += n
	}
	return out, nil
}

// environment describes what the benchmark ran on, for the report.
type environment struct {
	cpuModel, memory, apiserver, certManager, softHSM string
}

func (b *bench) describe() environment {
	e := environment{cpuModel: "?", memory: "?", apiserver: "?", certManager: "?", softHSM: "?"}
	if info, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(info), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				e.cpuModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if info, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(info), "MemTotal: %d kB", &kb); err == nil {
			e.memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	if v, err := b.kube.Discovery().ServerVersion(); err == nil {
		e.apiserver = v.GitVersion
	}
	if b.hsm != nil {
		if out, err := exec.Command("softhsm2-util", "--version").Output(); err == nil {
			e.softHSM = "SoftHSM " + strings.TrimSpace(string(out))
		}
	}
	// The cert-manager controller is built from its own module (make tools).
	if mod, err := os.ReadFile(filepath.Join(b.env.Root, "hack", "tools", "cert-manager-controller", "go.mod")); err == nil {
		for _, line := range strings.Split(string(mod), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "github.com/cert-manager/cert-manager" {
				e.certManager = f[1]
			}
		}
	}
	return e
}

// throttleReport shows client-go's notes on client-side throttling (a
// request waited more than a second for the client's rate limiter; logged
// at most every 10 s) from the controllers' logs.
func throttleReport(w io.Writer, env *harness.Env) {
	for _, name := range []string{"quill-controller", "cert-manager-controller"} {
		var hits []string
		for _, line := range strings.Split(env.Log(name), "\n") {
			if strings.Contains(line, "Waited before sending request") || strings.Contains(line, "client-side throttling") {
				hits = append(hits, line)
			}
		}
		fmt.Fprintf(w, "\nclient-side throttling notes in the %s log: %d\n", name, len(hits))
		for _, h := range hits[:min(len(hits), 5)] {
			fmt.Fprintf(w, "  %s\n", h)
		}
	}
}
