package ceremony

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"slices"
	"testing"
)

func TestParseSubject(t *testing.T) {
	t.Parallel()
	oidCN := asn1.ObjectIdentifier{2, 5, 4, 3}
	oidO := asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOU := asn1.ObjectIdentifier{2, 5, 4, 11}
	tests := []struct {
		name string
		in   string
		// want is the encoded RDN sequence, first RDN first, as type=value.
		want    [][]string
		wantStr string
	}{
		{name: "cn-and-o", in: "CN=Example Root,O=Example", want: [][]string{{"O=Example"}, {"CN=Example Root"}}, wantStr: "CN=Example Root,O=Example"},
		{name: "spaces-around-parts", in: " CN = Example Root , O = Example ", want: [][]string{{"O=Example"}, {"CN=Example Root"}}},
		{name: "escaped-comma", in: `CN=Example\, Inc. Root,O=Example`, want: [][]string{{"O=Example"}, {"CN=Example, Inc. Root"}}},
		{name: "hex-escape", in: `CN=M\C3\BCller CA`, want: [][]string{{"CN=Müller CA"}}},
		{name: "escaped-trailing-space", in: `CN=Root\ `, want: [][]string{{"CN=Root "}}},
		{name: "multi-valued-rdn", in: "CN=Root+OU=PKI,O=Example", want: [][]string{{"O=Example"}, {"CN=Root", "OU=PKI"}}},
		{name: "escaped-plus", in: `CN=Root\+1`, want: [][]string{{"CN=Root+1"}}},
		{name: "keyword-case", in: "cn=Root,o=Example", want: [][]string{{"O=Example"}, {"CN=Root"}}},
		{name: "dotted-oid", in: "2.5.4.3=Root", want: [][]string{{"CN=Root"}}},
		{name: "country", in: "CN=Root,C=DE", want: [][]string{{"C=DE"}, {"CN=Root"}}, wantStr: "CN=Root,C=DE"},
	}
	names := map[string]string{oidCN.String(): "CN", oidO.String(): "O", oidOU.String(): "OU", "2.5.4.6": "C"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			der, err := ParseSubject(tt.in)
			if err != nil {
				t.Fatalf("ParseSubject(%q): %v", tt.in, err)
			}
			var seq pkix.RDNSequence
			if rest, err := asn1.Unmarshal(der, &seq); err != nil || len(rest) > 0 {
				t.Fatalf("the result is not one Name: %v", err)
			}
			var got [][]string
			for _, rdn := range seq {
				var set []string
				for _, ava := range rdn {
					set = append(set, names[ava.Type.String()]+"="+ava.Value.(string))
				}
				// DER sorts the members of a multi-valued RDN.
				slices.Sort(set)
				got = append(got, set)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got RDNs %q, want %q", got, tt.want)
			}
			for i := range got {
				if len(got[i]) != len(tt.want[i]) {
					t.Fatalf("got RDNs %q, want %q", got, tt.want)
				}
				for j := range got[i] {
					if got[i][j] != tt.want[i][j] {
						t.Fatalf("got RDNs %q, want %q", got, tt.want)
					}
				}
			}
			if tt.wantStr != "" {
				if s := subjectString(der); s != tt.wantStr {
					t.Errorf("the name reads %q, want %q", s, tt.wantStr)
				}
			}
		})
	}
}

func TestParseSubjectIA5Attributes(t *testing.T) {
	t.Parallel()
	der, err := ParseSubject("emailAddress=pki@example.com,DC=example,CN=Root")
	if err != nil {
		t.Fatal(err)
	}
	var seq []asn1.RawValue
	if _, err := asn1.Unmarshal(der, &seq); err != nil {
		t.Fatal(err)
	}
	// The first two RDNs (CN is last in the string, first encoded) are DC
	// and emailAddress; both must be IA5String.
	for _, rdn := range seq[1:] {
		var set []struct {
			Type  asn1.ObjectIdentifier
			Value asn1.RawValue
		}
		if _, err := asn1.UnmarshalWithParams(rdn.FullBytes, &set, "set"); err != nil {
			t.Fatal(err)
		}
		if set[0].Value.Tag != asn1.TagIA5String {
			t.Errorf("%s is encoded with tag %d, want IA5String", set[0].Type, set[0].Value.Tag)
		}
	}
}

func TestParseSubjectErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
	}{
		{name: "empty", in: "  "},
		{name: "no-equals", in: "Example Root"},
		{name: "unknown-keyword", in: "XX=Root"},
		{name: "empty-value", in: "CN=,O=Example"},
		{name: "empty-rdn", in: "CN=Root,,O=Example"},
		{name: "trailing-comma", in: "CN=Root,"},
		{name: "country-name-spelt-out", in: "CN=Root,C=Germany"},
		{name: "country-lower-case", in: "CN=Root,C=de"},
		{name: "lone-backslash", in: `CN=Root\`},
		{name: "unknown-escape", in: `CN=Ro\ot`},
		{name: "hex-ber-value", in: "CN=#0403526f6f74"},
		{name: "non-ascii-domain-component", in: "DC=bücher,CN=Root"},
		{name: "invalid-utf8", in: `CN=\FF\FE`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseSubject(tt.in)
			if !errors.Is(err, errBadSubject) {
				t.Fatalf("ParseSubject(%q) = %v, want an invalid subject error", tt.in, err)
			}
		})
	}
}
