package compat_test

import (
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
)

// TestARMKeyVault drives armkeyvault.VaultsClient through a vault's whole
// life: create, read, patch, list, soft delete, recover, purge.
func TestARMKeyVault(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	client := e.vaultsClient(t)
	const rg, name, other = "rg-arm-kv", "kv-compat-arm", "kv-compat-arm-2"
	rgID := e.createResourceGroup(t, rg)
	vaultType := to.Ptr("Microsoft.KeyVault/vaults")

	checkName := func(t *testing.T, want bool) armkeyvault.CheckNameAvailabilityResult {
		t.Helper()
		res, err := client.CheckNameAvailability(ctx, armkeyvault.VaultCheckNameAvailabilityParameters{
			Name: to.Ptr(name), Type: vaultType,
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.NameAvailable == nil || *res.NameAvailable != want {
			t.Fatalf("nameAvailable = %v, want %v (reason %v)", res.NameAvailable, want, res.Reason)
		}
		return res.CheckNameAvailabilityResult
	}

	t.Run("ok/name-available", func(t *testing.T) { checkName(t, true) })

	t.Run("ok/create", func(t *testing.T) {
		params := e.vaultParams(true)
		params.Tags = map[string]*string{"team": to.Ptr("compat")}
		poller, err := client.BeginCreateOrUpdate(ctx, rg, name, params, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := pollUntilDone(t, ctx, poller)
		if err != nil {
			t.Fatal(err)
		}
		v := res.Vault
		if *v.ID != rgID+"/providers/Microsoft.KeyVault/vaults/"+name || *v.Name != name || *v.Type != *vaultType {
			t.Errorf("id/name/type = %v %v %v", *v.ID, *v.Name, *v.Type)
		}
		p := v.Properties
		if p == nil || p.VaultURI == nil || *p.VaultURI != e.srv.VaultURL(name) {
			t.Fatalf("vaultUri = %v, want %s", p.VaultURI, e.srv.VaultURL(name))
		}
		if *p.TenantID != e.tenant || *p.SKU.Name != armkeyvault.SKUNameStandard || !*p.EnableRbacAuthorization {
			t.Errorf("properties = tenant %v sku %v rbac %v", *p.TenantID, *p.SKU.Name, *p.EnableRbacAuthorization)
		}
		if p.ProvisioningState == nil || *p.ProvisioningState != armkeyvault.VaultProvisioningStateSucceeded {
			t.Errorf("provisioningState = %v", p.ProvisioningState)
		}
		if *v.Tags["team"] != "compat" || *v.Location != "local" {
			t.Errorf("tags/location = %v %v", v.Tags, *v.Location)
		}
	})

	t.Run("ok/name-taken", func(t *testing.T) {
		res := checkName(t, false)
		if res.Reason == nil || *res.Reason != armkeyvault.ReasonAlreadyExists {
			t.Errorf("reason = %v", res.Reason)
		}
	})

	t.Run("ok/get", func(t *testing.T) {
		res, err := client.Get(ctx, rg, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *res.Properties.VaultURI != e.srv.VaultURL(name) || *res.Properties.SoftDeleteRetentionInDays != 7 {
			t.Errorf("get = %+v", res.Properties)
		}
		_, err = client.Get(ctx, rg, "kv-no-such-vault", nil)
		wantResponseError(t, "get missing vault", err, http.StatusNotFound, "ResourceNotFound")
	})

	t.Run("ok/update-tags-and-network-acls", func(t *testing.T) {
		res, err := client.Update(ctx, rg, name, armkeyvault.VaultPatchParameters{
			Tags: map[string]*string{"team": to.Ptr("compat"), "stage": to.Ptr("two")},
			Properties: &armkeyvault.VaultPatchProperties{
				NetworkACLs: &armkeyvault.NetworkRuleSet{
					DefaultAction: to.Ptr(armkeyvault.NetworkRuleActionDeny),
					Bypass:        to.Ptr(armkeyvault.NetworkRuleBypassOptionsAzureServices),
					IPRules:       []*armkeyvault.IPRule{{Value: to.Ptr("127.0.0.1")}, {Value: to.Ptr("10.1.0.0/16")}},
				},
			},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkACLs := func(t *testing.T, v armkeyvault.Vault) {
			t.Helper()
			if len(v.Tags) != 2 || *v.Tags["stage"] != "two" {
				t.Errorf("tags = %v", v.Tags)
			}
			acl := v.Properties.NetworkACLs
			if acl == nil || *acl.DefaultAction != armkeyvault.NetworkRuleActionDeny ||
				*acl.Bypass != armkeyvault.NetworkRuleBypassOptionsAzureServices || len(acl.IPRules) != 2 {
				t.Fatalf("networkAcls = %+v", acl)
			}
			var ips []string
			for _, r := range acl.IPRules {
				ips = append(ips, *r.Value)
			}
			sort.Strings(ips)
			// Azure answers a single address as a /32 prefix.
			if ips[0] != "10.1.0.0/16" || strings.TrimSuffix(ips[1], "/32") != "127.0.0.1" {
				t.Errorf("ipRules = %v", ips)
			}
		}
		checkACLs(t, res.Vault)
		got, err := client.Get(ctx, rg, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkACLs(t, got.Vault)
		// The patch left what it did not name alone.
		if !*got.Properties.EnableRbacAuthorization || *got.Properties.SKU.Name != armkeyvault.SKUNameStandard {
			t.Errorf("patch changed other properties: %+v", got.Properties)
		}
	})

	t.Run("ok/list", func(t *testing.T) {
		poller, err := client.BeginCreateOrUpdate(ctx, rg, other, e.vaultParams(false), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pollUntilDone(t, ctx, poller); err != nil {
			t.Fatal(err)
		}
		var byRG, bySub []string
		rgPager := client.NewListByResourceGroupPager(rg, nil)
		for rgPager.More() {
			page, err := rgPager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range page.Value {
				byRG = append(byRG, *v.Name)
			}
		}
		subPager := client.NewListBySubscriptionPager(&armkeyvault.VaultsClientListBySubscriptionOptions{Top: to.Ptr[int32](1)})
		pages := 0
		for subPager.More() {
			page, err := subPager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, v := range page.Value {
				bySub = append(bySub, *v.Name)
			}
		}
		sort.Strings(byRG)
		sort.Strings(bySub)
		want := []string{name, other}
		if strings.Join(byRG, ",") != strings.Join(want, ",") {
			t.Errorf("by resource group = %v, want %v", byRG, want)
		}
		if strings.Join(bySub, ",") != strings.Join(want, ",") {
			t.Errorf("by subscription = %v, want %v", bySub, want)
		}
		if pages < 2 {
			t.Errorf("$top=1 gave %d pages for 2 vaults", pages)
		}
	})

	t.Run("ok/delete-and-deleted", func(t *testing.T) {
		if _, err := client.Delete(ctx, rg, name, nil); err != nil {
			t.Fatal(err)
		}
		_, err := client.Get(ctx, rg, name, nil)
		wantResponseError(t, "get deleted vault", err, http.StatusNotFound, "ResourceNotFound")
		del, err := client.GetDeleted(ctx, name, "local", nil)
		if err != nil {
			t.Fatal(err)
		}
		p := del.Properties
		if p == nil || *p.VaultID != rgID+"/providers/Microsoft.KeyVault/vaults/"+name || *p.Location != "local" {
			t.Fatalf("deleted vault = %+v", p)
		}
		if p.DeletionDate == nil || p.ScheduledPurgeDate == nil || p.ScheduledPurgeDate.Sub(*p.DeletionDate) != 7*24*time.Hour {
			t.Errorf("deletionDate/scheduledPurgeDate = %v/%v", p.DeletionDate, p.ScheduledPurgeDate)
		}
		if *del.Name != name || *del.Type != "Microsoft.KeyVault/deletedVaults" {
			t.Errorf("deleted name/type = %v/%v", *del.Name, *del.Type)
		}
		if !listedDeleted(t, client, name) {
			t.Error("vault not in deleted list")
		}
		// A soft-deleted vault keeps its name.
		checkName(t, false)
		_, err = client.BeginCreateOrUpdate(ctx, rg, name, e.vaultParams(true), nil)
		wantResponseError(t, "create over a soft-deleted vault", err, http.StatusConflict, "")
	})

	t.Run("ok/recover", func(t *testing.T) {
		params := e.vaultParams(true)
		params.Properties.CreateMode = to.Ptr(armkeyvault.CreateModeRecover)
		poller, err := client.BeginCreateOrUpdate(ctx, rg, name, params, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pollUntilDone(t, ctx, poller); err != nil {
			t.Fatal(err)
		}
		got, err := client.Get(ctx, rg, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *got.Tags["stage"] != "two" || got.Properties.NetworkACLs == nil || len(got.Properties.NetworkACLs.IPRules) != 2 {
			t.Errorf("recovered vault lost its state: tags %v acls %+v", got.Tags, got.Properties.NetworkACLs)
		}
		if listedDeleted(t, client, name) {
			t.Error("recovered vault still in deleted list")
		}
	})

	t.Run("ok/purge", func(t *testing.T) {
		if _, err := client.Delete(ctx, rg, name, nil); err != nil {
			t.Fatal(err)
		}
		poller, err := client.BeginPurgeDeleted(ctx, name, "local", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pollUntilDone(t, ctx, poller); err != nil {
			t.Fatal(err)
		}
		_, err = client.GetDeleted(ctx, name, "local", nil)
		wantResponseError(t, "get purged vault", err, http.StatusNotFound, "")
		checkName(t, true)
	})

	t.Run("fail/recover-without-deleted-vault", func(t *testing.T) {
		params := e.vaultParams(true)
		params.Properties.CreateMode = to.Ptr(armkeyvault.CreateModeRecover)
		poller, err := client.BeginCreateOrUpdate(ctx, rg, "kv-never-existed", params, nil)
		if err == nil {
			_, err = pollUntilDone(t, ctx, poller)
		}
		if err == nil {
			t.Fatal("recover of a vault that was never deleted succeeded")
		}
	})
}

func listedDeleted(t *testing.T, client *armkeyvault.VaultsClient, name string) bool {
	t.Helper()
	ctx := testCtx(t)
	found := false
	pager := client.NewListDeletedPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Value {
			if *v.Name == name {
				found = true
			}
		}
	}
	return found
}
