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
