package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// DecodeError reports a record whose value is not the JSON its reader
// expected. Its message names the key and where decoding failed, never the
// value: stored records may hold secrets, and encoding/json's own messages
// quote pieces of the input. Unwrap gives the json error for errors.As.
type DecodeError struct {
	Key string
	Err error
}

func (e *DecodeError) Error() string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(e.Err, &syn):
		return fmt.Sprintf("store: decode %s: invalid JSON at offset %d", e.Key, syn.Offset)
	case errors.As(e.Err, &typ):
		field := typ.Field
		if field == "" {
			field = "value"
		}
		// Value is "number 42" for numbers: keep only the kind.
		kind, _, _ := strings.Cut(typ.Value, " ")
		return fmt.Sprintf("store: decode %s: %s is a JSON %s, want Go %s", e.Key, field, kind, typ.Type)
	default:
		return fmt.Sprintf("store: decode %s: malformed record", e.Key)
	}
}

func (e *DecodeError) Unwrap() error { return e.Err }

// LoadJSON reads key and decodes its JSON value into v, returning the
// record's version. A missing key is ErrNotFound; a value that does not
// decode is a *DecodeError.
func LoadJSON(ctx context.Context, r Reader, key string, v any) (int64, error) {
	rec, err := r.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(rec.Value, v); err != nil {
		return 0, &DecodeError{Key: key, Err: err}
	}
	return rec.Version, nil
}

// GetJSON reads key and decodes its JSON value as a T, returning it with the
// record's version. Errors are as for LoadJSON.
func GetJSON[T any](ctx context.Context, r Reader, key string) (*T, int64, error) {
	var v T
	ver, err := LoadJSON(ctx, r, key, &v)
	if err != nil {
		return nil, 0, err
	}
	return &v, ver, nil
}

// DecodeJSON decodes an already read record (from List, say) as a T; a value
// that does not decode is a *DecodeError.
func DecodeJSON[T any](rec Record) (*T, error) {
	var v T
	if err := json.Unmarshal(rec.Value, &v); err != nil {
		return nil, &DecodeError{Key: rec.Key, Err: err}
	}
	return &v, nil
}

// PutJSON encodes v as JSON and writes it at key under the precondition
// ifVersion (Any, Absent or a version), returning the new version. Size
// limits and preconditions are the backend's (ErrTooLarge, ErrConflict).
func PutJSON(ctx context.Context, tx Tx, key string, v any, ifVersion int64) (int64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("store: encode %s: %w", key, err)
	}
	return tx.Put(ctx, key, b, ifVersion)
}
