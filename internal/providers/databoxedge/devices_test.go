package databoxedge

import (
	"net/http"
	"testing"
)

func TestDevices(t *testing.T) {
	e := newEnv(t)
	d := e.device("edge1")
	props := d["properties"].(map[string]any)
	idb, _ := d["identity"].(map[string]any)
	if d["type"] != DeviceType || d["kind"] != "AzureStackEdge" || props["dataBoxEdgeDeviceStatus"] != StatusReadyToSetup ||
		props["provisioningState"] != "Succeeded" || idb == nil || idb["type"] != "SystemAssigned" || idb["principalId"] == "" {
		t.Fatalf("created device %v", d)
	}
	if sku := d["sku"].(map[string]any); sku["name"] != "EdgeP_Base" || sku["tier"] != "Standard" {
		t.Fatalf("sku %v", sku)
	}

	cases := []struct {
		name   string
		method string
		path   string
		body   any
		status int
		code   string
	}{
		{name: "ok/get", method: "GET", path: devPath("rg1", "edge1") + v, status: 200},
		{name: "ok/replace", method: "PUT", path: devPath("rg1", "edge1") + v, body: map[string]any{"location": "westeurope",
			"sku": map[string]any{"name": "edgep_base"}, "properties": map[string]any{"friendlyName": "rack 4"}}, status: 200},
		{name: "ok/patch-tags", method: "PATCH", path: devPath("rg1", "edge1") + v, body: map[string]any{"tags": map[string]string{"site": "berlin"}}, status: 200},
		{name: "fail/sku", method: "PUT", path: devPath("rg1", "edge2") + v, body: map[string]any{"location": "westeurope",
			"sku": map[string]any{"name": "Huge"}}, status: 400, code: "InvalidRequestContent"},
		{name: "fail/no-sku", method: "PUT", path: devPath("rg1", "edge2") + v, body: map[string]any{"location": "westeurope"},
			status: 400, code: "InvalidRequestContent"},
		{name: "fail/identity-none", method: "PUT", path: devPath("rg1", "edge2") + v, body: map[string]any{"location": "westeurope",
			"sku": map[string]any{"name": "Edge"}, "identity": map[string]any{"type": "None"}}, status: 400, code: "InvalidRequestContent"},
		{name: "fail/name", method: "PUT", path: devPath("rg1", "-bad-") + v, body: map[string]any{"location": "westeurope",
			"sku": map[string]any{"name": "Edge"}}, status: 400, code: "InvalidResourceName"},
		{name: "fail/location-change", method: "PUT", path: devPath("rg1", "edge1") + v, body: map[string]any{"location": "eastus",
			"sku": map[string]any{"name": "Edge"}}, status: 409, code: "InvalidResourceLocation"},
		{name: "fail/missing", method: "GET", path: devPath("rg1", "nope") + v, status: 404, code: "ResourceNotFound"},
		{name: "fail/extended-info-missing", method: "POST", path: devPath("rg1", "nope") + "/getExtendedInformation" + v, status: 404, code: "ResourceNotFound"},
		{name: "fail/unknown-action", method: "POST", path: devPath("rg1", "edge1") + "/explode" + v, status: 404, code: "NotFound"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.Must(c.method, c.path, c.body, c.status)
			if c.code != "" {
				if got := r.ErrCode(t); got != c.code {
					t.Fatalf("code %q, want %q: %s", got, c.code, r.Body.String())
				}
				return
			}
			if r.JSON(t)["name"] != "edge1" {
				t.Fatalf("body %s", r.Body.String())
			}
		})
	}

	t.Run("ok/replace-keeps-identity-and-tags-replaced", func(t *testing.T) {
		got := e.Must("GET", devPath("rg1", "edge1")+v, nil, 200).JSON(t)
		if got["identity"].(map[string]any)["principalId"] != idb["principalId"] {
			t.Fatalf("identity changed: %v", got["identity"])
		}
		if got["tags"].(map[string]any)["site"] != "berlin" || got["properties"].(map[string]any)["friendlyName"] != "rack 4" {
			t.Fatalf("device %v", got)
		}
	})
	t.Run("ok/list", func(t *testing.T) {
		e.device("edge3")
		for _, p := range []string{rgPath("rg1"), "/subscriptions/" + sub1} {
			vals := e.Must("GET", p+"/providers/Microsoft.DataBoxEdge/dataBoxEdgeDevices"+v, nil, 200).Values(t)
			if len(vals) != 2 || vals[0]["name"] != "edge1" || vals[1]["name"] != "edge3" {
				t.Fatalf("list %s: %v", p, vals)
			}
		}
		if vals := e.Must("GET", rgPath("rg2")+"/providers/Microsoft.DataBoxEdge/dataBoxEdgeDevices"+v, nil, 200).Values(t); len(vals) != 0 {
			t.Fatalf("rg2 list %v", vals)
		}
	})
	t.Run("ok/extended-info-before-activation", func(t *testing.T) {
		x := e.extended("edge1")
		if x["keyVaultSyncStatus"] != SyncNotConfigured || x["clientSecretStoreId"] != nil || x["resourceKey"] == "" {
			t.Fatalf("extended %v", x)
		}
		if as := e.alerts("edge1"); len(as) != 0 {
			t.Fatalf("alerts %v", as)
		}
	})
	t.Run("ok/delete-removes-identity", func(t *testing.T) {
		pid := idb["principalId"].(string)
		e.Must("DELETE", devPath("rg1", "edge1")+v, nil, 200)
		e.Must("GET", devPath("rg1", "edge1")+v, nil, 404)
		if _, err := e.ids.LookupPrincipal(e.Ctx, pid); err == nil {
			t.Fatal("the device's system-assigned identity outlived it")
		}
		e.Must("DELETE", devPath("rg1", "edge1")+v, nil, http.StatusNoContent)
	})
}
