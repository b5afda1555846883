package controllers

import (
	issuerapi "github.com/cert-manager/issuer-lib/api/v1alpha1"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// rsaPSSOf reports whether obj asks for RSA-PSS signatures, for the
// signature algorithm shown in status.ca.
func rsaPSSOf(obj issuerapi.Issuer) bool {
	var spec *quillv1.IssuerSpec
	switch o := obj.(type) {
	case *quillv1.QuillIssuer:
		spec = &o.Spec
	case *quillv1.QuillClusterIssuer:
		spec = &o.Spec
	}
	return spec != nil && spec.Issuance.RSASignatureScheme == quillv1.RSASignatureSchemePSS
}
