package ceremony

import (
	"errors"
	"testing"
	"time"
)

func TestParseValidity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr bool
	}{
		{name: "hours", in: "87600h", want: 87600 * time.Hour},
		{name: "days", in: "3650d", want: 3650 * 24 * time.Hour},
		{name: "mixed-units", in: "1h30m", want: 90 * time.Minute},
		{name: "zero", in: "0h", wantErr: true},
		{name: "negative", in: "-5h", wantErr: true},
		{name: "zero-days", in: "0d", wantErr: true},
		{name: "fractional-days", in: "1.5d", wantErr: true},
		{name: "years-unsupported", in: "10y", wantErr: true},
		{name: "too-many-days", in: "1000000d", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseValidity(tt.in)
			if tt.wantErr {
				if !errors.Is(err, errBadProfile) {
					t.Fatalf("ParseValidity(%q) = %v, %v; want an error", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseValidity(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestDNSConstraints(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{name: "domain", in: "example.com", want: "example.com"},
		{name: "subdomains-only", in: ".example.com", want: ".example.com"},
		{name: "upper-case-folded", in: " Example.COM ", want: "example.com"},
		{name: "single-label", in: "internal", want: "internal"},
		{name: "wildcard", in: "*.example.com", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "only-dot", in: ".", wantErr: true},
		{name: "empty-label", in: "example..com", wantErr: true},
		{name: "leading-hyphen", in: "-example.com", wantErr: true},
		{name: "underscore", in: "ex_ample.com", wantErr: true},
		{name: "label-too-long", in: string(make([]byte, 64)) + ".com", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := dnsConstraints([]string{tt.in})
			if tt.wantErr {
				if !errors.Is(err, errBadProfile) {
					t.Fatalf("dnsConstraints(%q) = %v, %v; want an error", tt.in, got, err)
				}
				return
			}
			if err != nil || len(got) != 1 || got[0] != tt.want {
				t.Fatalf("dnsConstraints(%q) = %v, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}
