module github.com/quill-pki/quill/hack/bench/mldsa

go 1.27

require github.com/cloudflare/circl v1.6.5

require golang.org/x/sys v0.47.0 // indirect
