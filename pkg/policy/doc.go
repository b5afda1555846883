// Package policy decides whether an issuer may sign a request: the
// certificate template the request selects (built-in or QuillTemplate) and
// the issuer's spec.policy. It is pure: the controller hands it the parsed
// CSR, the request's properties, the issuer's spec and the resolved
// template, and gets back either a Decision (what Quill adds to the
// certificate: a path length, name constraints) or a *Denial naming the
// rule that refused. A denial is final: the request must change.
//
// Names come first: every name the CSR carries must pass pkg/names, with
// or without a policy, before any pattern is matched, because a pattern
// such as "**.{namespace}.svc" only means what it says on host names. The
// subject is judged as encoded, attribute by attribute (every common name,
// every emailAddress, every attribute the policy does not know), never
// through pkix.Name, which keeps only the last common name. otherNames
// (a UPN, say) are signed only when spec.policy.allowedOtherNames lists
// their type-id with a matching value, never without a policy; the allowed
// ones are the Decision's OtherNames, which issuance.Sign requires.
//
// A request that asked for no duration is issued for the lowest
// maxDuration of template and policy when the issuer's default is longer
// (Decision.Duration, with a note); an explicit duration over a maximum is
// refused, never shortened.
//
// Nothing here is switched silently. A request that does not fit its
// template is refused, never signed under another template or with other
// usages; the only things Quill adds are restrictions the requester could
// not ask for through cert-manager (a CA's path length and name
// constraints), and each is reported as a note.
package policy
