package vault

import (
	"context"
	"strings"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/store"
)

// Key Vault refuses to change a certificate's backing secret or key by
// itself: 403 Forbidden, "Operation "set" is not allowed as this object's
// lifetime is managed by Key Vault.", inner SecretManagedByKeyVault.

const (
	innerSecretManaged = "SecretManagedByKeyVault"
	innerKeyManaged    = "KeyManagedByKeyVault"
)

func errManaged(op, inner string) *azerr.Error {
	return azerr.Forbidden("Operation \"%s\" is not allowed as this object's lifetime is managed by Key Vault. Use the certificate of the same name instead.", op).
		WithInner(inner)
}

// managedGuard names, for each secret and key operation that would change
// an object on its own, the verb of the refusal and whether the object is
// looked up among the deleted ones.
var managedGuard = map[opKind]struct {
	verb    string
	deleted bool
}{
	opSet: {"set", false}, opUpdate: {"update", false}, opDelete: {"delete", false}, opBackup: {"backup", false},
	opRecover: {"recover", true}, opPurge: {"purge", true},
	opKeyCreate: {"create", false}, opKeyImport: {"import", false}, opKeyUpdate: {"update", false},
	opKeyDelete: {"delete", false}, opKeyBackup: {"backup", false}, opKeyRotate: {"rotate", false},
	opKeyRotationPolicyUpdate: {"setRotationPolicy", false},
	opKeyRecover:              {"recover", true}, opKeyPurge: {"purge", true},
}

// guardManaged refuses an operation on a secret or key that backs a
// certificate.
func (s *Service) guardManaged(rq *request) error {
	g, ok := managedGuard[rq.route.Op]
	if !ok || rq.route.Name == "" {
		return nil
	}
	managed, err := s.isManaged(rq.r.Context(), rq, isKeyOp(rq.route.Op), g.deleted)
	if err != nil || !managed {
		return err
	}
	if isKeyOp(rq.route.Op) {
		return errManaged(g.verb, innerKeyManaged)
	}
	return errManaged(g.verb, innerSecretManaged)
}

func (s *Service) isManaged(ctx context.Context, rq *request, key, deleted bool) (bool, error) {
	iid, lname := rq.vault.InternalID, strings.ToLower(rq.route.Name)
	var managed bool
	var err error
	switch {
	case key && deleted:
		var d *keyDeletedRec
		d, _, err = store.GetJSON[keyDeletedRec](ctx, s.st, keyDeletedKey(iid, lname))
		managed = err == nil && d.Meta.Managed
	case key:
		var h *keyHeadRec
		h, _, err = store.GetJSON[keyHeadRec](ctx, s.st, keyHeadKey(iid, lname))
		managed = err == nil && h.Meta.Managed
	case deleted:
		var d *deletedRec
		d, _, err = store.GetJSON[deletedRec](ctx, s.st, deletedKey(iid, lname))
		managed = err == nil && d.Meta.Managed
	default:
		var h *headRec
		h, _, err = store.GetJSON[headRec](ctx, s.st, headKey(iid, lname))
		managed = err == nil && h.Meta.Managed
	}
	if notFound(err) {
		return false, nil
	}
	return managed, err
}
