package policy

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// builtins are the templates every issuer may list without a QuillTemplate
// object, modelled on a managed private CA's end-entity, TLS, code-signing,
// OCSP-signing and subordinate-CA templates.
var builtins = map[string]quillv1.TemplateSpec{
	quillv1.TemplateEndEntity: {
		Description:  "TLS server and client authentication",
		KeyUsages:    []quillv1.KeyUsage{"digital signature", "key encipherment", "key agreement"},
		ExtKeyUsages: []quillv1.KeyUsage{"server auth", "client auth"},
	},
	quillv1.TemplateServerAuth: {
		Description:  "TLS server authentication only",
		KeyUsages:    []quillv1.KeyUsage{"digital signature", "key encipherment", "key agreement"},
		ExtKeyUsages: []quillv1.KeyUsage{"server auth"},
	},
	quillv1.TemplateClientAuth: {
		Description:  "TLS client authentication only",
		KeyUsages:    []quillv1.KeyUsage{"digital signature", "key encipherment", "key agreement"},
		ExtKeyUsages: []quillv1.KeyUsage{"client auth"},
	},
	quillv1.TemplateCodeSigning: {
		Description:  "code signing only",
		KeyUsages:    []quillv1.KeyUsage{"digital signature", "content commitment"},
		ExtKeyUsages: []quillv1.KeyUsage{"code signing"},
	},
	quillv1.TemplateOCSPSigning: {
		Description:  "OCSP response signing only (a delegated OCSP responder)",
		KeyUsages:    []quillv1.KeyUsage{"digital signature", "content commitment"},
		ExtKeyUsages: []quillv1.KeyUsage{"ocsp signing"},
		// RFC 6960 responders are rotated often; a long-lived delegated
		// responder certificate cannot itself be revoked usefully.
		MaxDuration: &metav1.Duration{Duration: 90 * 24 * time.Hour},
	},
	quillv1.TemplateSubordinateCAPathLen0: subordinateCA(0),
	quillv1.TemplateSubordinateCAPathLen1: subordinateCA(1),
	quillv1.TemplateSubordinateCAPathLen2: subordinateCA(2),
	quillv1.TemplateSubordinateCAPathLen3: subordinateCA(3),
}

func subordinateCA(pathLen int) quillv1.TemplateSpec {
	return quillv1.TemplateSpec{
		Description: "subordinate CA",
		KeyUsages:   []quillv1.KeyUsage{"digital signature", "cert sign", "crl sign"},
		IsCA:        true,
		MaxPathLen:  &pathLen,
	}
}

// Builtin returns the built-in template of that name, or false.
func Builtin(name string) (quillv1.TemplateSpec, bool) {
	t, ok := builtins[name]
	if !ok {
		return quillv1.TemplateSpec{}, false
	}
	return *t.DeepCopy(), true
}

// BuiltinNames lists the built-in template names, for documentation and
// error messages.
func BuiltinNames() []string {
	return []string{
		quillv1.TemplateEndEntity, quillv1.TemplateServerAuth, quillv1.TemplateClientAuth,
		quillv1.TemplateCodeSigning, quillv1.TemplateOCSPSigning,
		quillv1.TemplateSubordinateCAPathLen0, quillv1.TemplateSubordinateCAPathLen1,
		quillv1.TemplateSubordinateCAPathLen2, quillv1.TemplateSubordinateCAPathLen3,
	}
}
