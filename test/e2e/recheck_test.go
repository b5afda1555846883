package e2e

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/keyusage"
	"github.com/quill-pki/quill/pkg/ledger"
	"github.com/quill-pki/quill/pkg/names"
	"github.com/quill-pki/quill/pkg/policy"
)

var errNoCertificate = errors.New("no DER certificate")

// ledgerRecheck is what the re-check of the whole ledger found when the
// suite ended (TestMain fails the run on any problem).
var ledgerRecheck struct {
	checked, withPolicy int
	// notKept counts entries whose certificate the ledger no longer keeps
	// (sealed once its request no longer needed it back): they are
	// counted, not re-checked.
	notKept  int
	problems []string
}

// recheckEntry is one certificate of the ledger, merged from every line
// about it.
type recheckEntry struct {
	issuer quillv1.IssuerID
	entry  *ledger.Entry
}

// recheckLedger re-checks every certificate the suite's tests had signed,
// read from the ledger through the API server (every LedgerSegment, a
// page at a time, and the IssuedCertificates of a ledger not migrated
// yet), from the certificate alone: its names are valid
// (names.CheckCertificate), its key usages fit its key (keyusage.Check),
// and, when its issuer still exists, that issuer's policy and the
// template the ledger names allow what the certificate says. The gate
// decided on the request; this shows that what was signed is what the
// gate allowed. Journals keep every certificate; sealed segments only
// those a request may still need back, so entries without one are
// counted apart, and a ledger of entries none of which can be re-checked
// is a problem.
func recheckLedger(ctx context.Context, c client.Client) {
	problem := func(msg string) { ledgerRecheck.problems = append(ledgerRecheck.problems, msg) }
	all := map[string]*recheckEntry{} // issuer + serial
	add := func(k quillv1.IssuerID, e *ledger.Entry) {
		if e.IsRevocationLine() {
			return
		}
		key := k.String() + "/" + e.Serial
		if have := all[key]; have != nil {
			if len(have.entry.Certificate) == 0 {
				have.entry.Certificate = e.Certificate
			}
			return
		}
		all[key] = &recheckEntry{issuer: k, entry: e}
	}
	for cont := ""; ; {
		var page quillv1.LedgerSegmentList
		if err := c.List(ctx, &page, client.Limit(20), client.Continue(cont)); err != nil {
			problem("listing the ledger segments: " + err.Error())
			return
		}
		for i := range page.Items {
			seg := &page.Items[i]
			k := seg.Spec.IssuerRef.ID()
			if err := ledger.SegmentEntries(seg, func(e *ledger.Entry) error { add(k, e); return nil }); err != nil {
				problem(err.Error())
			}
		}
		if cont = page.Continue; cont == "" {
			break
		}
	}
	var legacy quillv1.IssuedCertificateList
	if err := c.List(ctx, &legacy); err != nil {
		problem("listing the legacy ledger records: " + err.Error())
		return
	}
	for i := range legacy.Items {
		e, err := ledger.EntryOfLegacy(&legacy.Items[i])
		if err != nil {
			problem(err.Error())
			continue
		}
		add(legacy.Items[i].Spec.IssuerRef.ID(), &e)
	}
	for _, r := range all {
		e := r.entry
		if len(e.Certificate) == 0 {
			ledgerRecheck.notKept++
			continue
		}
		ledgerRecheck.checked++
		checked, err := recheckRecord(ctx, c, r.issuer, e)
		if checked {
			ledgerRecheck.withPolicy++
		}
		if err != nil {
			origin := ledger.EntryOrigin{}
			if e.Origin != nil {
				origin = *e.Origin
			}
			problem(fmt.Sprintf("%s serial %s (%s %s/%s): %v", r.issuer, e.Serial, origin.Kind, origin.Namespace, origin.Name, err))
		}
	}
	fmt.Fprintf(os.Stderr, "ledger re-check: %d entries whose certificate the ledger no longer keeps were not re-checked\n", ledgerRecheck.notKept)
	// A run whose tests signed nothing (go test -run of one that does
	// not) has nothing to re-check; a ledger that holds entries but none
	// of their certificates would make this re-check prove nothing.
	if ledgerRecheck.checked == 0 && len(all) > 0 {
		problem(fmt.Sprintf("no certificate to re-check: the ledger holds %d entries and keeps none of their certificates", len(all)))
	}
}

// recheckRecord re-checks one ledger entry of issuer k; withPolicy says
// the issuer's policy was applied too (its issuer exists and the
// certificate went through the request gate).
func recheckRecord(ctx context.Context, c client.Client, k quillv1.IssuerID, e *ledger.Entry) (withPolicy bool, err error) {
	if len(e.Certificate) == 0 {
		return false, errNoCertificate
	}
	cert, err := x509.ParseCertificate(e.Certificate)
	if err != nil {
		return false, err
	}
	if serial, ok := e.SerialInt(); !ok || serial.Cmp(cert.SerialNumber) != 0 {
		return false, fmt.Errorf("the ledger's serial is not the certificate's (%x)", cert.SerialNumber)
	}
	if err := names.CheckCertificate(cert); err != nil {
		return false, fmt.Errorf("names: %w", err)
	}
	if err := keyusage.Check(cert.PublicKey, cert.KeyUsage, cert.IsCA); err != nil {
		return false, fmt.Errorf("key usage table: %w", err)
	}
	if e.Origin == nil || e.Origin.Kind != quillv1.OriginKindCertificateRequest && e.Origin.Kind != quillv1.OriginKindCertificateSigningRequest {
		return false, nil // the issuer's own responder certificate: no request, no policy
	}
	iss := k.NewObject()
	if err := c.Get(ctx, k.NamespacedName(), iss); err != nil {
		return false, client.IgnoreNotFound(err) // deleted by its test: names and usages were checked
	}
	var tmpl *policy.Template
	if name := e.Template; name != "" {
		spec, ok := policy.Builtin(name)
		if !ok {
			var qt quillv1.QuillTemplate
			if err := c.Get(ctx, client.ObjectKey{Name: name}, &qt); err != nil {
				return false, client.IgnoreNotFound(err)
			}
			spec = qt.Spec
		}
		tmpl = &policy.Template{Name: name, Spec: spec}
	}
	if err := policy.Recheck(cert, iss.GetSpec().Policy, tmpl, e.Template, e.Origin.Namespace); err != nil {
		return true, fmt.Errorf("%s: %w", k, err)
	}
	return true, nil
}
