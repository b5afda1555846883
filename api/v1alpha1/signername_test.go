package v1alpha1

import (
	"errors"
	"testing"
)

func TestParseSignerName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		signerName string
		wantID     IssuerID
		wantOurs   bool
		wantErr    bool
	}{
		{name: "cluster-issuer", signerName: "quillclusterissuers.quill.dev/root",
			wantID: IssuerID{Kind: ClusterIssuerKind, Name: "root"}, wantOurs: true},
		{name: "cluster-issuer-dotted-name", signerName: "quillclusterissuers.quill.dev/root.example",
			wantID: IssuerID{Kind: ClusterIssuerKind, Name: "root.example"}, wantOurs: true},
		{name: "issuer", signerName: "quillissuers.quill.dev/team-a.ca",
			wantID: IssuerID{Kind: IssuerKind, Namespace: "team-a", Name: "ca"}, wantOurs: true},
		{name: "issuer-dotted-name", signerName: "quillissuers.quill.dev/team-a.ca.v2",
			wantID: IssuerID{Kind: IssuerKind, Namespace: "team-a", Name: "ca.v2"}, wantOurs: true},
		{name: "issuer-without-namespace", signerName: "quillissuers.quill.dev/ca", wantOurs: true, wantErr: true},
		{name: "issuer-empty-name", signerName: "quillissuers.quill.dev/team-a.", wantOurs: true, wantErr: true},
		{name: "issuer-empty-namespace", signerName: "quillissuers.quill.dev/.ca", wantOurs: true, wantErr: true},
		{name: "issuer-extra-slash", signerName: "quillissuers.quill.dev/team-a.ca/x", wantOurs: true, wantErr: true},
		{name: "cluster-issuer-empty", signerName: "quillclusterissuers.quill.dev/", wantOurs: true, wantErr: true},
		{name: "cluster-issuer-upper-case", signerName: "quillclusterissuers.quill.dev/Root", wantOurs: true, wantErr: true},
		{name: "kubernetes-signer", signerName: "kubernetes.io/kube-apiserver-client"},
		{name: "cert-manager-signer", signerName: "issuers.cert-manager.io/team-a.ca"},
		{name: "prefix-without-slash", signerName: "quillissuers.quill.dev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id, ours, err := ParseSignerName(tt.signerName)
			if ours != tt.wantOurs || (err != nil) != tt.wantErr || id != tt.wantID {
				t.Fatalf("ParseSignerName(%q) = %+v, %v, %v; want %+v, %v, error %v", tt.signerName, id, ours, err, tt.wantID, tt.wantOurs, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidSignerName) {
				t.Errorf("error %v does not wrap ErrInvalidSignerName", err)
			}
			if err == nil && ours {
				if back := id.SignerName(); back != tt.signerName {
					t.Errorf("SignerName() = %q, want %q", back, tt.signerName)
				}
			}
		})
	}
}
