package harness

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// Main is a TestMain body: it starts the control plane, hands it to setup
// (which may start controllers on it), runs the tests and stops everything,
// also when a SIGINT or SIGTERM arrives. It returns the exit code.
//
//	func TestMain(m *testing.M) { os.Exit(harness.Main(m, &env, nil)) }
func Main(m *testing.M, env **Env, setup func(*Env) (teardown func(), err error)) int {
	e, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "harness: %v: stopping the control plane\n", s)
		_ = e.Stop()
		os.Exit(1)
	}()
	defer func() {
		if err := e.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "harness: stop:", err)
		}
	}()
	*env = e
	if setup != nil {
		teardown, err := setup(e)
		if err != nil {
			fmt.Fprintln(os.Stderr, "harness: setup:", err)
			return 1
		}
		if teardown != nil {
			defer teardown()
		}
	}
	return m.Run()
}
