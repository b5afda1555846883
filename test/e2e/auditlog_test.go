package e2e

import (
	"encoding/json"
	"sync"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

// auditLog keeps every audit line the in-process controller writes, as
// decoded JSON, so that tests can check what the audit trail says.
type auditLog struct {
	mu    sync.Mutex
	lines []map[string]any
}

// logger is the controllers' AuditLog.
func (a *auditLog) logger() logr.Logger {
	return funcr.NewJSON(func(obj string) {
		var m map[string]any
		if json.Unmarshal([]byte(obj), &m) != nil {
			return
		}
		a.mu.Lock()
		a.lines = append(a.lines, m)
		a.mu.Unlock()
	}, funcr.Options{})
}

// find returns the first line for which match is true.
func (a *auditLog) find(match func(map[string]any) bool) (map[string]any, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, l := range a.lines {
		if match(l) {
			return l, true
		}
	}
	return nil, false
}

// audited holds the audit lines of the suite's controller.
var audited = &auditLog{}
