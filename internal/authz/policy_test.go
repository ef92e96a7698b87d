package authz

import (
	"testing"

	"github.com/keyhaven/keyhaven/internal/principal"
)

func TestPolicyAllows(t *testing.T) {
	const (
		oid       = "5b1e9a6c-2b2f-4a4e-9d8a-0f6f7a9b1c2d"
		otherOID  = "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
		app       = "3365d4ea-bb16-4bc9-86dd-f2c8cf6f1f56"
		otherApp  = "05cf5e27-931d-47ad-826d-cb9028d8bd7a"
		otherTent = "11111111-2222-3333-4444-555555555555"
	)
	caller := &principal.Principal{TenantID: testTenant, ObjectID: oid, AppID: app, Kind: principal.User}
	getSet := []AccessPolicy{{TenantID: testTenant, ObjectID: oid, Permissions: Permissions{Secrets: []string{"Get", "Set"}}}}
	cases := []struct {
		name     string
		policies []AccessPolicy
		p        *principal.Principal
		kind     string
		perm     string
		want     bool
	}{
		{"ok/get-set-allows-get", getSet, caller, KindSecrets, "get", true},
		{"ok/get-set-allows-set", getSet, caller, KindSecrets, "set", true},
		{"ok/case-insensitive", getSet, caller, "Secrets", "GET", true},
		{"fail/get-set-refuses-list", getSet, caller, KindSecrets, "list", false},
		{"fail/get-set-refuses-delete", getSet, caller, KindSecrets, "delete", false},
		{"fail/get-set-refuses-purge", getSet, caller, KindSecrets, "purge", false},
		{"fail/secrets-grant-not-keys", getSet, caller, KindKeys, "get", false},
		{"ok/all-grants-everything-of-kind", []AccessPolicy{{TenantID: testTenant, ObjectID: oid, Permissions: Permissions{Secrets: []string{"all"}}}}, caller, KindSecrets, "purge", true},
		{"fail/all-secrets-not-certificates", []AccessPolicy{{TenantID: testTenant, ObjectID: oid, Permissions: Permissions{Secrets: []string{"All"}}}}, caller, KindCertificates, "get", false},
		{"ok/keys-unwrapKey", []AccessPolicy{{TenantID: testTenant, ObjectID: oid, Permissions: Permissions{Keys: []string{"unwrapKey"}}}}, caller, KindKeys, "unwrapkey", true},
		{"ok/certificates-managecontacts", []AccessPolicy{{TenantID: testTenant, ObjectID: oid, Permissions: Permissions{Certificates: []string{"ManageContacts"}}}}, caller, KindCertificates, "managecontacts", true},
		{"ok/storage", []AccessPolicy{{TenantID: testTenant, ObjectID: oid, Permissions: Permissions{Storage: []string{"getsas"}}}}, caller, KindStorage, "getsas", true},
		{"fail/other-object-id", getSet, &principal.Principal{TenantID: testTenant, ObjectID: otherOID}, KindSecrets, "get", false},
		{"fail/other-tenant-same-object-id", getSet, &principal.Principal{TenantID: otherTent, ObjectID: oid}, KindSecrets, "get", false},
		{"ok/second-policy-matches", append([]AccessPolicy{{TenantID: testTenant, ObjectID: otherOID, Permissions: Permissions{Secrets: []string{"all"}}}}, getSet...), caller, KindSecrets, "get", true},
		{"ok/compound-identity-right-app", []AccessPolicy{{TenantID: testTenant, ObjectID: oid, ApplicationID: app, Permissions: Permissions{Secrets: []string{"get"}}}}, caller, KindSecrets, "get", true},
		{"fail/compound-identity-other-app", []AccessPolicy{{TenantID: testTenant, ObjectID: oid, ApplicationID: otherApp, Permissions: Permissions{Secrets: []string{"get"}}}}, caller, KindSecrets, "get", false},
		{"fail/compound-identity-no-app", []AccessPolicy{{TenantID: testTenant, ObjectID: oid, ApplicationID: app, Permissions: Permissions{Secrets: []string{"get"}}}}, &principal.Principal{TenantID: testTenant, ObjectID: oid}, KindSecrets, "get", false},
		{"fail/nil-principal", getSet, nil, KindSecrets, "get", false},
		{"fail/no-policies", nil, caller, KindSecrets, "get", false},
		{"fail/unknown-kind", getSet, caller, "blobs", "get", false},
		{"fail/empty-perm", getSet, caller, KindSecrets, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := PolicyAllows(c.policies, c.p, c.kind, c.perm); got != c.want {
				t.Fatalf("PolicyAllows = %v, want %v", got, c.want)
			}
		})
	}
}

func TestValidatePermissions(t *testing.T) {
	many := make([]string, maxPolicyPermissions+1)
	for i := range many {
		many[i] = "get"
	}
	cases := []struct {
		name  string
		kind  string
		perms []string
		ok    bool
	}{
		{"ok/secrets", KindSecrets, []string{"get", "list", "set", "delete", "backup", "restore", "recover", "purge"}, true},
		{"ok/mixed-case-and-all", "Secrets", []string{"Get", "ALL"}, true},
		{"ok/keys-full", KindKeys, PolicyPermissionNames(KindKeys), true},
		{"ok/certificates-full", KindCertificates, PolicyPermissionNames(KindCertificates), true},
		{"ok/storage-full", KindStorage, PolicyPermissionNames(KindStorage), true},
		{"ok/empty", KindSecrets, nil, true},
		{"fail/key-permission-on-secrets", KindSecrets, []string{"decrypt"}, false},
		{"fail/unknown-name", KindKeys, []string{"explode"}, false},
		{"fail/unknown-kind", "blobs", []string{"get"}, false},
		{"fail/too-many", KindSecrets, many, false},
		{"fail/empty-name", KindSecrets, []string{""}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ValidatePermissions(c.kind, c.perms)
			if c.ok && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !c.ok {
				wantCode(t, err, 400, "BadParameter")
			}
		})
	}
	if PolicyPermissionNames("nope") != nil {
		t.Fatal("names for unknown kind")
	}
}
