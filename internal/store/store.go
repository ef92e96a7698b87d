package store

import (
	"context"
	"errors"
)

// Record is one stored value.
type Record struct {
	Key   string
	Value []byte
	// Version is the store revision of the transaction that last wrote this
	// key. It only grows, is unique per write transaction across the whole
	// store, and is > 0 for any existing record.
	Version int64
}

// Preconditions for Put and Delete.
const (
	// Any writes regardless of the current state.
	Any int64 = 0
	// Absent requires that the key does not exist.
	Absent int64 = -1
	// Any value > 0 requires that the key exists with exactly that Version.
)

var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a precondition (Absent or a version) did not hold.
	ErrConflict = errors.New("store: precondition failed")
	// ErrTooLarge: a key or value exceeds the store's limits.
	ErrTooLarge = errors.New("store: key or value too large")
)

// Limits every backend enforces.
const (
	MaxKeyLen   = 1024
	MaxValueLen = 4 << 20
)

// ListOptions pages through keys in byte-wise lexicographic order.
type ListOptions struct {
	// After, when set, starts the listing strictly after this key.
	After string
	// Limit caps the number of records returned; 0 means no limit.
	Limit int
	// Reverse lists in descending key order (After then means strictly before).
	Reverse bool
}

// Reader reads consistent data.
type Reader interface {
	// Get returns the record at key, or ErrNotFound.
	Get(ctx context.Context, key string) (Record, error)
	// List returns records whose key starts with prefix, ordered by key.
	List(ctx context.Context, prefix string, opts ListOptions) ([]Record, error)
}

// Tx is a read-write transaction. Reads see the transaction's own writes.
type Tx interface {
	Reader
	// Put writes value at key if the precondition holds (Any, Absent or a
	// version), returning the new version, else ErrConflict.
	Put(ctx context.Context, key string, value []byte, ifVersion int64) (int64, error)
	// Delete removes key if the precondition holds. Deleting a missing key
	// with Any is not an error; with Absent or a version it is ErrConflict.
	Delete(ctx context.Context, key string, ifVersion int64) error
}

// Store is a transactional, durable key-value store.
type Store interface {
	Reader
	// Update runs fn in a serializable read-write transaction. When fn returns
	// nil every write commits atomically and durably before Update returns;
	// when it returns an error nothing is written and that error is returned.
	// A backend may run fn again after a serialization conflict with another
	// transaction, so fn must have no effects outside tx.
	Update(ctx context.Context, fn func(tx Tx) error) error
	// View runs fn against a consistent read-only snapshot.
	View(ctx context.Context, fn func(r Reader) error) error
	// Close releases the backend.
	Close() error
}
