package compat_test

import (
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/msi/armmsi"
	"github.com/google/uuid"
)

const uaiType = "Microsoft.ManagedIdentity/userAssignedIdentities"

func (e *env) identitiesClient(t *testing.T) *armmsi.UserAssignedIdentitiesClient {
	t.Helper()
	c, err := armmsi.NewUserAssignedIdentitiesClient(e.sub, e.admin, e.armOptions())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestARMManagedIdentities drives armmsi.UserAssignedIdentitiesClient:
// create, get, update, list by group and subscription, delete.
func TestARMManagedIdentities(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	client := e.identitiesClient(t)
	const rg, rg2 = "rg-arm-msi", "rg-arm-msi-2"
	rgID := e.createResourceGroup(t, rg)
	e.createResourceGroup(t, rg2)
	var first armmsi.Identity

	t.Run("ok/create", func(t *testing.T) {
		res, err := client.CreateOrUpdate(ctx, rg, "uai-one", armmsi.Identity{
			Location: to.Ptr("local"), Tags: map[string]*string{"app": to.Ptr("compat")},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		first = res.Identity
		if *res.ID != rgID+"/providers/"+uaiType+"/uai-one" || *res.Name != "uai-one" || !strings.EqualFold(*res.Type, uaiType) {
			t.Errorf("id/name/type = %v %v %v", *res.ID, *res.Name, *res.Type)
		}
		p := res.Properties
		if p == nil || uuid.Validate(deref(p.ClientID)) != nil || uuid.Validate(deref(p.PrincipalID)) != nil || deref(p.TenantID) != e.tenant {
			t.Fatalf("properties = %+v", p)
		}
		if *res.Tags["app"] != "compat" || *res.Location != "local" {
			t.Errorf("tags/location = %v/%v", res.Tags, *res.Location)
		}
	})

	t.Run("ok/create-again-keeps-ids", func(t *testing.T) {
		res, err := client.CreateOrUpdate(ctx, rg, "uai-one", armmsi.Identity{
			Location: to.Ptr("local"), Tags: map[string]*string{"app": to.Ptr("compat"), "v": to.Ptr("2")},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *res.Properties.ClientID != *first.Properties.ClientID || *res.Properties.PrincipalID != *first.Properties.PrincipalID {
			t.Errorf("replacing the identity changed its ids")
		}
		if len(res.Tags) != 2 {
			t.Errorf("tags = %v", res.Tags)
		}
	})

	t.Run("ok/get", func(t *testing.T) {
		res, err := client.Get(ctx, rg, "uai-one", nil)
		if err != nil {
			t.Fatal(err)
		}
		if *res.ID != *first.ID || *res.Properties.ClientID != *first.Properties.ClientID {
			t.Errorf("get = %+v", res.Identity)
		}
		_, err = client.Get(ctx, rg, "uai-missing", nil)
		wantResponseError(t, "get missing identity", err, http.StatusNotFound, "")
	})

	t.Run("ok/update", func(t *testing.T) {
		res, err := client.Update(ctx, rg, "uai-one", armmsi.IdentityUpdate{
			Tags: map[string]*string{"app": to.Ptr("compat"), "patched": to.Ptr("yes")},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Tags) != 2 || *res.Tags["patched"] != "yes" {
			t.Errorf("tags = %v", res.Tags)
		}
		if *res.Properties.ClientID != *first.Properties.ClientID {
			t.Error("update changed the client id")
		}
		got, err := client.Get(ctx, rg, "uai-one", nil)
		if err != nil {
			t.Fatal(err)
		}
		if got.Tags["patched"] == nil {
			t.Errorf("tags after update = %v", got.Tags)
		}
	})

	t.Run("ok/list", func(t *testing.T) {
		for _, c := range []struct{ rg, name string }{{rg, "uai-two"}, {rg2, "uai-three"}} {
			if _, err := client.CreateOrUpdate(ctx, c.rg, c.name, armmsi.Identity{Location: to.Ptr("local")}, nil); err != nil {
				t.Fatal(err)
			}
		}
		var byRG, bySub []string
		p := client.NewListByResourceGroupPager(rg, nil)
		for p.More() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range page.Value {
				byRG = append(byRG, *v.Name)
			}
		}
		s := client.NewListBySubscriptionPager(nil)
		for s.More() {
			page, err := s.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range page.Value {
				bySub = append(bySub, *v.Name)
			}
		}
		sort.Strings(byRG)
		sort.Strings(bySub)
		if strings.Join(byRG, ",") != "uai-one,uai-two" {
			t.Errorf("by resource group = %v", byRG)
		}
		if strings.Join(bySub, ",") != "uai-one,uai-three,uai-two" {
			t.Errorf("by subscription = %v", bySub)
		}
	})

	t.Run("ok/delete", func(t *testing.T) {
		if _, err := client.Delete(ctx, rg, "uai-one", nil); err != nil {
			t.Fatal(err)
		}
		_, err := client.Get(ctx, rg, "uai-one", nil)
		wantResponseError(t, "get deleted identity", err, http.StatusNotFound, "")
		// Deleting again is not an error (ARM delete is idempotent).
		if _, err := client.Delete(ctx, rg, "uai-one", nil); err != nil {
			t.Fatalf("second delete: %v", err)
		}
	})

	t.Run("fail/bad-name", func(t *testing.T) {
		_, err := client.CreateOrUpdate(ctx, rg, "-bad-", armmsi.Identity{Location: to.Ptr("local")}, nil)
		wantResponseError(t, "create with invalid name", err, http.StatusBadRequest, "")
	})
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
