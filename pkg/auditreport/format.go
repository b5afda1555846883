package auditreport

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/quill-pki/quill/pkg/ledger"
)

// Format is the report's encoding.
type Format string

const (
	// FormatCSV is RFC 4180 CSV: a header line with Columns, then one
	// record per certificate, CRLF line ends, fields quoted where needed.
	FormatCSV Format = "csv"
	// FormatJSON is one JSON array of objects whose keys are Columns, in
	// that order; "sans" is an array, every other value a string.
	FormatJSON Format = "json"
)

// Formats lists the formats Write accepts.
func Formats() []Format { return []Format{FormatCSV, FormatJSON} }

// Columns are the report's columns, in their fixed order. A column may be
// added at the end in a later version; none is renamed or moved.
var Columns = []string{
	"serial", "subject", "sans", "requester", "namespace", "request_kind", "request", "certificate",
	"template", "issued", "expires", "revocation_reason", "revoked_at", "revoked_by",
}

// Time layouts: issuance is recorded to the microsecond (certificates
// issued within one second keep their order), the rest to the second.
const (
	issuedLayout = "2006-01-02T15:04:05.000000Z07:00"
	timeLayout   = time.RFC3339
)

// Row is one certificate of the report. Its JSON form is the report's JSON
// object; its CSV form is Record.
type Row struct {
	// Serial is the serial number in lowercase hex, as in the ledger.
	Serial  string `json:"serial"`
	Subject string `json:"subject"`
	// SANs are the subject alternative names, each prefixed with its type
	// as OpenSSL prints them: "DNS:", "IP:", "URI:", "email:", and
	// "otherName:<type-id>:" before an otherName's value.
	SANs []string `json:"sans"`
	// Requester is the user who created the request.
	Requester string `json:"requester"`
	// Namespace the request came from; empty for a Kubernetes CSR.
	Namespace string `json:"namespace"`
	// RequestKind is CertificateRequest or CertificateSigningRequest, and
	// Request its name.
	RequestKind string `json:"request_kind"`
	Request     string `json:"request"`
	// Certificate is the cert-manager Certificate behind the request, if
	// any.
	Certificate string `json:"certificate"`
	Template    string `json:"template"`
	// Issued is when Quill signed it (RFC 3339 UTC, microseconds); Expires
	// its notAfter (RFC 3339 UTC).
	Issued  string `json:"issued"`
	Expires string `json:"expires"`
	// RevocationReason (RFC 5280 reason name), RevokedAt (RFC 3339 UTC)
	// and RevokedBy ("QuillRevocation <namespace>/<name>" or the automatic
	// rule) are empty for a certificate not revoked.
	RevocationReason string `json:"revocation_reason"`
	RevokedAt        string `json:"revoked_at"`
	RevokedBy        string `json:"revoked_by"`
}

// RowOf is the report row of a ledger entry (an issued one, with the
// revocation merged in).
func RowOf(e *ledger.Entry) Row {
	r := Row{
		Serial:    e.Serial,
		Subject:   e.Subject,
		SANs:      []string{},
		Requester: e.Requester,
		Template:  e.Template,
		Issued:    time.UnixMicro(e.IssuedAt).UTC().Format(issuedLayout),
		Expires:   time.Unix(e.NotAfter, 0).UTC().Format(timeLayout),
	}
	if o := e.Origin; o != nil {
		r.Namespace, r.RequestKind, r.Request, r.Certificate = o.Namespace, o.Kind, o.Name, o.Certificate
	}
	for _, set := range []struct {
		prefix string
		names  []string
	}{{"DNS:", e.DNSNames}, {"IP:", e.IPAddresses}, {"URI:", e.URIs}, {"email:", e.EmailAddresses}} {
		for _, n := range set.names {
			r.SANs = append(r.SANs, set.prefix+n)
		}
	}
	for _, o := range e.OtherNames {
		r.SANs = append(r.SANs, "otherName:"+o.TypeID+":"+o.Value)
	}
	if rev := e.Revocation; rev != nil {
		r.RevocationReason = string(rev.Reason)
		r.RevokedAt = time.Unix(rev.At, 0).UTC().Format(timeLayout)
		r.RevokedBy = rev.By
	}
	return r
}

// Record is the row's CSV record, in Columns order. The SANs share one
// field, separated by single spaces: no SAN can contain a space (URIs
// percent-encode it; DNS names, IP addresses, the addresses and the
// otherName values Quill signs have none).
func (r Row) Record() []string {
	return []string{
		r.Serial, r.Subject, strings.Join(r.SANs, " "), r.Requester, r.Namespace, r.RequestKind, r.Request, r.Certificate,
		r.Template, r.Issued, r.Expires, r.RevocationReason, r.RevokedAt, r.RevokedBy,
	}
}

// encoder streams rows: begin, any number of rows with a flush after each
// page, end. Its buffer is bounded, so memory does not grow with the
// report.
type encoder interface {
	begin() error
	row(Row) error
	flush() error
	end() error
}

func newEncoder(f Format, w io.Writer) (encoder, error) {
	switch f {
	case FormatCSV:
		cw := csv.NewWriter(w)
		cw.UseCRLF = true
		return &csvEncoder{w: cw}, nil
	case FormatJSON:
		return &jsonEncoder{w: bufio.NewWriter(w)}, nil
	}
	return nil, fmt.Errorf("%w: format %q: use csv or json", ErrInvalid, f)
}

type csvEncoder struct{ w *csv.Writer }

func (e *csvEncoder) begin() error { return e.w.Write(Columns) }

func (e *csvEncoder) row(r Row) error { return e.w.Write(r.Record()) }

func (e *csvEncoder) flush() error {
	e.w.Flush()
	return e.w.Error()
}

func (e *csvEncoder) end() error { return e.flush() }

// jsonEncoder writes the array one object per line, so that the output
// can also be read line by line.
type jsonEncoder struct {
	w    *bufio.Writer
	rows int
}

func (e *jsonEncoder) begin() error {
	_, err := e.w.WriteString("[")
	return err
}

func (e *jsonEncoder) row(r Row) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	sep := ",\n"
	if e.rows == 0 {
		sep = "\n"
	}
	e.rows++
	if _, err := e.w.WriteString(sep); err != nil {
		return err
	}
	_, err = e.w.Write(b)
	return err
}

func (e *jsonEncoder) flush() error { return e.w.Flush() }

func (e *jsonEncoder) end() error {
	closing := "]\n"
	if e.rows > 0 {
		closing = "\n]\n"
	}
	if _, err := e.w.WriteString(closing); err != nil {
		return err
	}
	return e.w.Flush()
}
