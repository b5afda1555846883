package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/quill-pki/quill/pkg/ocspserver"
)

// quillPath is where Quill's responder is mounted, as the controller would.
const quillPath = "/ocsp/QuillClusterIssuer/bench/"

// serveQuill runs Quill's responder for the data in dir on a loopback port
// until the process is killed; it prints the address on stdout once it
// listens. It runs in its own process, as openssl ocsp does, so neither
// responder shares a Go runtime with the load generator.
func serveQuill(dir string) error {
	ca, cert, key, err := loadSigner(dir)
	if err != nil {
		return err
	}
	src, err := readIndex(filepath.Join(dir, fileIndex))
	if err != nil {
		return err
	}
	r, err := ocspserver.New(ocspserver.Config{
		Issuer: ca, Source: src, Key: key, ResponderCert: cert, Validity: time.Hour,
		OnError: func(err error) { fmt.Fprintln(os.Stderr, "quill responder:", err) },
	})
	if err != nil {
		return err
	}
	mux := ocspserver.NewMux()
	if err := mux.Handle(quillPath, r); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	return ocspserver.NewServer("", mux).Serve(ln)
}
