package trustbundle

import (
	"github.com/quill-pki/quill/controllers/internal/fixture"
)

// The fixtures the controllers' tests share, under the names these tests
// use.
const (
	testNamespace            = fixture.Namespace
	clusterResourceNamespace = fixture.ClusterResourceNamespace
)

var (
	newAPI           = fixture.NewAPI
	withCN           = fixture.WithCN
	issuedBy         = fixture.IssuedBy
	newCA            = fixture.NewCA
	parseChain       = fixture.ParseChain
	caSecret         = fixture.CASecret
	newIssuer        = fixture.NewIssuer
	newClusterIssuer = fixture.NewClusterIssuer
)

type (
	testCA = fixture.CA
)
