package authorization

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/store"
)

// Lock levels (Azure's LockLevel; NotSpecified is not accepted on writes).
const (
	LockCanNotDelete = "CanNotDelete"
	LockReadOnly     = "ReadOnly"
)

// ResourceTypeLocks is the ARM type of a lock.
const ResourceTypeLocks = Namespace + "/" + TypeLocks

// Lock limits. The name and notes limits are Azure's; the others keyhaven's.
const (
	MaxLockNameLen   = 260
	MaxLockNotesLen  = 512
	MaxLockOwners    = 20
	MaxLocksPerScope = 100
	maxAppIDLen      = 128
	maxLocksListed   = 20000
)

const lockPrefix = "rp/authorization/locks/"

// LockOwner is one entry of a lock's owners.
type LockOwner struct {
	ApplicationID string `json:"applicationId,omitempty"`
}

// LockProperties are a lock's "properties".
type LockProperties struct {
	Level  string      `json:"level"`
	Notes  string      `json:"notes,omitempty"`
	Owners []LockOwner `json:"owners,omitempty"`
}

// Lock is a Microsoft.Authorization/locks resource as ARM renders it.
type Lock struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Properties LockProperties  `json:"properties"`
	SystemData *arm.SystemData `json:"systemData,omitempty"`
}

// lockRecord is what the store holds: the lock and its scope (the locked
// resource, group or subscription ID as first written).
type lockRecord struct {
	Scope string `json:"scope"`
	Lock
}

// escScope is the lower-case scope with '/' written as '|' (refused in lock
// scopes), so "{esc}/" lists the locks at one scope and "{esc}|" those below.
func escScope(scope string) string { return strings.ReplaceAll(strings.ToLower(scope), "/", "|") }

func lockKey(scope, name string) string {
	return lockPrefix + escScope(scope) + "/" + strings.ToLower(name)
}

func lockID(scope arm.ResourceID, name string) string {
	return scope.Extend(Namespace, TypeLocks, name).String()
}

// ValidateLockName applies Azure's lock naming rule.
func ValidateLockName(name string) error {
	if name == "" || utf8.RuneCountInString(name) > MaxLockNameLen {
		return arm.InvalidResourceName("The lock name must be 1 to %d characters long.", MaxLockNameLen)
	}
	for _, r := range name {
		if unicode.IsControl(r) || strings.ContainsRune(`<>%&:\?/`, r) {
			return arm.InvalidResourceName("The lock name '%s' is invalid. It cannot contain <, >, %%, &, :, \\, ?, / or control characters.", clip(name, 80))
		}
	}
	return nil
}

// validateLockScope: locks apply to a subscription, a resource group or a
// resource in them.
func validateLockScope(scope arm.ResourceID) error {
	if scope.SubscriptionID == "" {
		return arm.BadRequest("InvalidLockScope",
			"Management locks can be created at a subscription, resource group or resource scope, not at '%s'.", clip(scope.String(), 300))
	}
	if strings.Contains(scope.String(), "|") {
		return arm.BadRequest("InvalidLockScope", "The lock scope '%s' contains '|', which is not allowed.", clip(scope.String(), 300))
	}
	return nil
}

// normalizeLockProperties checks props and gives the level Azure's casing.
func normalizeLockProperties(props LockProperties) (LockProperties, error) {
	switch {
	case strings.EqualFold(props.Level, LockCanNotDelete):
		props.Level = LockCanNotDelete
	case strings.EqualFold(props.Level, LockReadOnly):
		props.Level = LockReadOnly
	case props.Level == "":
		return props, arm.BadRequest("InvalidLockLevel", "The lock level is required: CanNotDelete or ReadOnly.").WithTarget("properties.level")
	default:
		return props, arm.BadRequest("InvalidLockLevel", "The lock level '%s' is invalid. Allowed values: CanNotDelete, ReadOnly.", clip(props.Level, 40)).WithTarget("properties.level")
	}
	if utf8.RuneCountInString(props.Notes) > MaxLockNotesLen {
		return props, arm.BadRequest("InvalidLockNotes", "The lock notes can be at most %d characters.", MaxLockNotesLen).WithTarget("properties.notes")
	}
	if len(props.Owners) > MaxLockOwners {
		return props, arm.BadRequest("InvalidLockOwners", "A lock can have at most %d owners.", MaxLockOwners).WithTarget("properties.owners")
	}
	owners := make([]LockOwner, 0, len(props.Owners))
	for _, o := range props.Owners {
		if len(o.ApplicationID) > maxAppIDLen || strings.ContainsFunc(o.ApplicationID, unicode.IsControl) {
			return props, arm.BadRequest("InvalidLockOwners", "A lock owner's applicationId is invalid.").WithTarget("properties.owners")
		}
		owners = append(owners, o)
	}
	props.Owners = owners
	if len(props.Owners) == 0 {
		props.Owners = nil
	}
	return props, nil
}

func lockNotFound(name string) error {
	return azerr.NotFound("LockNotFound", "The lock '%s' could not be found.", clip(name, 100))
}

// PutLock creates or replaces the lock name at scope for principal by (for
// systemData; may be nil) and reports whether it was created. The scope's
// resource must exist (Options.ResourceExists). It does not authorize: the
// ARM route does, and in-process callers decide for themselves.
func (p *Provider) PutLock(ctx context.Context, scope arm.ResourceID, name string, props LockProperties, by *principal.Principal) (Lock, bool, error) {
	if err := p.checkScopeExists(ctx, scope); err != nil {
		return Lock{}, false, err
	}
	var out Lock
	var created bool
	err := p.st.Update(ctx, func(tx store.Tx) error {
		var err error
		out, created, err = p.PutLockTx(ctx, tx, scope, name, props, by)
		return err
	})
	if err != nil {
		return Lock{}, false, azerr.From(err)
	}
	return out, created, nil
}

// PutLockTx is PutLock inside the caller's transaction, for operations that
// create a resource and its lock as one unit. It does not check that the
// scope's resource exists (the caller is creating it).
func (p *Provider) PutLockTx(ctx context.Context, tx store.Tx, scope arm.ResourceID, name string, props LockProperties, by *principal.Principal) (Lock, bool, error) {
	if err := validateLockScope(scope); err != nil {
		return Lock{}, false, err
	}
	if err := ValidateLockName(name); err != nil {
		return Lock{}, false, err
	}
	props, err := normalizeLockProperties(props)
	if err != nil {
		return Lock{}, false, err
	}
	now := p.clk.Now()
	key := lockKey(scope.String(), name)
	var rec lockRecord
	created := false
	cur, err := tx.Get(ctx, key)
	switch {
	case err == nil:
		old, err := store.DecodeJSON[lockRecord](cur)
		if err != nil {
			return Lock{}, false, err
		}
		rec = *old
		rec.Properties = props
		rec.SystemData = old.SystemData.Touched(by, now)
	case errors.Is(err, store.ErrNotFound):
		at, err := tx.List(ctx, lockPrefix+escScope(scope.String())+"/", store.ListOptions{Limit: MaxLocksPerScope + 1})
		if err != nil {
			return Lock{}, false, err
		}
		if len(at) >= MaxLocksPerScope {
			return Lock{}, false, arm.BadRequest("LockLimitExceeded", "The scope '%s' already has %d locks, the maximum.", clip(scope.String(), 300), MaxLocksPerScope)
		}
		created = true
		rec = lockRecord{Scope: scope.String(), Lock: Lock{ID: lockID(scope, name), Name: name, Type: ResourceTypeLocks,
			Properties: props, SystemData: arm.NewSystemData(by, now)}}
	default:
		return Lock{}, false, err
	}
	if _, err := store.PutJSON(ctx, tx, key, rec, store.Any); err != nil {
		return Lock{}, false, err
	}
	return rec.Lock, created, nil
}

// GetLock returns the lock name at exactly scope (404 LockNotFound).
func (p *Provider) GetLock(ctx context.Context, scope arm.ResourceID, name string) (Lock, error) {
	rec, err := p.st.Get(ctx, lockKey(scope.String(), name))
	if errors.Is(err, store.ErrNotFound) {
		return Lock{}, lockNotFound(name)
	}
	if err != nil {
		return Lock{}, azerr.Internal(err)
	}
	l, err := store.DecodeJSON[lockRecord](rec)
	if err != nil {
		return Lock{}, azerr.Internal(err)
	}
	return l.Lock, nil
}

// DeleteLock deletes the lock name at scope and returns it (404
// LockNotFound when there is none).
func (p *Provider) DeleteLock(ctx context.Context, scope arm.ResourceID, name string) (Lock, error) {
	var out Lock
	err := p.st.Update(ctx, func(tx store.Tx) error {
		var err error
		out, err = p.DeleteLockTx(ctx, tx, scope, name)
		return err
	})
	if err != nil {
		return Lock{}, azerr.From(err)
	}
	return out, nil
}

// DeleteLockTx is DeleteLock inside the caller's transaction.
func (p *Provider) DeleteLockTx(ctx context.Context, tx store.Tx, scope arm.ResourceID, name string) (Lock, error) {
	key := lockKey(scope.String(), name)
	cur, err := tx.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return Lock{}, lockNotFound(name)
	}
	if err != nil {
		return Lock{}, err
	}
	l, err := store.DecodeJSON[lockRecord](cur)
	if err != nil {
		return Lock{}, err
	}
	if err := tx.Delete(ctx, key, cur.Version); err != nil {
		return Lock{}, err
	}
	return l.Lock, nil
}

// ListLocks lists locks by scope: without atScope those at scope and
// beneath it (as ARM's lists at subscription, group and resource level);
// with atScope those at scope and above it, i.e. the locks in force there.
func (p *Provider) ListLocks(ctx context.Context, scope arm.ResourceID, atScope bool) ([]Lock, error) {
	var out []Lock
	err := p.st.View(ctx, func(r store.Reader) error {
		out = nil
		recs, err := p.locksAround(ctx, r, scope, atScope, !atScope)
		if err != nil {
			return err
		}
		for _, l := range recs {
			out = append(out, l.Lock)
		}
		return nil
	})
	if err != nil {
		return nil, azerr.From(err)
	}
	return out, nil
}

// locksAround reads the locks at scope, plus those at its ancestors (up)
// and/or those beneath it (down).
func (p *Provider) locksAround(ctx context.Context, r store.Reader, scope arm.ResourceID, up, down bool) ([]lockRecord, error) {
	prefixes := []string{lockPrefix + escScope(scope.String()) + "/"}
	if up {
		for _, a := range scope.Ancestors() {
			if !a.IsRoot() {
				prefixes = append(prefixes, lockPrefix+escScope(a.String())+"/")
			}
		}
	}
	if down {
		prefixes = append(prefixes, lockPrefix+escScope(scope.String())+"|")
	}
	var out []lockRecord
	for _, pre := range prefixes {
		recs, err := r.List(ctx, pre, store.ListOptions{Limit: maxLocksListed + 1})
		if err != nil {
			return nil, err
		}
		for _, rec := range recs {
			l, err := store.DecodeJSON[lockRecord](rec)
			if err != nil {
				return nil, err
			}
			out = append(out, *l)
		}
		if len(out) > maxLocksListed {
			return nil, azerr.BadParameter("More than %d locks match; list a narrower scope.", maxLocksListed)
		}
	}
	return out, nil
}

// serveLocks serves {scope}/providers/Microsoft.Authorization/locks[/{name}].
func (p *Provider) serveLocks(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	scope := scopeOf(req.ID)
	if err := validateLockScope(scope); err != nil {
		return nil, err
	}
	switch req.Kind {
	case arm.KindCollection:
		if req.Method != http.MethodGet {
			return nil, methodNotAllowed(req)
		}
		atScope, err := parseLockFilter(queryFilter(req))
		if err != nil {
			return nil, err
		}
		locks, err := p.ListLocks(ctx, scope, atScope)
		if err != nil {
			return nil, err
		}
		page, err := arm.Paginate(req, locks, func(l Lock) string { return strings.ToLower(l.ID) })
		if err != nil {
			return nil, err
		}
		return arm.OK(page), nil
	case arm.KindResource:
		name := req.ID.Name()
		switch req.Method {
		case http.MethodGet:
			l, err := p.GetLock(ctx, scope, name)
			if err != nil {
				return nil, err
			}
			return arm.OK(l), nil
		case http.MethodPut:
			var body struct {
				Properties LockProperties `json:"properties"`
			}
			if err := arm.DecodeJSON(req.Body, &body); err != nil {
				return nil, err
			}
			l, created, err := p.PutLock(ctx, scope, name, body.Properties, req.Principal)
			if err != nil {
				return nil, err
			}
			if created {
				return arm.Created(l), nil
			}
			return arm.OK(l), nil
		case http.MethodDelete:
			_, err := p.DeleteLock(ctx, scope, name)
			if isCode(err, "LockNotFound") {
				return arm.NoContent(), nil
			}
			if err != nil {
				return nil, err
			}
			return &arm.Response{Status: http.StatusOK}, nil
		}
	}
	return nil, methodNotAllowed(req)
}
