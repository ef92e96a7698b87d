package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/store"
)

// Store layout (everything under authz/, lower-case GUIDs and scopes in keys):
//
//	authz/generation                       bumped by every write below
//	authz/roledefs/{roleId}                custom RoleDefinition JSON
//	authz/assignments/{name}               Assignment JSON (primary)
//	authz/idx/principal/{principalId}/{name}  Assignment JSON (Decide reads this)
//	authz/idx/scope/{escScope}/{name}          Assignment JSON (list at a scope)
//	authz/idx/role/{roleId}/{name}             Assignment JSON (role in use?)
//
// escScope is the lower-case scope with '/' written as '|' ('|' never occurs
// in a valid scope), so "{escScope}/" lists one scope exactly and
// "{escScope}|" lists everything below it.
const (
	keyGeneration     = "authz/generation"
	prefixRoleDefs    = "authz/roledefs/"
	prefixAssignments = "authz/assignments/"
	prefixByPrincipal = "authz/idx/principal/"
	prefixByScope     = "authz/idx/scope/"
	prefixByRole      = "authz/idx/role/"
)

func escScope(scope string) string {
	return strings.ReplaceAll(strings.ToLower(scope), "/", "|")
}

func principalPrefix(pid string) string { return prefixByPrincipal + strings.ToLower(pid) + "/" }
func rolePrefix(roleID string) string   { return prefixByRole + strings.ToLower(roleID) + "/" }

// maxCachedPrincipals bounds the decision cache; past it the cache starts
// over rather than growing without limit.
const maxCachedPrincipals = 10000

// Engine owns role definitions, role assignments and RBAC decisions.
type Engine struct {
	st  store.Store
	clk clock.Clock

	mu    sync.RWMutex
	gen   int64 // generation the cache contents belong to
	cache map[string]*principalEntry
}

var _ Decider = (*Engine)(nil)

// New returns an Engine over st. Several Engines (in one process or many)
// may share one store: every write bumps authz/generation, and each Decide
// compares it with the generation its cache was built at.
func New(st store.Store, clk clock.Clock) *Engine {
	return &Engine{st: st, clk: clk, cache: map[string]*principalEntry{}}
}

// principalEntry is one principal's assignments with their roles compiled.
type principalEntry struct {
	grants []grant
}

type grant struct {
	a          Assignment
	scopeLower string
	role       *compiledRole
}

// bumpGeneration must be called inside every write transaction of this
// package, so readers in any process see the change on their next Decide.
func bumpGeneration(ctx context.Context, tx store.Tx) error {
	var n int64
	rec, err := tx.Get(ctx, keyGeneration)
	switch {
	case err == nil:
		n, _ = strconv.ParseInt(string(rec.Value), 10, 64)
	case errors.Is(err, store.ErrNotFound):
	default:
		return err
	}
	_, err = tx.Put(ctx, keyGeneration, []byte(strconv.FormatInt(n+1, 10)), store.Any)
	return err
}

// generation returns the store version of the generation record (0 before
// the first write). Versions are unique per write transaction, so any change
// shows as a different number.
func generation(ctx context.Context, r store.Reader) (int64, error) {
	rec, err := r.Get(ctx, keyGeneration)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return rec.Version, nil
}

// Decide answers whether req.Principal may perform req.Action at req.Scope.
// It denies by default; an error means the store failed (callers should
// refuse the request).
func (e *Engine) Decide(ctx context.Context, req Request) (Decision, error) {
	if req.Principal == nil || req.Principal.ObjectID == "" {
		return Decision{Reason: "the caller is not authenticated"}, nil
	}
	if req.Action == "" {
		return Decision{Reason: "no action was given"}, nil
	}
	scope := NormalizeScope(req.Scope)
	if len(scope) > 2*MaxScopeLen {
		return Decision{Reason: "the scope is too long"}, nil
	}
	pid := strings.ToLower(req.Principal.ObjectID)

	gen, err := generation(ctx, e.st)
	if err != nil {
		return Decision{}, azerr.Internal(fmt.Errorf("authz: read generation: %w", err))
	}
	ent := e.cached(gen, pid)
	if ent == nil {
		if ent, err = e.load(ctx, pid); err != nil {
			return Decision{}, azerr.Internal(fmt.Errorf("authz: load assignments: %w", err))
		}
	}

	scopeLower := strings.ToLower(scope)
	action := strings.ToLower(req.Action)
	for i := range ent.grants {
		g := &ent.grants[i]
		if scopeCoversLower(g.scopeLower, scopeLower) && g.role.allows(action, req.DataAction) {
			return Decision{
				Allowed:      true,
				Reason:       fmt.Sprintf("granted by role '%s' at scope '%s'", g.role.def.RoleName, g.a.Scope),
				AssignmentID: AssignmentResourceID(g.a.Scope, g.a.Name),
			}, nil
		}
	}
	return Decision{Reason: fmt.Sprintf("no role assignment grants principal '%s' the action '%s' at scope '%s'",
		req.Principal.ObjectID, req.Action, truncate(scope, 600))}, nil
}

// cached returns the principal's entry if the cache is at generation gen;
// a cache at another generation is dropped whole.
func (e *Engine) cached(gen int64, pid string) *principalEntry {
	e.mu.RLock()
	if e.gen == gen {
		ent := e.cache[pid]
		e.mu.RUnlock()
		return ent
	}
	e.mu.RUnlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	// gen < e.gen: another call already moved the cache to a newer
	// generation; its entries are at least as fresh as what this call read,
	// and the cache must never roll back.
	if gen > e.gen {
		e.cache = map[string]*principalEntry{}
		e.gen = gen
	}
	return e.cache[pid]
}

// load reads the principal's assignments and their roles from one snapshot,
// together with the generation that snapshot belongs to, and caches the
// result only if the cache is still at that generation.
func (e *Engine) load(ctx context.Context, pid string) (*principalEntry, error) {
	var (
		ent = &principalEntry{}
		gen int64
	)
	err := e.st.View(ctx, func(r store.Reader) error {
		var err error
		if gen, err = generation(ctx, r); err != nil {
			return err
		}
		recs, err := r.List(ctx, principalPrefix(pid), store.ListOptions{Limit: MaxAssignmentsPerPrincipal + 1})
		if err != nil {
			return err
		}
		roles := map[string]*compiledRole{}
		for _, rec := range recs {
			var a Assignment
			if err := json.Unmarshal(rec.Value, &a); err != nil {
				return fmt.Errorf("decode %s: %w", rec.Key, err)
			}
			rid := strings.ToLower(a.RoleDefinitionID)
			cr, ok := roles[rid]
			if !ok {
				def, err := readRoleDefinition(ctx, r, rid)
				if errors.Is(err, errRoleMissing) {
					continue // role deleted under a dangling assignment: grants nothing
				}
				if err != nil {
					return err
				}
				cr = compileRole(&def)
				roles[rid] = cr
			}
			ent.grants = append(ent.grants, grant{a: a, scopeLower: strings.ToLower(a.Scope), role: cr})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Broadest scope first, then by name, so the reported grant is stable.
	slices.SortFunc(ent.grants, func(x, y grant) int {
		if c := strings.Count(x.scopeLower, "/") - strings.Count(y.scopeLower, "/"); c != 0 {
			return c
		}
		return strings.Compare(x.a.Name, y.a.Name)
	})

	e.mu.Lock()
	if gen > e.gen || (gen == e.gen && len(e.cache) >= maxCachedPrincipals) {
		e.cache = map[string]*principalEntry{}
		e.gen = gen
	}
	if gen == e.gen {
		e.cache[pid] = ent
	}
	e.mu.Unlock()
	return ent, nil
}

var errRoleMissing = errors.New("role definition missing")

// readRoleDefinition returns a built-in or stored custom role by lower-case GUID.
func readRoleDefinition(ctx context.Context, r store.Reader, id string) (RoleDefinition, error) {
	if d, ok := builtinRoles[id]; ok {
		return d, nil
	}
	rec, err := r.Get(ctx, prefixRoleDefs+id)
	if errors.Is(err, store.ErrNotFound) {
		return RoleDefinition{}, errRoleMissing
	}
	if err != nil {
		return RoleDefinition{}, err
	}
	var d RoleDefinition
	if err := json.Unmarshal(rec.Value, &d); err != nil {
		return RoleDefinition{}, fmt.Errorf("decode role %s: %w", id, err)
	}
	return d, nil
}
