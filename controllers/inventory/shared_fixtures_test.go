package inventory

import (
	"github.com/quill-pki/quill/controllers/internal/fixture"
)

// The fixtures the controllers' tests share, under the names these tests
// use.
const (
	testNamespace = fixture.Namespace
)

var (
	testNow = fixture.Now
	newAPI  = fixture.NewAPI
)
