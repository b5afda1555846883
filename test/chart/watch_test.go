package chart

import (
	"context"
	"sync"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// requestRecorder watches the CertificateRequests of a namespace and keeps
// every distinct certificate each one ever carried, so that a request
// signed twice shows even if the second signature overwrote the first.
type requestRecorder struct {
	mu   sync.Mutex
	seen map[string]map[string]bool // request UID -> certificate PEM
	stop func()
}

func watchRequests(t *testing.T, ns string) *requestRecorder {
	t.Helper()
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := wc.Watch(ctx, &cmapi.CertificateRequestList{}, client.InNamespace(ns))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	r := &requestRecorder{seen: map[string]map[string]bool{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			cr, ok := ev.Object.(*cmapi.CertificateRequest)
			if !ok || len(cr.Status.Certificate) == 0 {
				continue
			}
			r.mu.Lock()
			if r.seen[string(cr.UID)] == nil {
				r.seen[string(cr.UID)] = map[string]bool{}
			}
			r.seen[string(cr.UID)][string(cr.Status.Certificate)] = true
			r.mu.Unlock()
		}
	}()
	var once sync.Once
	r.stop = func() { once.Do(func() { w.Stop(); cancel(); <-done }) }
	t.Cleanup(r.stop)
	return r
}

// certificates returns the distinct certificates request uid carried.
func (r *requestRecorder) certificates(uid string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for c := range r.seen[uid] {
		out = append(out, c)
	}
	return out
}
