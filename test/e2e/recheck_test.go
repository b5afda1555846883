package e2e

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"

	"sigs.k8s.io/controller-runtime/pkg/client"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/keyusage"
	"github.com/quill-pki/quill/pkg/names"
	"github.com/quill-pki/quill/pkg/policy"
)

var errNoCertificate = errors.New("no PEM certificate")

// ledgerRecheck is what the re-check of the whole ledger found when the
// suite ended (TestMain fails the run on any problem).
var ledgerRecheck struct {
	checked, withPolicy int
	problems            []string
}

// recheckLedger re-checks every certificate the suite's tests had signed,
// read from the ledger through the API server, from the certificate
// alone: its names are valid (names.CheckCertificate), its key usages fit
// its key (keyusage.Check), and, when its issuer still exists, that
// issuer's policy and the template the ledger names allow what the
// certificate says. The gate decided on the request; this shows that what
// was signed is what the gate allowed.
func recheckLedger(ctx context.Context, c client.Client) {
	var list quillv1.IssuedCertificateList
	if err := c.List(ctx, &list); err != nil {
		ledgerRecheck.problems = append(ledgerRecheck.problems, "listing the ledger: "+err.Error())
		return
	}
	for i := range list.Items {
		e := &list.Items[i]
		ledgerRecheck.checked++
		checked, err := recheckRecord(ctx, c, e)
		if checked {
			ledgerRecheck.withPolicy++
		}
		if err != nil {
			ledgerRecheck.problems = append(ledgerRecheck.problems,
				fmt.Sprintf("%s serial %s (%s %s/%s): %v", e.Spec.IssuerRef.ID(), e.Spec.SerialNumber,
					e.Spec.Origin.Kind, e.Spec.Origin.Namespace, e.Spec.Origin.Name, err))
		}
	}
}

// recheckRecord re-checks one ledger record; withPolicy says the issuer's
// policy was applied too (its issuer exists and the certificate went
// through the request gate).
func recheckRecord(ctx context.Context, c client.Client, e *quillv1.IssuedCertificate) (withPolicy bool, err error) {
	block, _ := pem.Decode([]byte(e.Spec.Certificate))
	if block == nil {
		return false, errNoCertificate
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return false, err
	}
	if serial, ok := new(big.Int).SetString(e.Spec.SerialNumber, 16); !ok || serial.Cmp(cert.SerialNumber) != 0 {
		return false, fmt.Errorf("the ledger's serial is not the certificate's (%x)", cert.SerialNumber)
	}
	if err := names.CheckCertificate(cert); err != nil {
		return false, fmt.Errorf("names: %w", err)
	}
	if err := keyusage.Check(cert.PublicKey, cert.KeyUsage, cert.IsCA); err != nil {
		return false, fmt.Errorf("key usage table: %w", err)
	}
	if e.Spec.Origin.Kind != quillv1.OriginKindCertificateRequest && e.Spec.Origin.Kind != quillv1.OriginKindCertificateSigningRequest {
		return false, nil // the issuer's own responder certificate: no request, no policy
	}
	k := e.Spec.IssuerRef.ID()
	iss := k.NewObject()
	if err := c.Get(ctx, k.NamespacedName(), iss); err != nil {
		return false, client.IgnoreNotFound(err) // deleted by its test: names and usages were checked
	}
	var tmpl *policy.Template
	if name := e.Spec.Template; name != "" {
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
	if err := policy.Recheck(cert, iss.GetSpec().Policy, tmpl, e.Spec.Template, e.Spec.Origin.Namespace); err != nil {
		return true, fmt.Errorf("%s: %w", k, err)
	}
	return true, nil
}
