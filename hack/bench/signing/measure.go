package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var errBadSignature = errors.New("signature does not verify with the public key")

// result is one measured run of one backend in one cell.
type result struct {
	backend, algorithm string
	cell               int // runs of one cell are compared with each other
	goroutines         int
	signatures         int
	wall               time.Duration
	p50, p99, max      time.Duration
	cpu                time.Duration // user+system time of the process
}

func (r result) rate() float64 { return float64(r.signatures) / r.wall.Seconds() }

func (r result) cpuPerSignature() time.Duration {
	return r.cpu / time.Duration(max(r.signatures, 1))
}

func (r result) coresBusy() float64 { return r.cpu.Seconds() / r.wall.Seconds() }

// measure warms signer up with goroutines signers for warmup, then
// measures them for d.
func measure(ctx context.Context, signer crypto.Signer, digest []byte, goroutines int, warmup, d time.Duration) (result, error) {
	// The warm-up also sizes the latency slices, so that appending does not
	// reallocate (and make garbage) during the measurement.
	perGoroutine := 1024
	if warmup > 0 {
		w, err := signFor(ctx, signer, digest, goroutines, warmup, perGoroutine)
		if err != nil {
			return result{}, fmt.Errorf("warm-up: %w", err)
		}
		perGoroutine = int(float64(w.signatures)/float64(goroutines)*d.Seconds()/w.wall.Seconds()*1.5) + 1024
	}
	return signFor(ctx, signer, digest, goroutines, d, perGoroutine)
}

// signFor runs goroutines goroutines that each sign digest in a loop until
// d has passed, and summarises their latencies.
func signFor(ctx context.Context, signer crypto.Signer, digest []byte, goroutines int, d time.Duration, capacity int) (result, error) {
	var (
		stop      atomic.Bool
		start     = make(chan struct{})
		latencies = make([][]time.Duration, goroutines)
		last      = make([][]byte, goroutines)
		errs      = make([]error, goroutines)
		wg        sync.WaitGroup
	)
	for i := range goroutines {
		latencies[i] = make([]time.Duration, 0, capacity)
		wg.Go(func() {
			lat := latencies[i]
			<-start
			for !stop.Load() {
				t0 := time.Now()
				sig, err := signer.Sign(rand.Reader, digest, crypto.SHA256)
				elapsed := time.Since(t0)
				if err != nil {
					errs[i] = err
					stop.Store(true) // the run is void; end it for everyone
					break
				}
				lat = append(lat, elapsed)
				last[i] = sig
			}
			latencies[i] = lat
		})
	}

	cpu0 := processCPU()
	t0 := time.Now()
	close(start)
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	cancel := context.AfterFunc(ctx, func() { stop.Store(true) })
	wg.Wait()
	wall := time.Since(t0)
	cpu := processCPU() - cpu0
	timer.Stop()
	cancel()

	if err := errors.Join(errs...); err != nil {
		return result{}, err
	}
	if err := ctx.Err(); err != nil {
		return result{}, fmt.Errorf("interrupted: %w", err)
	}
	for _, sig := range last {
		if sig == nil {
			continue // this goroutine was never scheduled before the stop
		}
		if err := verify(signer.Public(), digest, sig); err != nil {
			return result{}, err
		}
	}
	all := slices.Concat(latencies...)
	if len(all) == 0 {
		return result{}, fmt.Errorf("no signature completed in %s", d)
	}
	slices.Sort(all)
	return result{
		goroutines: goroutines,
		signatures: len(all),
		wall:       wall,
		p50:        percentile(all, 50),
		p99:        percentile(all, 99),
		max:        all[len(all)-1],
		cpu:        cpu,
	}, nil
}

// percentile returns the nearest-rank p-th percentile of sorted, which
// must not be empty.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 × n)
	return sorted[max(rank, 1)-1]
}

// verify checks sig the way a relying party would, independently of the
// signer that made it.
func verify(pub crypto.PublicKey, digest, sig []byte) error {
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, digest, sig) {
			return errBadSignature
		}
		return nil
	case *rsa.PublicKey:
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, sig); err != nil {
			return fmt.Errorf("%w: %w", errBadSignature, err)
		}
		return nil
	default:
		return fmt.Errorf("cannot verify signatures of a %T", pub)
	}
}

// processCPU is the user+system CPU time this process has used, SoftHSM
// included since it runs in-process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
