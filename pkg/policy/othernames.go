package policy

import (
	"errors"
	"fmt"
	"strings"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/names"
)

// validateOtherNames reports type-ids that are no object identifier and
// listed twice, which the schema cannot see in every form ("1.2" and
// "1.02" differ as strings).
func validateOtherNames(allowed []quillv1.OtherNamePolicy) error {
	var errs []error
	seen := map[string]bool{}
	for _, a := range allowed {
		oid, err := names.ParseOID(a.TypeID)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %w", errInvalidPolicy, RuleOtherNames, err))
			continue
		}
		if seen[oid.String()] {
			errs = append(errs, fmt.Errorf("%w: %s lists type-id %s twice", errInvalidPolicy, RuleOtherNames, oid))
		}
		seen[oid.String()] = true
		for _, v := range a.Values {
			if strings.TrimSpace(v) == "" {
				errs = append(errs, fmt.Errorf("%w: %s: type-id %s has an empty value pattern", errInvalidPolicy, RuleOtherNames, oid))
			}
		}
	}
	return errors.Join(errs...)
}

// checkOtherNames allows each of the CSR's otherNames only when an entry
// of allowedOtherNames has its type-id and a value pattern that matches
// (namespace substituted, "*" not crossing "@", case ignored); with no
// policy or no entry every otherName is refused (see Evaluate). The
// allowed ones go into the decision, for issuance.Request.OtherNames.
func checkOtherNames(p *quillv1.RequestPolicy, req Request, dec *Decision) error {
	others, err := names.OtherNamesOfRequest(req.CSR)
	if err != nil {
		// names.Check already read them; this cannot fail after it.
		return deny(RuleNameSyntax, "%v", err)
	}
	for _, o := range others {
		if p == nil {
			return deny(RuleOtherNames, "otherName %s is not allowed: this issuer has no policy, and otherNames are signed only when spec.policy.allowedOtherNames allows them", o)
		}
		var patterns []string
		for _, a := range p.AllowedOtherNames {
			if oid, err := names.ParseOID(a.TypeID); err == nil && oid.Equal(o.TypeID) {
				patterns = a.Values
				break
			}
		}
		if patterns == nil {
			return deny(RuleOtherNames, "otherName type %s is not allowed%s", o.TypeID, allowedTypes(p.AllowedOtherNames))
		}
		if !anyMatch(patterns, req.Namespace, func(pat string) bool {
			return matchGlob(strings.ToLower(pat), strings.ToLower(o.Value), '@')
		}) {
			return deny(RuleOtherNames, "otherName %s is not allowed%s", o, allowedList(patterns, req.Namespace))
		}
		dec.OtherNames = append(dec.OtherNames, o)
	}
	return nil
}

func allowedTypes(allowed []quillv1.OtherNamePolicy) string {
	if len(allowed) == 0 {
		return " (the policy allows no otherName type)"
	}
	ids := make([]string, len(allowed))
	for i, a := range allowed {
		ids[i] = a.TypeID
	}
	return " (allowed types: " + quote(ids) + ")"
}
