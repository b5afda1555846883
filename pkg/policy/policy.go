package policy

import (
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/issuance"
	"github.com/quill-pki/quill/pkg/names"
)

// Rules, as named in denials (and in the quill_certificates_denied_total
// rule label). Template rules are prefixed with "template ".
const (
	RuleTemplates     = "spec.templates"
	RuleNamespaces    = "spec.policy.namespaces"
	RuleDNSNames      = "spec.policy.dnsNames"
	RuleIPRanges      = "spec.policy.ipRanges"
	RuleURIs          = "spec.policy.uris"
	RuleEmails        = "spec.policy.emailAddresses"
	RuleOtherNames    = "spec.policy.allowedOtherNames"
	RuleCommonNames   = "spec.policy.commonNames"
	RuleMinDuration   = "spec.policy.minDuration"
	RuleMaxDuration   = "spec.policy.maxDuration"
	RuleKeyAlgorithms = "spec.policy.keyAlgorithms"
	RuleMinRSAKeySize = "spec.policy.minRSAKeySize"
	RuleCA            = "spec.policy.ca"
	RuleCAMaxPathLen  = "spec.policy.ca.maxPathLen"
	RuleSubject       = "spec.policy.subject"

	RuleTemplateIsCA        = "template isCA"
	RuleTemplateKeyUsages   = "template keyUsages"
	RuleTemplateExtUsages   = "template extKeyUsages"
	RuleTemplateMaxPathLen  = "template maxPathLen"
	RuleTemplateMaxDuration = "template maxDuration"
)

// Request is what policy sees of one request. The controller fills it from
// the CertificateRequest (or CertificateSigningRequest) after parsing the
// CSR with issuance.ParseCSR.
type Request struct {
	// CSR is the parsed, signature-checked CSR.
	CSR *x509.CertificateRequest
	// Namespace of the request; "" for a Kubernetes CertificateSigningRequest.
	Namespace string
	// Template is the value of the quill.dev/template annotation, "" when
	// absent.
	Template string
	// Duration is the lifetime that will be issued before any clamping to
	// the CA's expiry: the requested one, or the issuer's default.
	Duration time.Duration
	// DurationDefaulted says that Duration is the issuer's default because
	// the request asked for none (a Certificate without spec.duration, a
	// Kubernetes CSR without expirationSeconds). A maxDuration of the
	// policy or the template then lowers it (Decision.Duration) instead
	// of refusing: the requester asked for nothing to be refused.
	DurationDefaulted bool
	// IsCA, MaxPathLen, KeyUsage and ExtKeyUsage are the request's, as
	// cert-manager or the CSR API computed them.
	IsCA        bool
	MaxPathLen  *int
	KeyUsage    x509.KeyUsage
	ExtKeyUsage []x509.ExtKeyUsage
}

// Template is a resolved template: a built-in or a QuillTemplate.
type Template struct {
	Name string
	Spec quillv1.TemplateSpec
}

// Decision is what the issuer adds to an allowed request.
type Decision struct {
	// MaxPathLen to encode in a CA certificate, when policy or template
	// fix it; nil leaves the request's.
	MaxPathLen *int
	// NameConstraints to write into a CA certificate.
	NameConstraints *issuance.NameConstraints
	// Duration, when not zero, is the lifetime to issue instead of the
	// issuer's default: the lowest maxDuration of the template and the
	// policy, for a request that asked for no duration.
	Duration time.Duration
	// OtherNames are the CSR's otherName SANs, each allowed by
	// spec.policy.allowedOtherNames; the controller passes them to
	// issuance.Request.OtherNames, without which none is signed.
	OtherNames []names.OtherName
	// Notes say what was added, for the IssuanceAdjusted event.
	Notes []string
}

// SelectTemplate checks the request's template choice against an issuer's
// spec.templates and returns the chosen name, "" when the issuer lists
// none and none was chosen. It refuses a missing choice when the issuer
// lists templates, a choice the issuer does not list, and any choice when
// it lists none: a template is applied as chosen or the request fails.
func SelectTemplate(allowed []string, requested string) (string, error) {
	switch {
	case len(allowed) == 0 && requested == "":
		return "", nil
	case len(allowed) == 0:
		return "", deny(RuleTemplates, "the request selects template %q (annotation %s) but this issuer lists no templates; remove the annotation or use an issuer that offers the template",
			requested, quillv1.AnnotationTemplate)
	case requested == "":
		return "", deny(RuleTemplates, "this issuer signs only with a template: set the annotation %s to one of %s on the Certificate",
			quillv1.AnnotationTemplate, quote(allowed))
	case !slices.Contains(allowed, requested):
		return "", deny(RuleTemplates, "template %q is not offered by this issuer, which allows %s", requested, quote(allowed))
	}
	return requested, nil
}

// Validate reports what makes an issuer's policy unusable (patterns,
// CIDRs); such errors are the issuer's fault (IsInvalidPolicy). The schema
// already checks what it can; this checks the rest, so that a bad pattern
// turns the issuer not Ready instead of refusing every request.
func Validate(p *quillv1.RequestPolicy) error {
	if p == nil {
		return nil
	}
	var errs []error
	for _, d := range p.DNSNames {
		errs = append(errs, checkDNSPattern(strings.ReplaceAll(d, namespacePlaceholder, "ns")))
	}
	if _, err := parseCIDRs(RuleIPRanges, p.IPRanges); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseAttributeAllowList(allowedSubjectAttributes(p)); err != nil {
		errs = append(errs, err)
	}
	if p.CA != nil && p.CA.NameConstraints != nil {
		if _, err := nameConstraints(p.CA.NameConstraints); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, validateOtherNames(p.AllowedOtherNames))
	return errors.Join(errs...)
}

// ValidateTemplate reports what makes a template unusable.
func ValidateTemplate(t Template) error {
	_, _, err := templateUsages(&t.Spec)
	if err != nil {
		return fmt.Errorf("template %q: %w", t.Name, err)
	}
	return nil
}

// Evaluate decides one request against an issuer's policy (nil: none) and
// the selected template (nil: none). It returns a *Denial for the first
// rule the request breaks, an IsInvalidPolicy error when the policy or
// template cannot be used, or the Decision. Names are checked first, with
// or without a policy: a name pkg/names refuses is denied by
// RuleNameSyntax. With a policy, every attribute of the subject as encoded
// is judged: each common name, each emailAddress, and every other
// attribute, which must be one a cert-manager subject can set or be
// allow-listed (checkSubjectNames). otherNames are refused unless
// allowedOtherNames allows them, also when there is no policy at all:
// unlike DNS names, they were never signed before that field existed, and
// they name accounts (a UPN is a Windows logon), so signing one is always
// a decision someone wrote down.
func Evaluate(p *quillv1.RequestPolicy, tmpl *Template, req Request) (Decision, error) {
	var dec Decision
	if req.CSR == nil {
		return dec, errors.New("policy: no CSR")
	}
	// Syntax first and whatever the policy: the patterns below only mean
	// what they say on valid names.
	if err := names.Check(req.CSR); err != nil {
		return dec, deny(RuleNameSyntax, "%v", err)
	}
	if tmpl != nil {
		if err := checkTemplate(tmpl, req, &dec); err != nil {
			return Decision{}, err
		}
	}
	if err := checkOtherNames(p, req, &dec); err != nil {
		return Decision{}, err
	}
	if p == nil {
		return dec, nil
	}
	checks := []func(*quillv1.RequestPolicy, Request, *Decision) error{
		checkNamespace, checkKey, checkDuration, checkNames, checkCommonName, checkSubject, checkCA,
	}
	for _, c := range checks {
		if err := c(p, req, &dec); err != nil {
			return Decision{}, err
		}
	}
	return dec, nil
}

func checkTemplate(t *Template, req Request, dec *Decision) error {
	ku, ekus, err := templateUsages(&t.Spec)
	if err != nil {
		return fmt.Errorf("template %q: %w", t.Name, err)
	}
	rule := func(r string) string { return r + " (" + t.Name + ")" }
	if req.IsCA != t.Spec.IsCA {
		if t.Spec.IsCA {
			return deny(rule(RuleTemplateIsCA), "template %q issues CA certificates only; set isCA: true or choose another template", t.Name)
		}
		return deny(rule(RuleTemplateIsCA), "template %q does not issue CA certificates; remove isCA or choose a subordinate-ca template", t.Name)
	}
	requested := req.KeyUsage
	if req.IsCA {
		requested |= x509.KeyUsageCertSign
	}
	if extra := requested &^ ku; extra != 0 {
		return deny(rule(RuleTemplateKeyUsages), "template %q allows key usages %s; the request also asks for %s — set spec.usages within the template",
			t.Name, keyUsageNames(ku), keyUsageNames(extra))
	}
	if len(ekus) == 0 && len(req.ExtKeyUsage) > 0 {
		return deny(rule(RuleTemplateExtUsages), "template %q allows no extended key usage; the request asks for %s", t.Name, extKeyUsageNames(req.ExtKeyUsage))
	}
	if len(ekus) > 0 {
		if len(req.ExtKeyUsage) == 0 {
			// Without the extension a certificate is good for every purpose,
			// which is exactly what a purpose-limited template is there to stop.
			return deny(rule(RuleTemplateExtUsages), "template %q requires extended key usages among %s and the request asks for none; add them to the Certificate's spec.usages",
				t.Name, extKeyUsageNames(ekus))
		}
		var extra []x509.ExtKeyUsage
		for _, u := range req.ExtKeyUsage {
			if !slices.Contains(ekus, u) {
				extra = append(extra, u)
			}
		}
		if len(extra) > 0 {
			return deny(rule(RuleTemplateExtUsages), "template %q allows extended key usages %s; the request also asks for %s",
				t.Name, extKeyUsageNames(ekus), extKeyUsageNames(extra))
		}
	}
	if m := t.Spec.MaxPathLen; m != nil {
		if req.MaxPathLen != nil && *req.MaxPathLen != *m {
			return deny(rule(RuleTemplateMaxPathLen), "template %q issues CAs with path length %d; the CSR asks for %d", t.Name, *m, *req.MaxPathLen)
		}
		if req.MaxPathLen == nil {
			dec.MaxPathLen = ptr(*m)
			dec.Notes = append(dec.Notes, fmt.Sprintf("path length constraint %d set by template %q", *m, t.Name))
		}
	}
	if m := t.Spec.MaxDuration; m != nil && req.Duration > m.Duration && req.DurationDefaulted {
		lowerDuration(dec, m.Duration, fmt.Sprintf("template %q's maxDuration", t.Name))
	} else if m != nil && req.Duration > m.Duration {
		return deny(rule(RuleTemplateMaxDuration), "template %q allows at most %s; the request asks for %s", t.Name, m.Duration, req.Duration)
	}
	return nil
}

func checkNamespace(p *quillv1.RequestPolicy, req Request, _ *Decision) error {
	if len(p.Namespaces) == 0 {
		return nil
	}
	if req.Namespace == "" {
		return deny(RuleNamespaces, "this issuer signs only requests from namespaces %s; a Kubernetes CertificateSigningRequest has none", quote(p.Namespaces))
	}
	for _, n := range p.Namespaces {
		if matchGlob(n, req.Namespace, 0) {
			return nil
		}
	}
	return deny(RuleNamespaces, "namespace %q may not use this issuer (allowed: %s)", req.Namespace, quote(p.Namespaces))
}

func checkKey(p *quillv1.RequestPolicy, req Request, _ *Decision) error {
	alg, err := issuance.KeyAlgorithmOf(req.CSR.PublicKey)
	if err != nil {
		// issuance.Sign refuses unsupported keys with its own message.
		return nil
	}
	if len(p.KeyAlgorithms) > 0 && !slices.ContainsFunc(p.KeyAlgorithms, func(a quillv1.PolicyKeyAlgorithm) bool {
		return string(a) == string(alg) || strings.HasPrefix(string(alg), string(a)+"-")
	}) {
		names := make([]string, len(p.KeyAlgorithms))
		for i, a := range p.KeyAlgorithms {
			names[i] = string(a)
		}
		return deny(RuleKeyAlgorithms, "key algorithm %s is not allowed (allowed: %s)", alg, quote(names))
	}
	if k, ok := req.CSR.PublicKey.(*rsa.PublicKey); ok && p.MinRSAKeySize > 0 && k.N.BitLen() < p.MinRSAKeySize {
		return deny(RuleMinRSAKeySize, "RSA key of %d bits is below the minimum of %d", k.N.BitLen(), p.MinRSAKeySize)
	}
	return nil
}

func checkDuration(p *quillv1.RequestPolicy, req Request, dec *Decision) error {
	d := req.Duration
	if dec.Duration > 0 {
		d = dec.Duration
	}
	if m := p.MaxDuration; m != nil && d > m.Duration {
		if !req.DurationDefaulted {
			return deny(RuleMaxDuration, "duration %s exceeds the maximum of %s", d, m.Duration)
		}
		lowerDuration(dec, m.Duration, RuleMaxDuration)
		d = m.Duration
	}
	if m := p.MinDuration; m != nil && d < m.Duration {
		what := "duration"
		if req.DurationDefaulted {
			what = "the default duration"
		}
		return deny(RuleMinDuration, "%s %s is below the minimum of %s", what, d, m.Duration)
	}
	return nil
}

// lowerDuration issues a request that asked for no duration for max
// instead of the issuer's longer default, and says so in a note. The
// lowest maximum wins.
func lowerDuration(dec *Decision, max time.Duration, by string) {
	if dec.Duration > 0 && dec.Duration <= max {
		return
	}
	dec.Duration = max
	dec.Notes = append(dec.Notes, fmt.Sprintf("no duration was requested: issued for %s, the maximum of %s, instead of the issuer's longer default", issuance.HumanDuration(max), by))
}

func checkNames(p *quillv1.RequestPolicy, req Request, _ *Decision) error {
	for _, name := range req.CSR.DNSNames {
		if !anyMatch(p.DNSNames, req.Namespace, func(pat string) bool { return checkDNSPattern(pat) == nil && matchDNS(pat, name) }) {
			return deny(RuleDNSNames, "DNS name %q is not allowed%s", name, allowedList(p.DNSNames, req.Namespace))
		}
	}
	if len(req.CSR.IPAddresses) > 0 {
		nets, err := parseCIDRs(RuleIPRanges, p.IPRanges)
		if err != nil {
			return err
		}
		for _, ip := range req.CSR.IPAddresses {
			if !slices.ContainsFunc(nets, func(n *net.IPNet) bool { return n.Contains(ip) }) {
				return deny(RuleIPRanges, "IP address %s is not allowed%s", ip, allowedList(p.IPRanges, ""))
			}
		}
	}
	for _, u := range req.CSR.URIs {
		s := u.String()
		if !anyMatch(p.URIs, req.Namespace, func(pat string) bool { return matchGlob(pat, s, '/') }) {
			return deny(RuleURIs, "URI %q is not allowed%s", s, allowedList(p.URIs, req.Namespace))
		}
	}
	for _, e := range req.CSR.EmailAddresses {
		if !emailAllowed(p, req.Namespace, e) {
			return deny(RuleEmails, "email address %q is not allowed%s", e, allowedList(p.EmailAddresses, req.Namespace))
		}
	}
	return nil
}

// checkCommonName keeps the subject's common names from naming what the
// SAN rules would refuse: legacy verifiers still read them as host names.
// Every attribute of the subject is judged (checkSubjectNames), not only
// the last common name pkix.Name keeps.
func checkCommonName(p *quillv1.RequestPolicy, req Request, _ *Decision) error {
	return checkSubjectNames(p, req, allowedSubjectAttributes(p))
}

func checkSubject(p *quillv1.RequestPolicy, req Request, _ *Decision) error {
	if p.Subject == nil {
		return nil
	}
	s := req.CSR.Subject
	for _, f := range []struct {
		name      string
		want, got []string
	}{
		{"organizations (O)", p.Subject.Organizations, s.Organization},
		{"organizationalUnits (OU)", p.Subject.OrganizationalUnits, s.OrganizationalUnit},
		{"countries (C)", p.Subject.Countries, s.Country},
		{"provinces (ST)", p.Subject.Provinces, s.Province},
		{"localities (L)", p.Subject.Localities, s.Locality},
	} {
		if len(f.want) > 0 && !slices.Equal(f.want, f.got) {
			return deny(RuleSubject, "subject %s must be %s; the request has %s", f.name, quote(f.want), quote(f.got))
		}
	}
	return nil
}

func checkCA(p *quillv1.RequestPolicy, req Request, dec *Decision) error {
	if !req.IsCA {
		return nil
	}
	if p.CA == nil {
		return deny(RuleCA, "this issuer's policy does not allow CA certificates (isCA: true)")
	}
	if m := p.CA.MaxPathLen; m != nil {
		asked := req.MaxPathLen
		if dec.MaxPathLen != nil {
			asked = dec.MaxPathLen
		}
		switch {
		case asked == nil:
			dec.MaxPathLen = ptr(*m)
			dec.Notes = append(dec.Notes, fmt.Sprintf("path length constraint %d set by %s", *m, RuleCAMaxPathLen))
		case *asked > *m:
			return deny(RuleCAMaxPathLen, "path length %d exceeds the maximum of %d", *asked, *m)
		}
	}
	if p.CA.NameConstraints != nil {
		nc, err := nameConstraints(p.CA.NameConstraints)
		if err != nil {
			return err
		}
		dec.NameConstraints = nc
		dec.Notes = append(dec.Notes, "name constraints set by spec.policy.ca.nameConstraints")
	}
	return nil
}

func nameConstraints(in *quillv1.NameConstraints) (*issuance.NameConstraints, error) {
	out := &issuance.NameConstraints{}
	var err error
	if p := in.Permitted; p != nil {
		out.PermittedDNSDomains, out.PermittedEmailAddresses, out.PermittedURIDomains = p.DNSDomains, p.EmailAddresses, p.URIDomains
		if out.PermittedIPRanges, err = parseCIDRs("spec.policy.ca.nameConstraints.permitted.ipRanges", p.IPRanges); err != nil {
			return nil, err
		}
	}
	if e := in.Excluded; e != nil {
		out.ExcludedDNSDomains, out.ExcludedEmailAddresses, out.ExcludedURIDomains = e.DNSDomains, e.EmailAddresses, e.URIDomains
		if out.ExcludedIPRanges, err = parseCIDRs("spec.policy.ca.nameConstraints.excluded.ipRanges", e.IPRanges); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// anyMatch reports whether one of the patterns, namespace substituted,
// matches.
func anyMatch(patterns []string, namespace string, match func(string) bool) bool {
	for _, p := range patterns {
		if e, ok := expand(p, namespace); ok && match(e) {
			return true
		}
	}
	return false
}

// allowedList renders the patterns as the requester should read them, with
// their namespace filled in.
func allowedList(patterns []string, namespace string) string {
	if len(patterns) == 0 {
		return " (the policy allows none)"
	}
	shown := make([]string, 0, len(patterns))
	for _, p := range patterns {
		if e, ok := expand(p, namespace); ok {
			shown = append(shown, e)
		}
	}
	return " (allowed: " + quote(shown) + ")"
}

func ptr[T any](v T) *T { return &v }
