// Package metrics defines Quill's Prometheus metrics, all prefixed quill_,
// and registers them with controller-runtime's registry, which the
// controller serves on --metrics-bind-address.
//
// Series are labelled by issuer with two labels: issuer_kind (QuillIssuer
// or QuillClusterIssuer) and issuer (namespace/name, or name for a cluster
// issuer); issuerLabels builds them. To add a metric, add a field to
// Metrics, build it in New, list its address in Register, and give it a
// nil-safe recording method.
package metrics

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// Label names.
const (
	LabelIssuerKind   = "issuer_kind"
	LabelIssuer       = "issuer"
	LabelTemplate     = "template"
	LabelKeyAlgorithm = "key_algorithm"
	LabelRule         = "rule"
	LabelReason       = "reason"

	LabelSignatureAlgorithm = "signature_algorithm"
	LabelQuantumVulnerable  = "quantum_vulnerable"

	LabelModule = "module"
	LabelToken  = "token"
	LabelResult = "result"
)

// issuerLabel is the issuer label's value: namespace/name, or name.
func issuerLabel(i quillv1.IssuerID) string {
	if i.Namespace == "" {
		return i.Name
	}
	return i.Namespace + "/" + i.Name
}

// issuerLabels are the labels every per-issuer series carries.
func issuerLabels(i quillv1.IssuerID) prometheus.Labels {
	return prometheus.Labels{LabelIssuerKind: i.Kind, LabelIssuer: issuerLabel(i)}
}

// Metrics holds Quill's collectors. A nil *Metrics records nothing, so
// code paths (and tests) without metrics need no checks.
type Metrics struct {
	// Issued counts certificates signed, by issuer, template ("" for none)
	// and the requester's key algorithm.
	Issued *prometheus.CounterVec
	// Denied counts requests refused for good (policy, template or an
	// unsignable CSR), by issuer, template, key algorithm and rule.
	Denied *prometheus.CounterVec
	// SigningDuration is the time from the start of Sign to a signed
	// certificate, by issuer: policy, CA access (an HSM round trip
	// included) and signing.
	SigningDuration *prometheus.HistogramVec
	// CANotAfter is the signing CA certificate's notAfter, as a Unix time.
	CANotAfter *prometheus.GaugeVec
	// IssuerReady is 1 while the issuer's health check passes, else 0.
	IssuerReady *prometheus.GaugeVec
	// Revoked counts certificates newly marked revoked in the ledger, by
	// issuer, template, key algorithm and RFC 5280 reason name. A certificate already revoked is
	// not counted again.
	Revoked *prometheus.CounterVec
	// LedgerEntries is how many IssuedCertificate records the issuer has
	// (revoked and expired ones included), as the ledger index holds them.
	LedgerEntries *prometheus.GaugeVec
	// LedgerIgnored counts the ledger objects the index does not believe,
	// by reason: corrupt (a segment whose data does not decode) or foreign
	// (an object naming an issuer whose home is another namespace). Their
	// entries are missing from OCSP, CRLs and inventory: alert on any.
	LedgerIgnored *prometheus.GaugeVec
	// CertificatesUnexpired counts the issuer's unexpired certificates
	// (revoked ones included) by key algorithm and whether they are
	// quantum-vulnerable, as its status.inventory does.
	CertificatesUnexpired *prometheus.GaugeVec
	// CAInfo is 1 for the issuer's current CA key and signature algorithm.
	CAInfo *prometheus.GaugeVec
	// PKCS11Logins counts C_Login calls to PKCS#11 tokens, by module name
	// (from the controller's allow-list), token (label or serial) and
	// result: ok, pin_incorrect or error. Not per issuer: the login belongs
	// to the process and the token, and issuers can share both.
	PKCS11Logins *prometheus.CounterVec

	// inventoryMu guards inventorySeries: the label sets each issuer last
	// set, so that a series whose certificates all expired is removed.
	inventoryMu     sync.Mutex
	inventorySeries map[quillv1.IssuerID][]prometheus.Labels
}

// New builds unregistered collectors.
func New() *Metrics {
	issuer := []string{LabelIssuerKind, LabelIssuer}
	return &Metrics{
		Issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quill_certificates_issued_total",
			Help: "Certificates signed, by issuer, template and requester key algorithm.",
		}, append(issuer, LabelTemplate, LabelKeyAlgorithm)),
		Denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quill_certificates_denied_total",
			Help: "Requests refused for good, by issuer, template, requester key algorithm and refusing rule.",
		}, append(issuer, LabelTemplate, LabelKeyAlgorithm, LabelRule)),
		SigningDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "quill_signing_duration_seconds",
			Help: "Time to sign one request, policy and CA access included.",
			// From a software key (sub-millisecond) to a busy HSM or RSA-4096
			// CA (hundreds of milliseconds).
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
		}, issuer),
		CANotAfter: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "quill_ca_not_after_timestamp_seconds",
			Help: "Expiry of the issuer's signing CA certificate, as a Unix time.",
		}, issuer),
		IssuerReady: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "quill_issuer_ready",
			Help: "1 when the issuer can sign (health check passed and state Active), else 0.",
		}, issuer),
		Revoked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quill_certificates_revoked_total",
			Help: "Certificates revoked, by issuer, template, key algorithm and RFC 5280 reason.",
		}, append(issuer, LabelTemplate, LabelKeyAlgorithm, LabelReason)),
		LedgerEntries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "quill_ledger_entries",
			Help: "Issued-certificate records in the issuer's ledger, revoked and expired ones included.",
		}, issuer),
		LedgerIgnored: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "quill_ledger_ignored_objects",
			Help: "Ledger objects the index ignores, by reason: corrupt (a segment that does not decode) or foreign (outside its issuer's home namespace). Their entries are missing from OCSP, CRLs and inventory.",
		}, []string{LabelReason}),
		CertificatesUnexpired: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "quill_certificates_unexpired",
			Help: "Unexpired certificates in the issuer's ledger, revoked ones included, by key algorithm and whether they are quantum-vulnerable (classical key or classical signature).",
		}, append(issuer, LabelKeyAlgorithm, LabelQuantumVulnerable)),
		CAInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "quill_ca_info",
			Help: "1 for the key and signature algorithm of the issuer's signing CA.",
		}, append(issuer, LabelKeyAlgorithm, LabelSignatureAlgorithm)),
		PKCS11Logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quill_pkcs11_logins_total",
			Help: "PINs presented to PKCS#11 tokens (C_Login calls), by module, token and result (ok, pin_incorrect, error). HSMs lock a PIN after a few failures: alert on pin_incorrect.",
		}, []string{LabelModule, LabelToken, LabelResult}),
	}
}

// Register registers the collectors with r. A collector already registered
// by an earlier Register in the same process (a second manager in one test
// binary) is adopted instead, so both record into the series r serves.
func (m *Metrics) Register(r prometheus.Registerer) error {
	for _, f := range []any{&m.Issued, &m.Denied, &m.SigningDuration, &m.CANotAfter, &m.IssuerReady, &m.Revoked, &m.LedgerEntries, &m.LedgerIgnored, &m.CertificatesUnexpired, &m.CAInfo, &m.PKCS11Logins} {
		if err := register(r, f); err != nil {
			return err
		}
	}
	return nil
}

func register(r prometheus.Registerer, field any) error {
	var c prometheus.Collector
	switch f := field.(type) {
	case **prometheus.CounterVec:
		c = *f
	case **prometheus.HistogramVec:
		c = *f
	case **prometheus.GaugeVec:
		c = *f
	}
	err := r.Register(c)
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		if err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
		return nil
	}
	ok := false
	switch f := field.(type) {
	case **prometheus.CounterVec:
		*f, ok = are.ExistingCollector.(*prometheus.CounterVec)
	case **prometheus.HistogramVec:
		*f, ok = are.ExistingCollector.(*prometheus.HistogramVec)
	case **prometheus.GaugeVec:
		*f, ok = are.ExistingCollector.(*prometheus.GaugeVec)
	}
	if !ok {
		return fmt.Errorf("registering metrics: %w", err)
	}
	return nil
}

// Issue records one signed certificate and how long signing took.
func (m *Metrics) Issue(i quillv1.IssuerID, template, keyAlgorithm string, took time.Duration) {
	if m == nil {
		return
	}
	m.Issued.WithLabelValues(i.Kind, issuerLabel(i), template, keyAlgorithm).Inc()
	m.SigningDuration.WithLabelValues(i.Kind, issuerLabel(i)).Observe(took.Seconds())
}

// PKCS11Login records one C_Login to token (a label or serial) of the
// allow-listed module, with its result.
func (m *Metrics) PKCS11Login(module, token, result string) {
	if m == nil {
		return
	}
	m.PKCS11Logins.WithLabelValues(module, token, result).Inc()
}

// Deny records one request refused for good by rule.
func (m *Metrics) Deny(i quillv1.IssuerID, template, keyAlgorithm, rule string) {
	if m == nil {
		return
	}
	m.Denied.WithLabelValues(i.Kind, issuerLabel(i), template, keyAlgorithm, rule).Inc()
}

// IssuerChecked records the outcome of an issuer's health check: whether it
// can sign, and its CA's expiry when a CA could be read (zero otherwise).
func (m *Metrics) IssuerChecked(i quillv1.IssuerID, ready bool, caNotAfter time.Time) {
	if m == nil {
		return
	}
	v := 0.0
	if ready {
		v = 1
	}
	m.IssuerReady.WithLabelValues(i.Kind, issuerLabel(i)).Set(v)
	if !caNotAfter.IsZero() {
		m.CANotAfter.WithLabelValues(i.Kind, issuerLabel(i)).Set(float64(caNotAfter.Unix()))
	}
}

// ForgetIssuer drops the gauges of a deleted issuer, so that a removed CA
// does not look like one about to expire. Counters stay: they are history.
func (m *Metrics) ForgetIssuer(i quillv1.IssuerID) {
	if m == nil {
		return
	}
	m.IssuerReady.Delete(issuerLabels(i))
	m.CANotAfter.Delete(issuerLabels(i))
}

// Revoke records one certificate newly revoked with reason (the RFC 5280
// reason's name, as in a QuillRevocation); template ("" for none) and
// keyAlgorithm are the certificate's, as the ledger recorded them.
func (m *Metrics) Revoke(i quillv1.IssuerID, template, keyAlgorithm, reason string) {
	if m == nil {
		return
	}
	m.Revoked.WithLabelValues(i.Kind, issuerLabel(i), template, keyAlgorithm, reason).Inc()
}

// LedgerSize sets how many ledger records the issuer has. An issuer with
// none left loses its series, so that a deleted issuer's ledger does not
// linger.
func (m *Metrics) LedgerSize(i quillv1.IssuerID, n int) {
	if m == nil {
		return
	}
	if n == 0 {
		m.LedgerEntries.Delete(issuerLabels(i))
		return
	}
	m.LedgerEntries.WithLabelValues(i.Kind, issuerLabel(i)).Set(float64(n))
}

// LedgerIgnoredObjects sets quill_ledger_ignored_objects.
func (m *Metrics) LedgerIgnoredObjects(corrupt, foreign int) {
	if m == nil {
		return
	}
	m.LedgerIgnored.WithLabelValues("corrupt").Set(float64(corrupt))
	m.LedgerIgnored.WithLabelValues("foreign").Set(float64(foreign))
}

// UnexpiredCount is one quill_certificates_unexpired series of an issuer.
type UnexpiredCount struct {
	KeyAlgorithm      string
	QuantumVulnerable bool
	Certificates      int
}

// SetInventory records the issuer's unexpired certificates and its CA's
// algorithms (empty when the CA is unknown), replacing what was recorded
// for it before: series no longer listed are removed.
func (m *Metrics) SetInventory(i quillv1.IssuerID, counts []UnexpiredCount, caKeyAlgorithm, caSignatureAlgorithm string) {
	if m == nil {
		return
	}
	var series []prometheus.Labels
	for _, c := range counts {
		l := issuerLabels(i)
		l[LabelKeyAlgorithm] = c.KeyAlgorithm
		l[LabelQuantumVulnerable] = strconv.FormatBool(c.QuantumVulnerable)
		m.CertificatesUnexpired.With(l).Set(float64(c.Certificates))
		series = append(series, l)
	}
	var ca prometheus.Labels
	if caKeyAlgorithm != "" || caSignatureAlgorithm != "" {
		ca = issuerLabels(i)
		ca[LabelKeyAlgorithm] = caKeyAlgorithm
		ca[LabelSignatureAlgorithm] = caSignatureAlgorithm
		m.CAInfo.With(ca).Set(1)
	}
	m.inventoryMu.Lock()
	defer m.inventoryMu.Unlock()
	for _, old := range m.inventorySeries[i] {
		if _, isCA := old[LabelSignatureAlgorithm]; isCA {
			if ca == nil || !sameLabels(old, ca) {
				m.CAInfo.Delete(old)
			}
			continue
		}
		if !containsLabels(series, old) {
			m.CertificatesUnexpired.Delete(old)
		}
	}
	if m.inventorySeries == nil {
		m.inventorySeries = map[quillv1.IssuerID][]prometheus.Labels{}
	}
	if ca != nil {
		series = append(series, ca)
	}
	m.inventorySeries[i] = series
}

// ForgetInventory removes the inventory series of a deleted issuer.
func (m *Metrics) ForgetInventory(i quillv1.IssuerID) {
	if m == nil {
		return
	}
	m.CertificatesUnexpired.DeletePartialMatch(issuerLabels(i))
	m.CAInfo.DeletePartialMatch(issuerLabels(i))
	m.inventoryMu.Lock()
	delete(m.inventorySeries, i)
	m.inventoryMu.Unlock()
}

func sameLabels(a, b prometheus.Labels) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func containsLabels(list []prometheus.Labels, l prometheus.Labels) bool {
	for _, x := range list {
		if sameLabels(x, l) {
			return true
		}
	}
	return false
}
