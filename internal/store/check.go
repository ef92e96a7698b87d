package store

import (
	"fmt"
)

// CheckKey enforces MaxKeyLen. Backends call it before touching storage so
// every backend rejects the same inputs.
func CheckKey(key string) error {
	if len(key) > MaxKeyLen {
		return fmt.Errorf("%w: key is %d bytes, limit %d", ErrTooLarge, len(key), MaxKeyLen)
	}
	return nil
}

// CheckValue enforces MaxValueLen.
func CheckValue(value []byte) error {
	if len(value) > MaxValueLen {
		return fmt.Errorf("%w: value is %d bytes, limit %d", ErrTooLarge, len(value), MaxValueLen)
	}
	return nil
}

// CheckPrecondition rejects preconditions other than Any, Absent or a
// positive version.
func CheckPrecondition(ifVersion int64) error {
	if ifVersion < Absent {
		return fmt.Errorf("store: invalid precondition %d", ifVersion)
	}
	return nil
}

// CheckList validates a List call.
func CheckList(prefix string, opts ListOptions) error {
	if err := CheckKey(prefix); err != nil {
		return err
	}
	if err := CheckKey(opts.After); err != nil {
		return err
	}
	if opts.Limit < 0 {
		return fmt.Errorf("store: invalid list limit %d", opts.Limit)
	}
	return nil
}

// PrefixEnd returns the smallest key greater than every key that starts with
// prefix, so a prefix scan is the half-open range [prefix, end). ok is false
// when no such key exists (prefix is empty or all 0xFF bytes) and the range
// is unbounded above. Backends use a range rather than LIKE so that any byte,
// including '%', '_' and NUL, is matched literally.
func PrefixEnd(prefix string) (end string, ok bool) {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

// CheckPut validates a Put's key, value and precondition, in the order every
// backend reports them.
func CheckPut(key string, value []byte, ifVersion int64) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if err := CheckValue(value); err != nil {
		return err
	}
	return CheckPrecondition(ifVersion)
}

// CheckDelete validates a Delete's key and precondition. Absent is
// ErrConflict without touching storage: "delete it, provided it does not
// exist" can never hold.
func CheckDelete(key string, ifVersion int64) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if err := CheckPrecondition(ifVersion); err != nil {
		return err
	}
	if ifVersion == Absent {
		return ErrConflict
	}
	return nil
}

// PutOutcome maps the rows a conditional Put statement touched to its
// result: a Put always writes its row unless the precondition failed.
func PutOutcome(rowsAffected int64) error {
	if rowsAffected == 0 {
		return ErrConflict
	}
	return nil
}

// DeleteOutcome maps the rows a Delete statement touched to its result:
// with Any a missing key is not an error; with a version it is ErrConflict.
func DeleteOutcome(ifVersion, rowsAffected int64) error {
	if ifVersion != Any && rowsAffected == 0 {
		return ErrConflict
	}
	return nil
}
