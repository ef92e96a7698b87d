package authorization

import (
	"context"
	"net/http"
	"strings"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/store"
)

// BeforeWrite is the lock guard (arm.WriteGuard), run by the ARM server
// before every mutating control-plane request on id:
//
//   - DELETE is refused when a lock of either level is at id or an ancestor
//     (locks are inherited down the tree), or anywhere beneath id (deleting
//     a resource group that holds a locked vault).
//   - PUT, PATCH and POST are refused when a ReadOnly lock is at id or an
//     ancestor. A POST whose target is a subscription itself (e.g.
//     checkNameAvailability) is a query and passes.
//   - Lock writes themselves are exempt, or no lock could be removed; they
//     need Microsoft.Authorization/locks/write|delete instead, which the
//     core authorizes. Role assignments are not exempt: Azure refuses to
//     create them under ReadOnly and to delete them under either level.
//
// The data plane never consults it: Azure locks govern the control plane.
func (p *Provider) BeforeWrite(ctx context.Context, id arm.ResourceID, method string) error {
	if method == http.MethodGet || method == http.MethodHead || isLockID(id) {
		return nil
	}
	del := method == http.MethodDelete
	if method == http.MethodPost && id.IsSubscription() {
		return nil
	}
	var blocking []string
	err := p.st.View(ctx, func(r store.Reader) error {
		blocking = nil
		locks, err := p.locksAround(ctx, r, id, true, del)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, l := range locks {
			if !del && l.Properties.Level != LockReadOnly {
				continue
			}
			if k := strings.ToLower(l.Scope); !seen[k] {
				seen[k] = true
				blocking = append(blocking, l.Scope)
			}
		}
		return nil
	})
	if err != nil {
		return azerr.From(err)
	}
	if len(blocking) == 0 {
		return nil
	}
	op := "write"
	if del {
		op = "delete"
	}
	return ScopeLocked(id.String(), op, blocking)
}

// ScopeLocked is ARM's 409 for a write refused by locks, worded as Azure
// words it.
func ScopeLocked(scope, op string, lockScopes []string) *azerr.Error {
	return azerr.New(http.StatusConflict, "ScopeLocked",
		"The scope '%s' cannot perform %s operation because following scope(s) are locked: '%s'. Please remove the lock and try again.",
		scope, op, strings.Join(lockScopes, "','"))
}

// isLockID reports whether id is a lock (or the lock collection).
func isLockID(id arm.ResourceID) bool {
	if len(id.Providers) == 0 {
		return false
	}
	b := id.Providers[len(id.Providers)-1]
	return strings.EqualFold(b.Namespace, Namespace) && len(b.Types) > 0 && strings.EqualFold(b.Types[0], TypeLocks)
}
