package issuers

import (
	"context"
	"testing"
	"time"

	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	quillv1 "github.com/quill-pki/quill/api/v1alpha1"
)

// TestIssuerTrigger: before its reconciler runs (a follower replica) the
// trigger keeps nothing; once it runs, a burst of changes to one issuer is
// one reconcile after the delay, and each issuer kind reaches its own
// reconciler.
func TestIssuerTrigger(t *testing.T) {
	t.Parallel()
	const delay = 50 * time.Millisecond
	tr := NewTrigger(func(quillv1.IssuerID) time.Duration { return delay })
	ns := quillv1.IssuerID{Kind: quillv1.IssuerKind, Namespace: "team-a", Name: "ca"}
	cl := quillv1.IssuerID{Kind: quillv1.ClusterIssuerKind, Name: "root"}
	for range 5000 {
		tr.Fire(ns) // a follower: nothing may pile up
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	newQueue := func() workqueue.TypedRateLimitingInterface[reconcile.Request] {
		q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
		t.Cleanup(q.ShutDown)
		return q
	}
	nsQueue, clQueue := newQueue(), newQueue()
	if err := tr.Source(&quillv1.QuillIssuer{}).Start(ctx, nsQueue); err != nil {
		t.Fatal(err)
	}
	if err := tr.Source(&quillv1.QuillClusterIssuer{}).Start(ctx, clQueue); err != nil {
		t.Fatal(err)
	}
	if n := nsQueue.Len(); n != 0 {
		t.Fatalf("%d requests queued from before the reconciler ran", n)
	}
	for range 100 {
		tr.Fire(ns)
	}
	tr.Fire(cl)
	time.Sleep(3 * delay)
	if nsQueue.Len() != 1 || clQueue.Len() != 1 {
		t.Fatalf("queued %d namespaced and %d cluster requests after a burst; want 1 each", nsQueue.Len(), clQueue.Len())
	}
	if req, _ := nsQueue.Get(); req.Namespace != "team-a" || req.Name != "ca" {
		t.Fatalf("queued %v", req)
	}
	if req, _ := clQueue.Get(); req.Namespace != "" || req.Name != "root" {
		t.Fatalf("queued %v", req)
	}

	// The reconciler stops (leadership lost): firing keeps nothing again.
	cancel()
	time.Sleep(10 * time.Millisecond)
	tr.Fire(ns)
	time.Sleep(3 * delay)
	if n := nsQueue.Len(); n != 0 {
		t.Fatalf("%d requests queued after the reconciler stopped", n)
	}
}
