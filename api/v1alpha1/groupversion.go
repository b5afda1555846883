package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of Quill's issuers.
	GroupVersion = schema.GroupVersion{Group: "quill.dev", Version: "v1alpha1"}

	// SchemeBuilder registers Quill's types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds Quill's types to a scheme; callers building a
	// controller manager or a client use it once at start-up.
	AddToScheme = SchemeBuilder.AddToScheme
)
