package issuance

import (
	"github.com/quill-pki/quill/controllers/internal/fixture"
)

// The fixtures the controllers' tests share, under the names these tests
// use.
const (
	testNamespace            = fixture.Namespace
	clusterResourceNamespace = fixture.ClusterResourceNamespace
	day                      = fixture.Day
)

var (
	testNow             = fixture.Now
	newAPI              = fixture.NewAPI
	withCN              = fixture.WithCN
	withValidity        = fixture.WithValidity
	asLeaf              = fixture.AsLeaf
	withCAKeyUsage      = fixture.WithCAKeyUsage
	issuedBy            = fixture.IssuedBy
	newCA               = fixture.NewCA
	parseCert           = fixture.ParseCert
	parseChain          = fixture.ParseChain
	caSecret            = fixture.CASecret
	withBootstrap       = fixture.WithBootstrap
	withMaxDuration     = fixture.WithMaxDuration
	withDefaultDuration = fixture.WithDefaultDuration
	withCRL             = fixture.WithCRL
	newIssuer           = fixture.NewIssuer
	newClusterIssuer    = fixture.NewClusterIssuer
)

type (
	testCA       = fixture.CA
	issuerOption = fixture.IssuerOption
)
