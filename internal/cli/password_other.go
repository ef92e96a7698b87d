//go:build !linux

package cli

import "github.com/keyhaven/keyhaven/internal/azerr"

// readPasswordTTY is only implemented on Linux; elsewhere the password comes
// from --password or KEYHAVEN_PASSWORD.
func readPasswordTTY(string) (string, error) {
	return "", &azerr.Error{Message: "No password given: use --password or KEYHAVEN_PASSWORD."}
}
