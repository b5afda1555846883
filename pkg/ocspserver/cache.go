package ocspserver

import (
	"math/big"
	"sync"
	"sync/atomic"
	"time"
)

// cache keeps signed responses to requests without a nonce, one per
// (CertID hash, serial): a client asking with SHA-256 must get a CertID
// with SHA-256 back, or it will not find its answer.
//
// It holds at most max entries. When an insert finds it full it first drops
// every stale entry; if that frees less than a sixteenth of the cap, it drops
// arbitrary entries (Go's map iteration order) until it has. Each full sweep
// is thus paid for by at least max/16 inserts, and a flood of requests for
// distinct serials costs memory up to the cap and no more.
type cache struct {
	mu  sync.RWMutex
	m   map[string]*Response
	max int
	// gen counts invalidations. A response is only stored if no
	// invalidation happened since its status was looked up, so a response
	// signed from a status that was just changed cannot outlive the change.
	gen atomic.Uint64
}

func newCache(max int) *cache {
	return &cache{m: make(map[string]*Response), max: max}
}

// cacheKey is the map key for one CertID hash and serial; the sign is kept
// apart so a negative serial does not share an entry with its magnitude.
func cacheKey(hashIndex int, serial *big.Int) []byte {
	key := make([]byte, 2+(serial.BitLen()+7)/8)
	key[0] = byte(hashIndex)
	if serial.Sign() < 0 {
		key[1] = 1
	}
	serial.FillBytes(key[2:]) // the magnitude
	return key
}

func (c *cache) generation() uint64 { return c.gen.Load() }

// get returns the cached response for key if it is still fresh at now.
func (c *cache) get(key []byte, now time.Time) *Response {
	c.mu.RLock()
	resp := c.m[string(key)]
	c.mu.RUnlock()
	if resp == nil || !now.Before(resp.staleAt) {
		return nil
	}
	return resp
}

// put stores resp unless an invalidation happened since gen was read.
func (c *cache) put(key []byte, resp *Response, gen uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	if _, ok := c.m[string(key)]; !ok && len(c.m) >= c.max {
		c.evict(now)
	}
	c.m[string(key)] = resp
}

func (c *cache) evict(now time.Time) {
	for k, r := range c.m {
		if !now.Before(r.staleAt) {
			delete(c.m, k)
		}
	}
	target := c.max - max(c.max/16, 1)
	for k := range c.m {
		if len(c.m) <= target {
			break
		}
		delete(c.m, k)
	}
}

func (c *cache) invalidate(serial *big.Int) {
	c.gen.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range hashes {
		delete(c.m, string(cacheKey(i, serial)))
	}
}

func (c *cache) invalidateAll() {
	c.gen.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}

func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
