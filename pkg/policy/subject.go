package policy

import (
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"strings"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
	"github.com/quill-pki/quill/pkg/names"
)

// Rules of names and subjects, as named in denials.
const (
	// RuleNameSyntax refuses a name that is not a valid host name, IP
	// address, URI or email address (pkg/names), whatever the policy.
	RuleNameSyntax = "name syntax"
	// RuleSubjectAttributes refuses a subject attribute the policy does not
	// judge and does not allow.
	RuleSubjectAttributes = "spec.policy.allowedSubjectAttributes"
)

// allowedSubjectAttributes is the issuer's allow-list of subject attribute
// types beyond those the policy judges (spec.policy.allowedSubjectAttributes).
// A nil policy allows nothing more.
func allowedSubjectAttributes(p *quillv1.RequestPolicy) []string {
	if p == nil {
		return nil
	}
	return p.AllowedSubjectAttributes
}

// Attribute types a policy knows without an allow-list. The common name
// and emailAddress are names, judged one by one against commonNames and
// emailAddresses. The others are those a cert-manager Certificate's
// spec.subject can set: O, OU, C, ST and L are held by spec.policy.subject
// when it lists them; street, postalCode and serialNumber describe the
// subject and are read as a name by no verifier Quill knows.
var (
	oidCommonName   = names.OIDCommonName
	oidEmailAddress = names.OIDEmailAddress
	knownAttributes = []asn1.ObjectIdentifier{
		{2, 5, 4, 5},  // serialNumber
		{2, 5, 4, 6},  // C
		{2, 5, 4, 7},  // L
		{2, 5, 4, 8},  // ST
		{2, 5, 4, 9},  // street
		{2, 5, 4, 10}, // O
		{2, 5, 4, 11}, // OU
		{2, 5, 4, 17}, // postalCode
	}
)

// parseAttributeAllowList reads an allow-list of attribute types (names or
// dotted OIDs; see names.ParseAttributeType). The common name and
// emailAddress cannot be listed: they are names, and policy judges each
// one of them.
func parseAttributeAllowList(list []string) ([]asn1.ObjectIdentifier, error) {
	out := make([]asn1.ObjectIdentifier, 0, len(list))
	var errs []error
	for _, s := range list {
		oid, err := names.ParseAttributeType(s)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%w: %s: %w", errInvalidPolicy, RuleSubjectAttributes, err))
		case oid.Equal(oidCommonName) || oid.Equal(oidEmailAddress):
			errs = append(errs, fmt.Errorf("%w: %s: %q is a name that policy judges (spec.policy.commonNames, spec.policy.emailAddresses) and cannot be allowed wholesale",
				errInvalidPolicy, RuleSubjectAttributes, s))
		default:
			out = append(out, oid)
		}
	}
	return out, errors.Join(errs...)
}

// checkSubjectNames judges every attribute of the subject as encoded, not
// the one pkix.Name keeps: a CSR may carry several common names, hide one
// in a multi-valued RDN, or name someone in an emailAddress attribute, and
// a relying party may read any of them. Each common name must be one of
// the request's SANs or allowed by commonNames, each emailAddress allowed
// by emailAddresses, and any other attribute known (knownAttributes) or
// allow-listed.
func checkSubjectNames(p *quillv1.RequestPolicy, req Request, allowList []string) error {
	subject, err := names.SubjectOfRequest(req.CSR)
	if err != nil {
		return deny(RuleNameSyntax, "%v", err)
	}
	allowed, err := parseAttributeAllowList(allowList)
	if err != nil {
		return err
	}
	sans := requestSANs(req)
	for _, a := range subject.Attributes() {
		switch {
		case a.Type.Equal(oidCommonName):
			cn := a.String()
			if slices.ContainsFunc(sans, func(s string) bool { return strings.EqualFold(s, cn) }) {
				continue
			}
			if anyMatch(p.CommonNames, req.Namespace, func(pat string) bool { return matchGlob(pat, cn, 0) }) {
				continue
			}
			return deny(RuleCommonNames, "common name %q in the subject %q is neither one of the request's subject alternative names nor allowed%s",
				cn, subject.String(), allowedList(p.CommonNames, req.Namespace))
		case a.Type.Equal(oidEmailAddress):
			if !emailAllowed(p, req.Namespace, a.String()) {
				return deny(RuleEmails, "emailAddress %q in the subject %q is not allowed%s",
					a.String(), subject.String(), allowedList(p.EmailAddresses, req.Namespace))
			}
		case slices.ContainsFunc(knownAttributes, a.Type.Equal), slices.ContainsFunc(allowed, a.Type.Equal):
		default:
			return deny(RuleSubjectAttributes, "subject attribute %s in %q is not one this issuer's policy judges or allows; remove it from the subject, or have the issuer list it in %s if no relying party reads it as a name",
				names.AttributeName(a.Type), subject.String(), RuleSubjectAttributes)
		}
	}
	return nil
}

// requestSANs lists the request's SANs as text, for comparison with a
// common name.
func requestSANs(req Request) []string {
	sans := slices.Clone(req.CSR.DNSNames)
	sans = append(sans, req.CSR.EmailAddresses...)
	for _, ip := range req.CSR.IPAddresses {
		sans = append(sans, ip.String())
	}
	for _, u := range req.CSR.URIs {
		sans = append(sans, u.String())
	}
	return sans
}

func emailAllowed(p *quillv1.RequestPolicy, namespace, e string) bool {
	return anyMatch(p.EmailAddresses, namespace, func(pat string) bool {
		return matchGlob(strings.ToLower(pat), strings.ToLower(e), '@')
	})
}
