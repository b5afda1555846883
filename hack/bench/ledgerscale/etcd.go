package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// etcdGateway talks to the control plane's etcd through its gRPC gateway
// (JSON over HTTP on the client URL, on by default in etcd 3.6), so that the
// benchmark can read the database's size in use and compact and defragment
// it without an etcd client library.
type etcdGateway struct {
	url  string
	http *http.Client
}

var errNoEtcdURL = errors.New("etcd's client URL not found in its command line")

// newEtcdGateway finds the client URL of etcd (pid) in its command line.
func newEtcdGateway(pid int) (*etcdGateway, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return nil, err
	}
	args := strings.Split(string(b), "\x00")
	for i, a := range args {
		v, ok := strings.CutPrefix(a, "--advertise-client-urls=")
		if !ok && a == "--advertise-client-urls" && i+1 < len(args) {
			v, ok = args[i+1], true
		}
		if ok {
			return &etcdGateway{url: strings.Split(v, ",")[0], http: &http.Client{Timeout: 2 * time.Minute}}, nil
		}
	}
	return nil, errNoEtcdURL
}

func (g *etcdGateway) call(path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	resp, err := g.http.Post(g.url+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var msg bytes.Buffer
		_, _ = msg.ReadFrom(resp.Body)
		return fmt.Errorf("etcd %s: %s: %s", path, resp.Status, strings.TrimSpace(msg.String()))
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// etcdStatus is the part of etcd's status the benchmark reports; the
// gateway spells 64-bit integers as strings.
type etcdStatus struct {
	Header struct {
		Revision int64 `json:"revision,string"`
	} `json:"header"`
	DBSize      int64 `json:"dbSize,string"`
	DBSizeInUse int64 `json:"dbSizeInUse,string"`
}

func (g *etcdGateway) status() (etcdStatus, error) {
	var st etcdStatus
	err := g.call("/v3/maintenance/status", struct{}{}, &st)
	return st, err
}

// compact compacts the key space to the current revision (what the API
// server does every --etcd-compaction-interval) and waits for it to be
// applied; defrag then returns the freed pages to the file system.
func (g *etcdGateway) compact() error {
	st, err := g.status()
	if err != nil {
		return err
	}
	var out struct{}
	return g.call("/v3/kv/compaction", map[string]any{"revision": strconv.FormatInt(st.Header.Revision, 10), "physical": true}, &out)
}

func (g *etcdGateway) defrag() error {
	var out struct{}
	return g.call("/v3/maintenance/defragment", struct{}{}, &out)
}

// etcdSizes is the database measured three ways: the file as it is (what
// issue 15's table measured), the bytes in use after compaction, and the
// database's size after defragmentation as etcd reports it (the file itself
// may stay larger: bbolt grows it in steps and defragmentation keeps them).
type etcdSizes struct {
	file, inUseCompacted, fileDefragged int64
}

// measureEtcd compacts and defragments etcd and reports its sizes.
func (g *etcdGateway) measure(pid int) (etcdSizes, error) {
	s := etcdSizes{file: etcdDBSize(pid)}
	if err := g.compact(); err != nil {
		return s, err
	}
	st, err := g.status()
	if err != nil {
		return s, err
	}
	s.inUseCompacted = st.DBSizeInUse
	if err := g.defrag(); err != nil {
		return s, err
	}
	if st, err = g.status(); err != nil {
		return s, err
	}
	s.fileDefragged = st.DBSize
	return s, nil
}
