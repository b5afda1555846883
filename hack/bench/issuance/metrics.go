package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"k8s.io/client-go/kubernetes"
)

// requestMetric is the API server's request counter. It counts every
// request when it completes (a watch when it ends), including the API
// server's own loopback requests.
const requestMetric = "apiserver_request_total"

// durationMetric is the API server's request latency histogram (without
// the watch's time streaming; the report leaves WATCH out anyway).
const durationMetric = "apiserver_request_duration_seconds"

var errBadMetrics = errors.New("unexpected /metrics line")

// requestKey is the part of apiserver_request_total's labels the report
// breaks requests down by.
type requestKey struct {
	verb, group, resource, subresource, code string
}

func (k requestKey) String() string {
	r := k.resource
	if r == "" {
		r = "(non-resource)"
	}
	if k.subresource != "" {
		r += "/" + k.subresource
	}
	if k.group != "" {
		r += " (" + k.group + ")"
	}
	if k.code != "" {
		r += " -> " + k.code
	}
	return k.verb + " " + r
}

// withoutCode merges all response codes.
func (k requestKey) withoutCode() requestKey { k.code = ""; return k }

// requestCounts are apiserver_request_total values by key.
type requestCounts map[requestKey]float64

func (c requestCounts) minus(o requestCounts) requestCounts {
	out := requestCounts{}
	for k, v := range c {
		if d := v - o[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

func (c requestCounts) total() float64 {
	var t float64
	for _, v := range c {
		t += v
	}
	return t
}

// byResource merges response codes.
func (c requestCounts) byResource() requestCounts {
	out := requestCounts{}
	for k, v := range c {
		out[k.withoutCode()] += v
	}
	return out
}

// failures keeps the responses that were not 2xx (conflicts, not found, …).
func (c requestCounts) failures() requestCounts {
	out := requestCounts{}
	for k, v := range c {
		if !strings.HasPrefix(k.code, "2") {
			out[k] += v
		}
	}
	return out
}

// scrapeAPI reads apiserver_request_total and the sums and counts of
// apiserver_request_duration_seconds from the API server's /metrics, as a
// cluster administrator.
func scrapeAPI(ctx context.Context, kube kubernetes.Interface) (requestCounts, latencies, error) {
	body, err := kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("scraping kube-apiserver /metrics: %w", err)
	}
	return parseAPI(body)
}

func parseAPI(body []byte) (requestCounts, latencies, error) {
	reqs, lat := requestCounts{}, latencies{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_") {
			continue
		}
		name, labels, v, ok := parseSample(line)
		if !ok {
			return nil, nil, fmt.Errorf("%w: %q", errBadMetrics, line)
		}
		key := requestKey{
			verb: labels["verb"], group: labels["group"], resource: labels["resource"],
			subresource: labels["subresource"], code: labels["code"],
		}
		switch name {
		case requestMetric:
			reqs[key] += v
		case durationMetric + "_sum":
			l := lat[key]
			l[0] += v
			lat[key] = l
		case durationMetric + "_count":
			l := lat[key]
			l[1] += v
			lat[key] = l
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	if len(reqs) == 0 {
		return nil, nil, fmt.Errorf("%w: no %s samples", errBadMetrics, requestMetric)
	}
	return reqs, lat, nil
}

// parseLabels reads `name="value",…}` and returns the labels and what
// follows the closing brace. Values may hold escaped quotes, backslashes
// and newlines.
func parseLabels(s string) (map[string]string, string, error) {
	labels := map[string]string{}
	for {
		s = strings.TrimLeft(s, ", ")
		if rest, ok := strings.CutPrefix(s, "}"); ok {
			return labels, rest, nil
		}
		name, rest, ok := strings.Cut(s, "=\"")
		if !ok {
			return nil, "", errors.New("label without a quoted value")
		}
		var v strings.Builder
		i := 0
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
				if rest[i] == 'n' {
					v.WriteByte('\n')
					continue
				}
			}
			v.WriteByte(rest[i])
		}
		if i == len(rest) {
			return nil, "", errors.New("unterminated label value")
		}
		labels[name] = v.String()
		s = rest[i+1:]
	}
}
