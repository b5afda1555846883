package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // CertID hashes as clients send them
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"
)

// certID holds what every request about the benchmark CA repeats.
type certID struct{ nameHash, keyHash []byte }

func newCertID(ds *dataset) certID {
	var spki struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(ds.ca.RawSubjectPublicKeyInfo, &spki); err != nil {
		panic(err)
	}
	n := sha1.Sum(ds.ca.RawSubject)            //nolint:gosec
	k := sha1.Sum(spki.PublicKey.RightAlign()) //nolint:gosec
	return certID{nameHash: n[:], keyHash: k[:]}
}

// request encodes an OCSP request for serial, with an RFC 8954 nonce of
// 16 random octets when nonce is set (as openssl ocsp sends by default).
func (c certID) request(serial *big.Int, nonce bool) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26})
							b.AddASN1NULL()
						})
						b.AddASN1OctetString(c.nameHash)
						b.AddASN1OctetString(c.keyHash)
						b.AddASN1BigInt(serial)
					})
				})
			})
			if nonce {
				n := make([]byte, 16)
				_, _ = rand.Read(n)
				b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2})
							b.AddASN1(cbasn1.OCTET_STRING, func(b *cryptobyte.Builder) { b.AddASN1OctetString(n) })
						})
					})
				})
			}
		})
	})
	return b.BytesOrPanic()
}

// requestPool is n requests about serials drawn at random: issued ones (a
// tenth of them revoked) and, one in a hundred, never-issued ones.
func requestPool(ds *dataset, id certID, n int, nonce bool) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		s := ds.serials[mrand.IntN(len(ds.serials))]
		if i%100 == 99 {
			s = ds.unknown[mrand.IntN(len(ds.unknown))]
		}
		out[i] = id.request(s, nonce)
	}
	return out
}

// checkTarget sends a good, a revoked and an unknown request, with and
// without nonce, and checks each answer verifies against the CA and says
// what the data says.
func checkTarget(client *http.Client, url string, ds *dataset, id certID) error {
	cases := []struct {
		serial *big.Int
		want   int
	}{{ds.serials[1], ocsp.Good}, {ds.serials[0], ocsp.Revoked}, {ds.unknown[0], ocsp.Unknown}}
	for _, c := range cases {
		for _, nonce := range []bool{false, true} {
			body, err := post(client, url, id.request(c.serial, nonce))
			if err != nil {
				return err
			}
			resp, err := ocsp.ParseResponse(body, ds.ca)
			if err != nil {
				return fmt.Errorf("serial %s: %w", c.serial.Text(16), err)
			}
			if resp.Status != c.want || resp.SerialNumber.Cmp(c.serial) != 0 {
				return fmt.Errorf("serial %s: status %d, want %d", c.serial.Text(16), resp.Status, c.want)
			}
		}
	}
	return nil
}

var errNotSuccessful = errors.New("not a successful OCSP response")

func post(client *http.Client, url string, der []byte) ([]byte, error) {
	resp, err := client.Post(url, "application/ocsp-request", bytes.NewReader(der))
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if !successful(body) {
		return nil, errNotSuccessful
	}
	return body, nil
}

// successful reports whether body starts as a successful OCSPResponse: a
// SEQUENCE whose first element is ENUMERATED 0. Full verification is done
// by checkTarget; this keeps the load generator's own cost small and equal
// for both responders.
func successful(body []byte) bool {
	s := cryptobyte.String(body)
	var seq cryptobyte.String
	var status int
	return s.ReadASN1(&seq, cbasn1.SEQUENCE) && seq.ReadASN1Enum(&status) && status == 0
}

func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        conns * 2,
			MaxIdleConnsPerHost: conns * 2,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		},
	}
}

// result is one measured run.
type result struct {
	completed int
	errors    int
	firstErr  error
	window    time.Duration
	lat       []time.Duration
	// serverCPU is the responder's CPU time over the whole run (warm-up
	// included), machineCPU the busy time of the whole machine.
	serverCPU, machineCPU time.Duration
	total                 int           // requests sent over the whole run
	wall                  time.Duration // length of the whole run
}

// cpuPerReq is the responder's CPU time per request over the whole run.
func (r result) cpuPerReq() string {
	if r.total == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f µs", float64(r.serverCPU)/float64(time.Microsecond)/float64(r.total))
}

// busyCores is the average number of the machine's cores busy during the
// run, with everything: responder, load generator and other processes.
func (r result) busyCores() string {
	return fmt.Sprintf("%.2f", r.machineCPU.Seconds()/r.wall.Seconds())
}

func (r result) rate() float64 { return float64(r.completed) / r.window.Seconds() }

func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	s := slices.Clone(r.lat)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.999999) - 1 // nearest rank
	return s[min(max(i, 0), len(s)-1)]
}

// closedLoop has conc clients send requests back to back on keep-alive
// connections; only requests that start after warmup and finish before the
// end of the window count.
func closedLoop(url string, reqs [][]byte, conc int, warmup, window time.Duration) result {
	client := newClient(conc)
	defer client.CloseIdleConnections()
	var next atomic.Int64
	start := time.Now()
	measureFrom, measureTo := start.Add(warmup), start.Add(warmup+window)
	results := make([]result, conc)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			res := &results[w]
			for {
				t0 := time.Now()
				if t0.After(measureTo) {
					return
				}
				_, err := post(client, url, reqs[int(next.Add(1))%len(reqs)])
				t1 := time.Now()
				if t0.Before(measureFrom) || t1.After(measureTo) {
					continue
				}
				if err != nil {
					res.errors++
					if res.firstErr == nil {
						res.firstErr = err
					}
					continue
				}
				res.completed++
				res.lat = append(res.lat, t1.Sub(t0))
			}
		})
	}
	wg.Wait()
	res := merge(results, window)
	res.total = int(next.Load())
	return res
}

// fixedRate sends rate requests per second for window (after warmup at the
// same rate) from a pool of workers. Latency runs from when a request was
// due, not when a worker got to it, so a responder that falls behind is
// charged for the queue it causes.
func fixedRate(url string, reqs [][]byte, rate int, warmup, window time.Duration) result {
	const workers = 128
	client := newClient(workers)
	defer client.CloseIdleConnections()
	type job struct {
		due      time.Time
		measured bool
		req      []byte
	}
	jobs := make(chan job, rate*int((warmup+window)/time.Second+1))
	results := make([]result, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			res := &results[w]
			for j := range jobs {
				_, err := post(client, url, j.req)
				if !j.measured {
					continue
				}
				if err != nil {
					res.errors++
					if res.firstErr == nil {
						res.firstErr = err
					}
					continue
				}
				res.completed++
				res.lat = append(res.lat, time.Since(j.due))
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), warmup+window+time.Second)
	defer cancel()
	period := time.Second / time.Duration(rate)
	start := time.Now()
	total := int((warmup + window) / period)
	for i := range total {
		due := start.Add(time.Duration(i) * period)
		if d := time.Until(due); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		jobs <- job{due: due, measured: due.Sub(start) >= warmup, req: reqs[i%len(reqs)]}
	}
	close(jobs)
	wg.Wait()
	res := merge(results, window)
	res.total = total
	return res
}

func merge(rs []result, window time.Duration) result {
	out := result{window: window}
	for _, r := range rs {
		out.completed += r.completed
		out.errors += r.errors
		out.lat = append(out.lat, r.lat...)
		if out.firstErr == nil {
			out.firstErr = r.firstErr
		}
	}
	return out
}
