package seal

import "context"

// Sealer encrypts values under the data key of a scope (a vault's internal
// id, or "sys" for keyhaven's own material). aad binds a ciphertext to where
// it is stored (vault, object name, version): opening it with any other aad
// fails with ErrOpen.
type Sealer interface {
	Seal(ctx context.Context, scope string, plaintext, aad []byte) ([]byte, error)
	Open(ctx context.Context, scope string, ciphertext, aad []byte) ([]byte, error)
	// Forget destroys the data key of scope (used when a vault is purged);
	// everything sealed under it becomes unreadable.
	Forget(ctx context.Context, scope string) error
}
