package issuance

import (
	"bytes"
	"encoding/pem"
	"testing"
)

func TestSignMustStaple(t *testing.T) {
	t.Parallel()
	a := newCA(t)
	for _, staple := range []bool{false, true} {
		opts := baseOptions()
		opts.MustStaple = staple
		issued := mustSign(t, a, Request{CSR: newCSR(t, withDNS("staple.example"))}, opts)
		found := false
		for _, e := range issued.Certificate.Extensions {
			if e.Id.Equal(mustStapleExtension.Id) {
				found = true
				if e.Critical || !bytes.Equal(e.Value, []byte{0x30, 0x03, 0x02, 0x01, 0x05}) {
					t.Errorf("TLS feature extension critical=%v value % x", e.Critical, e.Value)
				}
			}
		}
		if found != staple {
			t.Errorf("MustStaple=%v: extension present=%v", staple, found)
		}
	}
}

func TestRecall(t *testing.T) {
	t.Parallel()
	a := newCA(t)
	issued := mustSign(t, a, Request{CSR: newCSR(t, withDNS("recall.example"))}, baseOptions())
	leafPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: issued.Certificate.Raw})
	again, err := a.Recall(leafPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.ChainPEM, issued.ChainPEM) || !bytes.Equal(again.CAPEM, issued.CAPEM) {
		t.Error("Recall returned a different bundle than Sign")
	}
	other := newCA(t, withCAKeyAlg(ECDSAP384, 1))
	if _, err := other.Recall(leafPEM); err == nil {
		t.Error("Recall accepted a certificate another CA signed")
	}
	if _, err := a.Recall(append(leafPEM, leafPEM...)); err == nil {
		t.Error("Recall accepted two certificates")
	}
	if _, err := a.Recall([]byte("garbage")); err == nil {
		t.Error("Recall accepted garbage")
	}
}
