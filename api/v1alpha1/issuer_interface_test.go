package v1alpha1

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestIssuerID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		issuer     GenericIssuer
		wantKind   string
		wantString string
		wantHome   string
	}{
		{name: "issuer", issuer: &QuillIssuer{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "ca"}},
			wantKind: IssuerKind, wantString: "QuillIssuer/team-a/ca", wantHome: "team-a"},
		{name: "cluster-issuer", issuer: &QuillClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "root"}},
			wantKind: ClusterIssuerKind, wantString: "QuillClusterIssuer/root", wantHome: "quill-system"},
		{name: "cluster-issuer-ignores-a-namespace", issuer: &QuillClusterIssuer{ObjectMeta: metav1.ObjectMeta{Namespace: "stray", Name: "root"}},
			wantKind: ClusterIssuerKind, wantString: "QuillClusterIssuer/root", wantHome: "quill-system"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id := tt.issuer.ID()
			if id.Kind != tt.wantKind || id.String() != tt.wantString {
				t.Errorf("ID = %+v (%s), want kind %s, %s", id, id, tt.wantKind, tt.wantString)
			}
			if got := id.HomeNamespace("quill-system"); got != tt.wantHome {
				t.Errorf("HomeNamespace = %q, want %q", got, tt.wantHome)
			}
			if back, ok := ParseIssuerID(id.String()); !ok || back != id {
				t.Errorf("ParseIssuerID(%q) = %+v, %v; want %+v", id.String(), back, ok, id)
			}
			if got := id.Ref().ID(); got != id {
				t.Errorf("Ref().ID() = %+v, want %+v", got, id)
			}
			if got := IDOf(tt.issuer, types.NamespacedName{Namespace: tt.issuer.GetNamespace(), Name: tt.issuer.GetName()}); got != id {
				t.Errorf("IDOf = %+v, want %+v", got, id)
			}
			obj := id.NewObject()
			if obj == nil || obj.ID().Kind != id.Kind {
				t.Errorf("NewObject = %T, want an object of kind %s", obj, id.Kind)
			}
			if cp := tt.issuer.DeepCopyIssuer(); cp.ID() != id || cp == tt.issuer {
				t.Errorf("DeepCopyIssuer = %+v, want a copy of %+v", cp.ID(), id)
			}
		})
	}
}

func TestParseIssuerIDRefuses(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "QuillIssuer", "QuillIssuer/ca", "QuillIssuer/a/b/c", "QuillClusterIssuer/a/b", "Issuer/a/b", "QuillIssuer//ca"} {
		if id, ok := ParseIssuerID(s); ok {
			t.Errorf("ParseIssuerID(%q) = %+v, want a refusal", s, id)
		}
	}
}

func TestIssuerKindsAndLists(t *testing.T) {
	t.Parallel()
	kinds := IssuerKinds()
	if len(kinds) != 2 || kinds[0].ID().Kind != IssuerKind || kinds[1].ID().Kind != ClusterIssuerKind {
		t.Fatalf("IssuerKinds = %v", kinds)
	}
	l := &QuillIssuerList{Items: []QuillIssuer{{ObjectMeta: metav1.ObjectMeta{Namespace: "n", Name: "a"}}}}
	items := l.Issuers()
	items[0].GetSpec().State = StateDisabled
	if l.Items[0].Spec.State != StateDisabled {
		t.Error("Issuers does not point into the list")
	}
	if (RevocationIssuerRef{Name: "x"}).IDIn("n") != (IssuerID{Kind: IssuerKind, Namespace: "n", Name: "x"}) {
		t.Error("a revocation's issuerRef without a kind does not name a QuillIssuer in its namespace")
	}
	if (RevocationIssuerRef{Name: "x", Kind: ClusterIssuerKind}).IDIn("n") != (IssuerID{Kind: ClusterIssuerKind, Name: "x"}) {
		t.Error("a revocation's cluster issuerRef keeps a namespace")
	}
}
