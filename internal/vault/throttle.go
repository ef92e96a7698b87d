package vault

import (
	"sync"
	"time"

	"github.com/keyhaven/keyhaven/internal/clock"
)

// Throttle sets Key Vault's per-vault service limits. Zero fields take the
// defaults (Key Vault's published limits for secrets); a negative count
// disables that limit.
type Throttle struct {
	Window       time.Duration // default 10s
	Transactions int           // all operations per Window, default 4000
	Creates      int           // set and restore per Window, default 300
}

func (t Throttle) withDefaults() Throttle {
	if t.Window <= 0 {
		t.Window = 10 * time.Second
	}
	if t.Transactions == 0 {
		t.Transactions = 4000
	}
	if t.Creates == 0 {
		t.Creates = 300
	}
	return t
}

// maxBuckets bounds the limiter's memory; idle (full) buckets are dropped
// first when it is reached.
const maxBuckets = 100000

// bucket is a token bucket refilled continuously at capacity per window.
type bucket struct {
	tokens float64
	last   time.Time
}

type limiter struct {
	mu      sync.Mutex
	clk     clock.Clock
	cfg     Throttle
	buckets map[string]*bucket
}

func newLimiter(clk clock.Clock, cfg Throttle) *limiter {
	return &limiter{clk: clk, cfg: cfg.withDefaults(), buckets: map[string]*bucket{}}
}

// take spends one token from the vault's general bucket and, for creates,
// one from its create bucket. It returns 0 when allowed, else how long to
// wait (in milliseconds) before a retry can succeed. Nothing is spent when
// the request is refused.
func (l *limiter) take(vaultID string, create bool) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clk.Now()
	var wait int64
	type slot struct {
		b   *bucket
		cap int
	}
	var slots []slot
	if l.cfg.Transactions > 0 {
		slots = append(slots, slot{l.get("t/"+vaultID, l.cfg.Transactions, now), l.cfg.Transactions})
	}
	if create && l.cfg.Creates > 0 {
		slots = append(slots, slot{l.get("c/"+vaultID, l.cfg.Creates, now), l.cfg.Creates})
	}
	for _, s := range slots {
		l.refill(s.b, s.cap, now)
		if s.b.tokens < 1 {
			perToken := float64(l.cfg.Window) / float64(s.cap)
			ms := int64((1-s.b.tokens)*perToken/float64(time.Millisecond)) + 1
			wait = max(wait, ms)
		}
	}
	if wait > 0 {
		return wait
	}
	for _, s := range slots {
		s.b.tokens--
	}
	return 0
}

func (l *limiter) get(key string, capacity int, now time.Time) *bucket {
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			l.prune(now)
		}
		b = &bucket{tokens: float64(capacity), last: now}
		l.buckets[key] = b
	}
	return b
}

func (l *limiter) refill(b *bucket, capacity int, now time.Time) {
	if el := now.Sub(b.last); el > 0 {
		b.tokens += float64(capacity) * float64(el) / float64(l.cfg.Window)
		if b.tokens > float64(capacity) {
			b.tokens = float64(capacity)
		}
		b.last = now
	}
}

// prune drops buckets idle for a whole window: they would be full anyway.
func (l *limiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if now.Sub(b.last) >= l.cfg.Window {
			delete(l.buckets, k)
		}
	}
}
