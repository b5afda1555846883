package revocationdata

import (
	"net/url"
	"strings"
	"testing"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// TestIssuerPathRoundTrip: the path the URLs embed in certificates names
// the issuer the router reads back from it, for both kinds.
func TestIssuerPathRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		id           quillv1.IssuerID
		wantOCSP     string
		wantSegments int
	}{
		{name: "issuer", id: quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "team-a", Name: "ca"},
			wantOCSP: "http://q/ocsp/issuer/team-a/ca", wantSegments: 3},
		{name: "cluster-issuer", id: quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: "root"},
			wantOCSP: "http://q/ocsp/clusterissuer/root", wantSegments: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			crlURL, ocspURL := URLs("http://q", tt.id)
			if ocspURL != tt.wantOCSP || crlURL != strings.Replace(tt.wantOCSP, "/ocsp/", "/crl/", 1)+".crl" {
				t.Errorf("URLs = %s, %s", crlURL, ocspURL)
			}
			u, err := url.Parse(ocspURL + "/MEow")
			if err != nil {
				t.Fatal(err)
			}
			id, segments, rest, ok := ParseIssuerPath(strings.TrimPrefix(u.Path, "/ocsp/"))
			if !ok || id != tt.id || segments != tt.wantSegments || rest != "MEow" {
				t.Errorf("ParseIssuerPath = %+v, %d, %q, %v; want %+v, %d, \"MEow\"", id, segments, rest, ok, tt.id, tt.wantSegments)
			}
		})
	}
	for _, bad := range []string{"", "issuer", "issuer/ns", "issuer//ca", "clusterissuer/", "QuillIssuer/ns/ca"} {
		if id, _, _, ok := ParseIssuerPath(bad); ok {
			t.Errorf("ParseIssuerPath(%q) = %+v, want a refusal", bad, id)
		}
	}
}
