package seal

import (
	"container/list"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/keyhaven/keyhaven/internal/store"
)

// ErrOpen: a ciphertext could not be opened. The message never carries key
// or plaintext bytes.
var ErrOpen = errors.New("seal: ciphertext does not authenticate: tampered, or stored under another name/version")

// ErrNoDataKey: the scope has no data key (destroyed by Forget, or never
// created). Open wraps it together with ErrOpen.
var ErrNoDataKey = errors.New("seal: no data key for this scope (destroyed by Forget, or never created)")

// DEKPrefix is the store key prefix of wrapped data keys: DEKPrefix + scope.
const DEKPrefix = "seal/dek/"

// Limits on inputs.
const (
	MaxScopeLen = 256
	MaxAADLen   = 64 << 10
	// MaxPlaintextLen keeps a sealed value within one store record.
	MaxPlaintextLen = store.MaxValueLen - valueOverhead
)

const (
	dekSize   = 32
	dekIDSize = 8
	gcmExtra  = 12 + 16 // random nonce + tag, added by the AEAD

	formatV1 = 0x01

	// Wrapped data key record: format | root version (u32) | DEK id | nonce | sealed DEK | tag.
	wrapHeaderLen = 1 + 4 + dekIDSize
	wrappedLen    = wrapHeaderLen + dekSize + gcmExtra

	// Value: format | DEK id | nonce | ciphertext | tag.
	valueHeaderLen = 1 + dekIDSize
	valueOverhead  = valueHeaderLen + gcmExtra

	defaultCacheSize = 4096
	defaultCacheTTL  = time.Minute
)

// Domain separation labels, so a wrap AAD can never equal a value AAD.
const (
	labelWrap  = "keyhaven/seal/dek-wrap/v1"
	labelValue = "keyhaven/seal/value/v1"
)

// Envelope is the store-backed Sealer: per-scope random data keys, wrapped
// under the root keyring and kept at DEKPrefix+scope, sealing values with
// AES-256-GCM bound to (scope, aad).
type Envelope struct {
	st   store.Store
	root *Root

	cacheTTL time.Duration
	now      func() time.Time
	cache    *dekCache

	rotateMu sync.Mutex
	// afterRewrap, when set (tests only), runs after each data key is
	// re-wrapped during RotateRoot; an error aborts the rotation there, which
	// is how tests simulate a crash mid-rotation.
	afterRewrap func(rewrapped int) error
}

var _ Sealer = (*Envelope)(nil)

// Option configures an Envelope.
type Option func(*Envelope)

// WithCacheSize bounds the number of unwrapped data keys kept in memory
// (least recently used are dropped). n <= 0 keeps the default.
func WithCacheSize(n int) Option {
	return func(e *Envelope) {
		if n > 0 {
			e.cache.max = n
		}
	}
}

// WithCacheTTL bounds how long an unwrapped data key is used by Open without
// re-reading the store. It is the longest another process sharing the store
// can keep opening values after a Forget there; Seal always checks the store.
// d <= 0 keeps the default (one minute).
func WithCacheTTL(d time.Duration) Option {
	return func(e *Envelope) {
		if d > 0 {
			e.cacheTTL = d
		}
	}
}

// WithNow sets the time source used for cache expiry (default time.Now).
func WithNow(now func() time.Time) Option {
	return func(e *Envelope) {
		if now != nil {
			e.now = now
		}
	}
}

// NewEnvelope returns a Sealer over st whose data keys are wrapped by root.
func NewEnvelope(st store.Store, root *Root, opts ...Option) *Envelope {
	e := &Envelope{
		st:       st,
		root:     root,
		cacheTTL: defaultCacheTTL,
		now:      time.Now,
		cache:    newDEKCache(defaultCacheSize),
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

// String keeps the envelope (and its cached keys) out of fmt output.
func (e *Envelope) String() string { return "seal.Envelope{root: " + e.root.String() + "}" }

// GoString keeps %#v from printing cached keys.
func (e *Envelope) GoString() string { return e.String() }

// Seal encrypts plaintext under scope's data key, creating the key on first
// use. The result opens only with the same scope and aad.
func (e *Envelope) Seal(ctx context.Context, scope string, plaintext, aad []byte) ([]byte, error) {
	if err := checkScope(scope); err != nil {
		return nil, err
	}
	if len(plaintext) > MaxPlaintextLen {
		return nil, fmt.Errorf("seal: plaintext of %d bytes exceeds the limit of %d", len(plaintext), MaxPlaintextLen)
	}
	if len(aad) > MaxAADLen {
		return nil, fmt.Errorf("seal: aad of %d bytes exceeds the limit of %d", len(aad), MaxAADLen)
	}
	d, err := e.dekForSeal(ctx, scope)
	if err != nil {
		return nil, err
	}
	out := make([]byte, valueHeaderLen, valueOverhead+len(plaintext))
	out[0] = formatV1
	copy(out[1:], d.id[:])
	return d.aead.Seal(out, nil, plaintext, valueAAD(out[:valueHeaderLen], scope, aad)), nil
}

// Open decrypts a ciphertext made by Seal with the same scope and aad. Any
// mismatch, tampering or a forgotten data key yields an error wrapping ErrOpen.
func (e *Envelope) Open(ctx context.Context, scope string, ciphertext, aad []byte) ([]byte, error) {
	if err := checkScope(scope); err != nil {
		return nil, err
	}
	if len(aad) > MaxAADLen {
		return nil, fmt.Errorf("%w (aad too long)", ErrOpen)
	}
	if len(ciphertext) < valueOverhead || len(ciphertext) > store.MaxValueLen {
		return nil, fmt.Errorf("%w (malformed: bad length)", ErrOpen)
	}
	if ciphertext[0] != formatV1 {
		return nil, fmt.Errorf("%w (unknown format %#x)", ErrOpen, ciphertext[0])
	}
	var id [dekIDSize]byte
	copy(id[:], ciphertext[1:valueHeaderLen])
	d, err := e.dekForOpen(ctx, scope, id)
	if err != nil {
		return nil, err
	}
	pt, err := d.aead.Open(nil, nil, ciphertext[valueHeaderLen:], valueAAD(ciphertext[:valueHeaderLen], scope, aad))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// Forget destroys scope's data key: everything sealed under it becomes
// unreadable. Forgetting a scope without a key is not an error.
func (e *Envelope) Forget(ctx context.Context, scope string) error {
	if err := checkScope(scope); err != nil {
		return err
	}
	// Evict before and after: before so no Open in this process uses the key
	// once deletion may have committed, after so a load racing with the
	// delete cannot leave it cached (the generation bump also guards that).
	e.cache.evict(scope)
	err := e.st.Update(ctx, func(tx store.Tx) error {
		return tx.Delete(ctx, DEKPrefix+scope, store.Any)
	})
	e.cache.evict(scope)
	if err != nil {
		return fmt.Errorf("seal: forget data key: %w", err)
	}
	return nil
}

// dek is an unwrapped data key ready for use. cipher.AEAD from crypto/cipher
// holds no per-call state, so one is shared by concurrent callers.
type dek struct {
	id      [dekIDSize]byte
	aead    cipher.AEAD
	fetched time.Time
}

// dekForSeal returns scope's data key, creating it if absent. It always
// confirms the key still exists in the store, so no process seals new values
// under a key another process has forgotten.
func (e *Envelope) dekForSeal(ctx context.Context, scope string) (*dek, error) {
	gen := e.cache.generation()
	rec, err := e.st.Get(ctx, DEKPrefix+scope)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return e.createDEK(ctx, scope, gen)
	case err != nil:
		return nil, fmt.Errorf("seal: read data key: %w", err)
	}
	if d := e.cache.get(scope); d != nil && len(rec.Value) >= wrapHeaderLen && [dekIDSize]byte(rec.Value[5:wrapHeaderLen]) == d.id {
		return d, nil
	}
	d, err := e.unwrap(scope, rec.Value)
	if err != nil {
		return nil, err
	}
	e.cache.put(scope, d, gen)
	return d, nil
}

// dekForOpen returns the data key with the given id for scope, from the cache
// while fresh, else from the store.
func (e *Envelope) dekForOpen(ctx context.Context, scope string, id [dekIDSize]byte) (*dek, error) {
	if d := e.cache.get(scope); d != nil && d.id == id && e.now().Sub(d.fetched) < e.cacheTTL {
		return d, nil
	}
	gen := e.cache.generation()
	rec, err := e.st.Get(ctx, DEKPrefix+scope)
	switch {
	case errors.Is(err, store.ErrNotFound):
		e.cache.evict(scope)
		return nil, fmt.Errorf("%w: %w", ErrOpen, ErrNoDataKey)
	case err != nil:
		return nil, fmt.Errorf("seal: read data key: %w", err)
	}
	d, err := e.unwrap(scope, rec.Value)
	if err != nil {
		return nil, err
	}
	e.cache.put(scope, d, gen)
	if d.id != id {
		return nil, fmt.Errorf("%w: %w (sealed under an earlier data key of this scope)", ErrOpen, ErrNoDataKey)
	}
	return d, nil
}

// createDEK makes a new data key for scope. The Absent precondition makes
// concurrent creators (in this or another process) agree on one key: the
// loser re-reads the winner's.
func (e *Envelope) createDEK(ctx context.Context, scope string, gen uint64) (*dek, error) {
	// Wrap under the newest root: if another process rotated the keyring, a
	// key wrapped under a retired version would be unreadable later.
	if err := e.root.refresh(); err != nil {
		return nil, err
	}
	var id [dekIDSize]byte
	key := make([]byte, dekSize)
	if _, err := io.ReadFull(rand.Reader, id[:]); err != nil {
		return nil, fmt.Errorf("seal: generate data key id: %w", err)
	}
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		return nil, fmt.Errorf("seal: generate data key: %w", err)
	}
	wrapped, err := e.wrap(scope, id, key)
	if err != nil {
		return nil, err
	}
	err = e.st.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Put(ctx, DEKPrefix+scope, wrapped, store.Absent)
		return err
	})
	if errors.Is(err, store.ErrConflict) {
		rec, err := e.st.Get(ctx, DEKPrefix+scope)
		if err != nil {
			return nil, fmt.Errorf("seal: re-read data key after concurrent creation: %w", err)
		}
		d, err := e.unwrap(scope, rec.Value)
		if err != nil {
			return nil, err
		}
		e.cache.put(scope, d, gen)
		return d, nil
	}
	if err != nil {
		return nil, fmt.Errorf("seal: store new data key: %w", err)
	}
	a, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	d := &dek{id: id, aead: a, fetched: e.now()}
	e.cache.put(scope, d, gen)
	return d, nil
}

// wrap seals a data key under the active root key version.
func (e *Envelope) wrap(scope string, id [dekIDSize]byte, key []byte) ([]byte, error) {
	v, a := e.root.activeAEAD()
	return wrapUnder(v, a, scope, id, key), nil
}

// wrapUnder seals a data key under root key version v (cipher a).
func wrapUnder(v uint32, a cipher.AEAD, scope string, id [dekIDSize]byte, key []byte) []byte {
	out := make([]byte, wrapHeaderLen, wrappedLen)
	out[0] = formatV1
	binary.BigEndian.PutUint32(out[1:5], v)
	copy(out[5:], id[:])
	return a.Seal(out, nil, key, wrapAAD(out[:wrapHeaderLen], scope))
}

// unwrap parses a wrapped data key record and opens it with the root key
// version it names, re-reading the keyring file once if that version is
// unknown (another process may have rotated).
func (e *Envelope) unwrap(scope string, rec []byte) (*dek, error) {
	key, id, _, err := e.unwrapRaw(scope, rec)
	if err != nil {
		return nil, err
	}
	a, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return &dek{id: id, aead: a, fetched: e.now()}, nil
}

func (e *Envelope) unwrapRaw(scope string, rec []byte) (key []byte, id [dekIDSize]byte, rootVersion uint32, err error) {
	if len(rec) != wrappedLen || rec[0] != formatV1 {
		return nil, id, 0, fmt.Errorf("seal: wrapped data key of scope %q is malformed", scope)
	}
	rootVersion = binary.BigEndian.Uint32(rec[1:5])
	copy(id[:], rec[5:wrapHeaderLen])
	a, ok := e.root.aead(rootVersion)
	if !ok {
		if err := e.root.refresh(); err != nil {
			return nil, id, 0, err
		}
		if a, ok = e.root.aead(rootVersion); !ok {
			return nil, id, 0, fmt.Errorf("seal: data key of scope %q is wrapped under root key version %d, which the keyring (%v) does not hold",
				scope, rootVersion, e.root.Versions())
		}
	}
	key, err = a.Open(nil, nil, rec[wrapHeaderLen:], wrapAAD(rec[:wrapHeaderLen], scope))
	if err != nil {
		return nil, id, 0, fmt.Errorf("seal: root key version %d does not unwrap the data key of scope %q: the keyring does not match the store, or the record was altered",
			rootVersion, scope)
	}
	return key, id, rootVersion, nil
}

// wrapAAD binds a wrapped data key to its header (format, root version, DEK
// id) and its scope, so it cannot be moved to another scope or relabelled.
func wrapAAD(header []byte, scope string) []byte {
	b := make([]byte, 0, len(labelWrap)+len(header)+4+len(scope))
	b = append(b, labelWrap...)
	b = append(b, header...)
	return appendLP(b, []byte(scope))
}

// valueAAD binds a value to its header, scope and caller aad, each length
// prefixed so distinct (scope, aad) pairs never encode alike.
func valueAAD(header []byte, scope string, aad []byte) []byte {
	b := make([]byte, 0, len(labelValue)+len(header)+8+len(scope)+len(aad))
	b = append(b, labelValue...)
	b = append(b, header...)
	b = appendLP(b, []byte(scope))
	return appendLP(b, aad)
}

func appendLP(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// checkScope keeps scopes usable as one store key segment.
func checkScope(scope string) error {
	if scope == "" || len(scope) > MaxScopeLen {
		return fmt.Errorf("seal: scope must be 1 to %d bytes", MaxScopeLen)
	}
	for i := 0; i < len(scope); i++ {
		if c := scope[i]; c <= 0x20 || c >= 0x7f || c == '/' {
			return errors.New("seal: scope may hold only printable ASCII without spaces or '/'")
		}
	}
	return nil
}

// dekCache is a bounded LRU of unwrapped data keys. gen increases on every
// eviction so a load that started before a Forget cannot re-insert its key.
type dekCache struct {
	mu    sync.Mutex
	max   int
	gen   uint64
	ll    *list.List
	items map[string]*list.Element
}

type cacheEntry struct {
	scope string
	d     *dek
}

func newDEKCache(max int) *dekCache {
	return &dekCache{max: max, ll: list.New(), items: make(map[string]*list.Element)}
}

func (c *dekCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *dekCache) get(scope string) *dek {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[scope]
	if !ok {
		return nil
	}
	c.ll.MoveToFront(el)
	return el.Value.(*cacheEntry).d
}

// put caches d unless an eviction happened since gen was read.
func (c *dekCache) put(scope string, d *dek, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if el, ok := c.items[scope]; ok {
		el.Value.(*cacheEntry).d = d
		c.ll.MoveToFront(el)
		return
	}
	c.items[scope] = c.ll.PushFront(&cacheEntry{scope: scope, d: d})
	for c.ll.Len() > c.max {
		last := c.ll.Back()
		c.ll.Remove(last)
		delete(c.items, last.Value.(*cacheEntry).scope)
	}
}

func (c *dekCache) evict(scope string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if el, ok := c.items[scope]; ok {
		c.ll.Remove(el)
		delete(c.items, scope)
	}
}

func (c *dekCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
