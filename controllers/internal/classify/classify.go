// Package classify is the one place where Quill's controllers turn an
// error into an outcome: a condition reason (an exported constant of
// api/v1alpha1) and what to do next. Errors are classified where they are
// created, with New; everything else is read here:
//
//   - Permanent: the resource must change; retrying it as it is cannot
//     succeed.
//   - Pending: waiting for something expected to happen (the ledger to load,
//     a certificate to be recorded); not a failure.
//   - IssuerFault: the issuer's CA, key or configuration is unusable; the
//     issuer turns not Ready and work that needs it waits.
//   - Retry: anything unclassified (the API server failed, a timeout);
//     retried with backoff.
//
// The CA store classifies its own errors (*castore.Error, an issuer fault
// with a reason) and castore.HSMFault classifies HSM errors; Of reads both,
// so callers never build a castore.Error themselves.
package classify

import (
	"errors"
	"time"

	"github.com/cert-manager/issuer-lib/controllers/signer"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/quill-pki/quill/pkg/castore"
)

// Class is what a controller does about an error.
type Class int

// The classes, from "try again" to "never as it is".
const (
	Retry Class = iota
	Pending
	IssuerFault
	Permanent
)

// String names the class for logs and test failures.
func (c Class) String() string {
	switch c {
	case Pending:
		return "pending"
	case IssuerFault:
		return "issuer-fault"
	case Permanent:
		return "permanent"
	}
	return "retry"
}

// Error is an error classified where it was created.
type Error struct {
	Class Class
	// Reason is the condition reason it shows as, a constant of
	// api/v1alpha1.
	Reason string
	Err    error
}

// Error is "<reason>: <message>", the form issuer-lib shows in the Ready
// condition's message; Message gives the message alone.
func (e *Error) Error() string {
	if e.Reason == "" {
		return e.Err.Error()
	}
	return e.Reason + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// New classifies err. A nil err stays nil.
func New(class Class, reason string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Class: class, Reason: reason, Err: err}
}

// Of returns err's class and reason: a classified error's own, an issuer
// fault with its reason for the CA store's and the HSM's errors, Retry with
// no reason for anything else (and for nil).
func Of(err error) (Class, string) {
	if err == nil {
		return Retry, ""
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Class, e.Reason
	}
	if hf := castore.HSMFault(err); hf != nil {
		if caErr, ok := errors.AsType[*castore.Error](hf); ok {
			return IssuerFault, caErr.Reason
		}
	}
	return Retry, ""
}

// Message is what a condition shows for err: the classified error's own
// message, without the context wrapped around it on the way up.
func Message(err error) string {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Err.Error()
	}
	if caErr, ok := errors.AsType[*castore.Error](castore.HSMFault(err)); ok {
		return caErr.Err.Error()
	}
	return err.Error()
}

// Is reports whether err is of class c.
func Is(err error, c Class) bool {
	got, _ := Of(err)
	return err != nil && got == c
}

// ForIssuerLib turns a classified error into issuer-lib's retry contract:
// Permanent fails the request, IssuerFault re-runs the issuer's health check
// and keeps the request Pending, Pending keeps it Pending. Errors issuer-lib
// already understands, and unclassified ones, pass unchanged.
func ForIssuerLib(err error) error {
	switch c, _ := Of(err); c {
	case Permanent:
		return signer.PermanentError{Err: err}
	case IssuerFault:
		return signer.IssuerError{Err: err}
	case Pending:
		return signer.PendingError{Err: err}
	}
	return err
}

// Result is the reconcile outcome of err for a controller-runtime
// reconciler: nothing for nil, a terminal error for Permanent, a look again
// after wait for Pending and IssuerFault (the issuer's health check reports
// the fault; a fix brings the resource back sooner), and a retry with
// backoff otherwise.
func Result(err error, wait time.Duration) (ctrl.Result, error) {
	switch c, _ := Of(err); {
	case err == nil:
		return ctrl.Result{}, nil // done
	case c == Permanent:
		return ctrl.Result{}, reconcile.TerminalError(err) // the resource must change
	case c == Pending, c == IssuerFault:
		return ctrl.Result{RequeueAfter: wait}, nil // look again later
	}
	return ctrl.Result{}, err // retry with backoff
}
