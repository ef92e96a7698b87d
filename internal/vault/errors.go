package vault

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

// Key Vault's public error texts, as the service returns them.
const (
	helpNotFound     = "For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
	helpAccessPolicy = "For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287"
	msgMissingToken  = "AKV10000: Request is missing a Bearer or PoP token."
	msgThrottled     = "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"

	// Inner error codes.
	innerRBAC       = "ForbiddenByRbac"
	innerFirewall   = "ForbiddenByFirewall"
	innerConnection = "ForbiddenByConnection"
	// innerAccessPolicy is what Key Vault sends when an access policy lacks
	// the permission ("... does not have secrets get permission on key
	// vault ..."): observed as AccessDenied in service responses.
	innerAccessPolicy = "AccessDenied"
	innerDisabled     = "SecretDisabled"
	innerExpired      = "SecretExpired"
	innerNotYetValid  = "SecretNotYetValid"
	innerDeleted      = "ObjectIsDeletedButRecoverable"
)

// clip bounds caller-supplied text echoed in a message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// The not-found and conflict answers of secrets, keys and certificates
// differ only by the object's noun ("secret", "key", "certificate") and
// error code.

// title is noun with a capital.
func title(noun string) string { return strings.ToUpper(noun[:1]) + noun[1:] }

func errObjectNotFound(code, noun, nameOrID string) *azerr.Error {
	return azerr.NotFound(code,
		"A %s with (name/id) %s was not found in this key vault. If you recently deleted this %s you may be able to recover it using the correct recovery command. %s",
		noun, nameOrID, noun, helpNotFound)
}

func errDeletedObjectNotFound(code, noun, name string) *azerr.Error {
	return azerr.NotFound(code, "Deleted %s not found: %s", title(noun), name)
}

func errObjectDeletedConflict(noun, name string) *azerr.Error {
	return azerr.Conflict("%s %s is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the %s can only be recovered or purged.", title(noun), name, noun).
		WithInner(innerDeleted)
}

func errObjectRestoreConflict(noun, name string) *azerr.Error {
	return azerr.Conflict("%s %s already exists in this key vault and cannot be restored over; delete and purge it first, or restore into another vault.", title(noun), name)
}

func errSecretNotFound(nameOrID string) *azerr.Error {
	return errObjectNotFound("SecretNotFound", "secret", nameOrID)
}

func errDeletedNotFound(name string) *azerr.Error {
	return errDeletedObjectNotFound("SecretNotFound", "secret", name)
}

func errDeletedConflict(name string) *azerr.Error { return errObjectDeletedConflict("secret", name) }

func errRestoreConflict(name string) *azerr.Error { return errObjectRestoreConflict("secret", name) }

func errInvalidName(name string) *azerr.Error {
	return azerr.BadParameter("The request URI contains an invalid name: %s", clip(name, 160))
}

func errDisabled() *azerr.Error {
	return azerr.Forbidden("Operation get is not allowed on a disabled secret.").WithInner(innerDisabled)
}

func errExpired() *azerr.Error {
	return azerr.Forbidden("Operation get is not allowed on an expired secret.").WithInner(innerExpired)
}

func errNotYetValid() *azerr.Error {
	return azerr.Forbidden("Operation get is not allowed on a secret that is not yet valid.").WithInner(innerNotYetValid)
}

func errPurgeProtected(v *VaultInfo) *azerr.Error {
	return azerr.Forbidden("Operation \"purge\" is not allowed because purge protection is enabled for this vault. Key Vault service will automatically purge it after the retention period has passed.\r\nVault: %s", vaultRef(v))
}

func errThrottled(retryMS int64) *azerr.Error {
	e := azerr.New(http.StatusTooManyRequests, "Throttled", msgThrottled)
	e.RetryAfterMS = retryMS
	return e
}

func errBodyTooLarge(limit int64) *azerr.Error {
	return azerr.New(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge",
		"The request body exceeds the maximum of %d bytes for this operation.", limit)
}

func errRouteNotFound(method, path string) *azerr.Error {
	return azerr.New(http.StatusNotFound, "NotFound",
		"The requested operation (%s %s) is not supported by this key vault.", method, clip(path, 200))
}

func errMethodNotAllowed(method, path string) *azerr.Error {
	return azerr.New(http.StatusMethodNotAllowed, "MethodNotAllowed",
		"The method %s is not allowed on %s.", method, clip(path, 200))
}

// vaultRef is the "Vault:" value in Key Vault's messages.
func vaultRef(v *VaultInfo) string {
	return fmt.Sprintf("%s;location=%s", v.Name, strings.ToLower(v.Location))
}
