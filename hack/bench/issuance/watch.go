package main

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	cmclient "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned"
	cminformers "github.com/cert-manager/cert-manager/pkg/client/informers/externalversions"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// readyWatch records, per Certificate, when the benchmark first saw
// Ready=True and the condition's lastTransitionTime.
type readyWatch struct {
	mu       sync.Mutex
	seen     map[string]readySeen
	want     int
	done     chan struct{}
	stopCh   chan struct{}
	stopOnce sync.Once
}

type readySeen struct {
	observed   time.Time
	transition time.Time
}

// startWatch starts an informer on the Certificates of ns and waits until
// it has synced. Its list and watch requests go through the counting
// client.
func startWatch(cm cmclient.Interface, ns string, want int) (*readyWatch, error) {
	w := &readyWatch{seen: make(map[string]readySeen, want), want: want, done: make(chan struct{}), stopCh: make(chan struct{})}
	factory := cminformers.NewSharedInformerFactoryWithOptions(cm, 0, cminformers.WithNamespace(ns))
	inf := factory.Certmanager().V1().Certificates().Informer()
	handle := func(obj any) {
		now := time.Now()
		crt, ok := obj.(*cmapi.Certificate)
		if !ok {
			return
		}
		for _, c := range crt.Status.Conditions {
			if c.Type != cmapi.CertificateConditionReady || c.Status != cmmeta.ConditionTrue {
				continue
			}
			w.mu.Lock()
			if _, dup := w.seen[crt.Name]; !dup {
				s := readySeen{observed: now}
				if c.LastTransitionTime != nil {
					s.transition = c.LastTransitionTime.Time
				}
				w.seen[crt.Name] = s
				if len(w.seen) == w.want {
					close(w.done)
				}
			}
			w.mu.Unlock()
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    handle,
		UpdateFunc: func(_, obj any) { handle(obj) },
	}); err != nil {
		return nil, err
	}
	factory.Start(w.stopCh)
	if !cache.WaitForCacheSync(w.stopCh, inf.HasSynced) {
		w.stop()
		return nil, fmt.Errorf("certificates: %w", errNoSync)
	}
	return w, nil
}

func (w *readyWatch) stop() { w.stopOnce.Do(func() { close(w.stopCh) }) }

// results is a copy of what the watch saw.
func (w *readyWatch) results() map[string]readySeen {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.seen)
}

func (w *readyWatch) readyCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seen)
}

// notReady describes a few Certificates that are not Ready, for the
// failure message.
func (b *bench) notReady(ctx context.Context, ns string) string {
	list, err := b.cm.CertmanagerV1().Certificates(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var parts []string
	for _, crt := range list.Items {
		ready := false
		var conds []string
		for _, c := range crt.Status.Conditions {
			conds = append(conds, fmt.Sprintf("%s=%s(%s: %s)", c.Type, c.Status, c.Reason, c.Message))
			ready = ready || (c.Type == cmapi.CertificateConditionReady && c.Status == cmmeta.ConditionTrue)
		}
		if !ready && len(parts) < 5 {
			parts = append(parts, crt.Name+": "+strings.Join(conds, ", "))
		}
	}
	return "not Ready: " + strings.Join(parts, "; ")
}
