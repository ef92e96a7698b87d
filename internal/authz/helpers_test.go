package authz

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/store/sqlite"
)

const (
	testTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	testSub    = "0b1f6471-1bf0-4dda-aec3-cb9272f09590"
	testRG     = "/subscriptions/" + testSub + "/resourceGroups/rg-kv"
	testVault  = testRG + "/providers/Microsoft.KeyVault/vaults/kv-one"
	otherVault = testRG + "/providers/Microsoft.KeyVault/vaults/kv-two"
)

var testStart = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

// openStore opens a SQLite store at path, closed when the test ends.
func openStore(t testing.TB, path string) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newTestEngine returns an Engine over a fresh SQLite database, with the
// database path for tests that open a second connection to it.
func newTestEngine(t testing.TB) (*Engine, *clock.Fake, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keyhaven.db")
	clk := clock.NewFake(testStart)
	return New(openStore(t, path), clk), clk, path
}

func newPrincipal() *principal.Principal {
	return &principal.Principal{
		TenantID: testTenant,
		ObjectID: uuid.NewString(),
		AppID:    uuid.NewString(),
		Kind:     principal.ServicePrincipal,
	}
}

func mustAssign(t testing.TB, e *Engine, p *principal.Principal, roleID, scope string) Assignment {
	t.Helper()
	a, created, err := e.CreateAssignment(context.Background(), Assignment{
		Name:             uuid.NewString(),
		Scope:            scope,
		RoleDefinitionID: roleID,
		PrincipalID:      p.ObjectID,
		PrincipalType:    PrincipalTypeFor(p.Kind),
		CreatedBy:        "test",
	})
	if err != nil {
		t.Fatalf("assign %s at %s: %v", roleID, scope, err)
	}
	if !created {
		t.Fatalf("assign %s at %s: created = false", roleID, scope)
	}
	return a
}

func decide(t testing.TB, e *Engine, p *principal.Principal, action string, data bool, scope string) Decision {
	t.Helper()
	d, err := e.Decide(context.Background(), Request{Principal: p, Action: action, DataAction: data, Scope: scope})
	if err != nil {
		t.Fatalf("Decide(%s, %s): %v", action, scope, err)
	}
	return d
}

// wantCode asserts that err is an *azerr.Error with the given status and code.
func wantCode(t testing.TB, err error, status int, code string) {
	t.Helper()
	var ae *azerr.Error
	if !errors.As(err, &ae) {
		t.Fatalf("error = %v, want *azerr.Error %d %s", err, status, code)
	}
	if ae.Status != status || ae.Code != code {
		t.Fatalf("error = %d %s (%s), want %d %s", ae.Status, ae.Code, ae.Message, status, code)
	}
}
