package arm

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/principal"
)

const (
	rgV   = "?api-version=2021-04-01"
	wV    = "?api-version=2024-01-01"
	subP  = "/subscriptions/" + sub1
	rgP   = subP + "/resourceGroups/rg1"
	widgP = rgP + "/providers/Test.Widgets/widgets/w1"
)

func TestAuthentication(t *testing.T) {
	e := newEnv(t, Options{})
	tests := []struct {
		name     string
		p        *principal.Principal
		authErr  string
		wantCode string
		status   int
	}{
		{name: "fail/no principal", wantCode: "AuthenticationFailed", status: 401},
		{name: "fail/rejected token", authErr: "the token has expired", wantCode: "InvalidAuthenticationToken", status: 401},
		{name: "fail/wrong audience", p: &principal.Principal{TenantID: testTenant, ObjectID: testOID, Audience: "https://vault.localhost:8443"},
			wantCode: "InvalidAuthenticationToken", status: 401},
		{name: "ok/audience with slash", p: &principal.Principal{TenantID: testTenant, ObjectID: testOID, Audience: testBase + "/"}, status: 200},
		{name: "ok/audience with .default", p: &principal.Principal{TenantID: testTenant, ObjectID: testOID, Audience: testBase + "/.default"}, status: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httpReq(http.MethodGet, "/subscriptions?api-version=2022-12-01")
			info := &principal.Info{Principal: tc.p, AuthError: tc.authErr}
			rec := serve(e.srv, req, info)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body.String())
			}
			if tc.status != 401 {
				return
			}
			r := result{rec, info}
			if got := r.errCode(t); got != tc.wantCode {
				t.Fatalf("code %s, want %s", got, tc.wantCode)
			}
			h := rec.Header().Get("WWW-Authenticate")
			want := `Bearer authorization_uri="` + testBase + "/" + testTenant + `", error="invalid_token", error_description="`
			if !strings.HasPrefix(h, want) {
				t.Fatalf("WWW-Authenticate = %q, want prefix %q", h, want)
			}
			if rec.Header().Get("x-ms-error-code") != tc.wantCode {
				t.Fatal("x-ms-error-code header missing")
			}
		})
	}
}

func TestAPIVersion(t *testing.T) {
	e := newEnv(t, Options{})
	e.srv.Register(newWidgets())
	e.must("PUT", rgP+rgV, map[string]any{"location": "eastus"}, 201)
	tests := []struct {
		name, path, code, msgHas string
	}{
		{name: "fail/missing", path: rgP, code: "MissingApiVersionParameter", msgHas: "api-version query parameter"},
		{name: "fail/malformed", path: rgP + "?api-version=latest", code: "InvalidApiVersionParameter"},
		{name: "fail/unsupported core", path: rgP + "?api-version=2099-01-01", code: "InvalidApiVersionParameter", msgHas: "2021-04-01"},
		{name: "fail/unsupported provider", path: widgP + "?api-version=2019-01-01", code: "NoRegisteredProviderFound",
			msgHas: "The supported api-versions are '2020-01-01, 2024-01-01'"},
		{name: "fail/missing on provider", path: widgP, code: "MissingApiVersionParameter"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("GET", tc.path, nil)
			if r.Code != 400 || r.errCode(t) != tc.code {
				t.Fatalf("got %d %s", r.Code, r.Body.String())
			}
			if !strings.Contains(r.errMessage(t), tc.msgHas) {
				t.Fatalf("message %q lacks %q", r.errMessage(t), tc.msgHas)
			}
		})
	}
	t.Run("ok/parameter name case-insensitive", func(t *testing.T) {
		e.must("GET", rgP+"?API-VERSION=2021-04-01", nil, 200)
	})
}

func TestAuthorizationFailed(t *testing.T) {
	e := newEnv(t, Options{})
	e.srv.Register(newWidgets())
	e.must("PUT", rgP+rgV, map[string]any{"location": "eastus"}, 201)
	tests := []struct {
		name, method, path, action, scope string
		body                              any
	}{
		{name: "fail/group read", method: "GET", path: rgP + rgV, action: "Microsoft.Resources/subscriptions/resourceGroups/read", scope: rgP},
		{name: "fail/group delete", method: "DELETE", path: rgP + rgV, action: "Microsoft.Resources/subscriptions/resourceGroups/delete", scope: rgP},
		{name: "fail/provider write", method: "PUT", path: widgP + wV, action: "Test.Widgets/widgets/write", scope: widgP,
			body: map[string]any{"location": "eastus"}},
		{name: "fail/provider action", method: "POST", path: widgP + "/slowop" + wV, action: "Test.Widgets/widgets/slowop/action", scope: widgP},
		{name: "fail/provider list", method: "GET", path: rgP + "/providers/Test.Widgets/widgets" + wV, action: "Test.Widgets/widgets/read",
			scope: rgP + "/providers/Test.Widgets/widgets"},
		{name: "fail/subscription create", method: "PUT", path: "/subscriptions/44444444-4444-4444-4444-444444444444?api-version=2022-12-01",
			action: "Microsoft.Resources/subscriptions/write", scope: "/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.dec.deny = map[string]bool{tc.action: true}
			defer func() { e.dec.deny = map[string]bool{} }()
			r := e.do(tc.method, tc.path, tc.body)
			if r.Code != 403 || r.errCode(t) != "AuthorizationFailed" {
				t.Fatalf("got %d %s", r.Code, r.Body.String())
			}
			want := fmt.Sprintf("The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '%s' or the scope is invalid.",
				testOID, testOID, tc.action, tc.scope)
			if !strings.HasPrefix(r.errMessage(t), want) {
				t.Fatalf("message %q\nwant prefix %q", r.errMessage(t), want)
			}
			if r.info.OperationName != tc.action || r.info.ResourceID != tc.scope || r.info.OperationVersion == "" {
				t.Fatalf("info not annotated: %+v", r.info)
			}
		})
	}
	t.Run("ok/every request asks the decider with the principal", func(t *testing.T) {
		e.must("GET", rgP+rgV, nil, 200)
		last := e.dec.last()
		if last.Principal != e.p || last.Action != "Microsoft.Resources/subscriptions/resourceGroups/read" || last.Scope != rgP {
			t.Fatalf("decider asked %+v", last)
		}
	})
}

func TestSubscriptions(t *testing.T) {
	e := newEnv(t, Options{})
	sub2 := "44444444-4444-4444-4444-444444444444"
	r := e.must("PUT", "/subscriptions/"+sub2+"?api-version=2022-12-01", map[string]any{"displayName": "Second"}, 201)
	if m := r.json(t); m["displayName"] != "Second" || m["state"] != "Enabled" || m["tenantId"] != testTenant || m["id"] != "/subscriptions/"+sub2 {
		t.Fatalf("created %v", m)
	}
	e.must("PUT", "/subscriptions/"+sub2+"?api-version=2022-12-01", map[string]any{"displayName": "Renamed"}, 200)
	if m := e.must("GET", "/subscriptions/"+sub2+"?api-version=2022-12-01", nil, 200).json(t); m["displayName"] != "Renamed" {
		t.Fatalf("get %v", m)
	}
	list := e.must("GET", "/subscriptions?api-version=2022-12-01", nil, 200).json(t)["value"].([]any)
	if len(list) != 2 {
		t.Fatalf("list %v", list)
	}
	// Only readable subscriptions are listed.
	e.dec.denyAt["/subscriptions/"+sub2] = true
	list = e.must("GET", "/subscriptions?api-version=2022-12-01", nil, 200).json(t)["value"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["subscriptionId"] != sub1 {
		t.Fatalf("filtered list %v", list)
	}
	delete(e.dec.denyAt, "/subscriptions/"+sub2)
	tests := []struct {
		name, method, path string
		status             int
		code               string
	}{
		{name: "fail/missing", method: "GET", path: "/subscriptions/55555555-5555-5555-5555-555555555555?api-version=2022-12-01", status: 404, code: "SubscriptionNotFound"},
		{name: "fail/malformed", method: "GET", path: "/subscriptions/abc?api-version=2022-12-01", status: 400, code: "InvalidSubscriptionId"},
		{name: "fail/missing for provider path", method: "GET",
			path: "/subscriptions/55555555-5555-5555-5555-555555555555/resourceGroups/x?api-version=2021-04-01", status: 404, code: "SubscriptionNotFound"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, nil)
			if r.Code != tc.status || r.errCode(t) != tc.code {
				t.Fatalf("got %d %s", r.Code, r.Body.String())
			}
		})
	}
	t.Run("ok/tenants", func(t *testing.T) {
		v := e.must("GET", "/tenants?api-version=2022-12-01", nil, 200).json(t)["value"].([]any)
		if len(v) != 1 || v[0].(map[string]any)["tenantId"] != testTenant {
			t.Fatalf("tenants %v", v)
		}
	})
}

func TestResourceGroups(t *testing.T) {
	e := newEnv(t, Options{})
	r := e.must("PUT", rgP+rgV, map[string]any{"location": "East US", "tags": map[string]string{"env": "dev"}}, 201)
	m := r.json(t)
	sd, _ := m["systemData"].(map[string]any)
	if m["location"] != "eastus" || m["id"] != rgP || m["type"] != "Microsoft.Resources/resourceGroups" ||
		m["properties"].(map[string]any)["provisioningState"] != "Succeeded" || sd["createdBy"] != "admin@keyhaven.local" || sd["createdByType"] != "User" {
		t.Fatalf("created %v", m)
	}
	e.must("PUT", rgP+rgV, map[string]any{"location": "eastus"}, 200)
	e.must("HEAD", rgP+rgV, nil, 204)
	if r := e.do("HEAD", subP+"/resourceGroups/nope"+rgV, nil); r.Code != 404 || r.Body.Len() != 0 {
		t.Fatalf("HEAD missing = %d %q", r.Code, r.Body.String())
	}
	if m := e.must("PATCH", rgP+rgV, map[string]any{"tags": map[string]string{"a": "b"}}, 200).json(t); m["tags"].(map[string]any)["a"] != "b" {
		t.Fatalf("patched %v", m)
	}
	tooMany := map[string]string{}
	for i := range 51 {
		tooMany[fmt.Sprint("t", i)] = "v"
	}
	tests := []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{name: "fail/location change", method: "PUT", path: rgP + rgV, body: map[string]any{"location": "westus"}, status: 409, code: "InvalidResourceGroupLocation"},
		{name: "fail/no location", method: "PUT", path: subP + "/resourceGroups/rg2" + rgV, body: map[string]any{}, status: 400, code: "LocationRequired"},
		{name: "fail/unknown location", method: "PUT", path: subP + "/resourceGroups/rg2" + rgV, body: map[string]any{"location": "mars"}, status: 400, code: "LocationNotAvailableForResourceGroup"},
		{name: "fail/bad name", method: "PUT", path: subP + "/resourceGroups/bad*name" + rgV, body: map[string]any{"location": "eastus"}, status: 400, code: "InvalidResourceName"},
		{name: "fail/name ends with period", method: "PUT", path: subP + "/resourceGroups/rg." + rgV, body: map[string]any{"location": "eastus"}, status: 400, code: "InvalidResourceName"},
		{name: "fail/name too long", method: "PUT", path: subP + "/resourceGroups/" + strings.Repeat("a", 91) + rgV, body: map[string]any{"location": "eastus"}, status: 400, code: "InvalidResourceName"},
		{name: "fail/too many tags", method: "PUT", path: subP + "/resourceGroups/rg2" + rgV, body: map[string]any{"location": "eastus", "tags": tooMany}, status: 400, code: "InvalidTagCount"},
		{name: "fail/tag name chars", method: "PUT", path: subP + "/resourceGroups/rg2" + rgV, body: map[string]any{"location": "eastus", "tags": map[string]string{"a/b": "x"}}, status: 400, code: "InvalidTagNameCharacters"},
		{name: "fail/tag value length", method: "PUT", path: subP + "/resourceGroups/rg2" + rgV, body: map[string]any{"location": "eastus", "tags": map[string]string{"a": strings.Repeat("v", 257)}}, status: 400, code: "InvalidTagValueLength"},
		{name: "fail/tag name length", method: "PUT", path: subP + "/resourceGroups/rg2" + rgV, body: map[string]any{"location": "eastus", "tags": map[string]string{strings.Repeat("n", 513): "x"}}, status: 400, code: "InvalidTagNameLength"},
		{name: "fail/malformed json", method: "PUT", path: subP + "/resourceGroups/rg2" + rgV, body: "{", status: 400, code: "InvalidRequestContent"},
		{name: "fail/empty body", method: "PUT", path: subP + "/resourceGroups/rg2" + rgV, body: "", status: 400, code: "InvalidRequestContent"},
		{name: "fail/wrong type", method: "PUT", path: subP + "/resourceGroups/rg2" + rgV, body: `{"location":5}`, status: 400, code: "InvalidRequestContent"},
		{name: "fail/get missing", method: "GET", path: subP + "/resourceGroups/nope" + rgV, status: 404, code: "ResourceGroupNotFound"},
		{name: "fail/delete missing", method: "DELETE", path: subP + "/resourceGroups/nope" + rgV, status: 404, code: "ResourceGroupNotFound"},
		{name: "fail/method", method: "POST", path: rgP + rgV, status: 405, code: "MethodNotAllowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, tc.body)
			if r.Code != tc.status || r.errCode(t) != tc.code {
				t.Fatalf("got %d %s", r.Code, r.Body.String())
			}
		})
	}
	t.Run("ok/tag limits at the edge", func(t *testing.T) {
		fifty := map[string]string{}
		for i := range 50 {
			fifty[fmt.Sprint("t", i)] = strings.Repeat("v", 256)
		}
		fifty[strings.Repeat("n", 512)] = "x"
		delete(fifty, "t0")
		e.must("PUT", subP+"/resourceGroups/edge"+rgV, map[string]any{"location": "eastus", "tags": fifty}, 201)
	})
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t, Options{MaxBodyBytes: 1024})
	r := e.do("PUT", rgP+rgV, `{"location":"eastus","tags":{"a":"`+strings.Repeat("x", 2000)+`"}}`)
	if r.Code != 413 || r.errCode(t) != "RequestEntityTooLarge" {
		t.Fatalf("got %d %s", r.Code, r.Body.String())
	}
}

func TestPaging(t *testing.T) {
	e := newEnv(t, Options{PageSize: 2})
	for i := range 5 {
		e.must("PUT", fmt.Sprintf("%s/resourceGroups/g%d%s", subP, i, rgV), map[string]any{"location": "eastus"}, 201)
	}
	tests := []struct {
		name  string
		query string
		pages int
	}{
		{name: "ok/default page size", query: rgV, pages: 3},
		{name: "ok/$top", query: rgV + "&$top=4", pages: 2},
		{name: "ok/single page", query: rgV + "&$top=10", pages: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next := subP + "/resourceGroups" + tc.query
			var names []string
			pages := 0
			for next != "" {
				m := e.must("GET", next, nil, 200).json(t)
				pages++
				for _, v := range m["value"].([]any) {
					names = append(names, v.(map[string]any)["name"].(string))
				}
				next, _ = m["nextLink"].(string)
				if next != "" {
					u, err := url.Parse(next)
					if err != nil || u.Scheme != "https" || u.Host != "localhost:8443" || u.Query().Get("api-version") != "2021-04-01" {
						t.Fatalf("nextLink %q is not absolute with api-version", next)
					}
				}
				if pages > 10 {
					t.Fatal("paging does not end")
				}
			}
			if pages != tc.pages || strings.Join(names, ",") != "g0,g1,g2,g3,g4" {
				t.Fatalf("pages %d names %v", pages, names)
			}
		})
	}
	t.Run("fail/bad $top", func(t *testing.T) {
		if r := e.do("GET", subP+"/resourceGroups"+rgV+"&$top=0", nil); r.Code != 400 {
			t.Fatalf("got %d", r.Code)
		}
	})
	t.Run("fail/bad skiptoken", func(t *testing.T) {
		if r := e.do("GET", subP+"/resourceGroups"+rgV+"&$skiptoken=***", nil); r.Code != 400 {
			t.Fatalf("got %d", r.Code)
		}
	})
}

func TestProviderRouting(t *testing.T) {
	e := newEnv(t, Options{})
	w := newWidgets()
	e.srv.Register(w)
	e.must("PUT", rgP+rgV, map[string]any{"location": "eastus"}, 201)
	r := e.must("PUT", widgP+wV, map[string]any{"location": "eastus", "tags": map[string]string{"k": "v"}}, 201)
	if r.json(t)["id"] != widgP {
		t.Fatal(r.Body.String())
	}
	e.must("GET", widgP+wV, nil, 200)
	e.must("HEAD", widgP+wV, nil, 204)
	tests := []struct {
		name, method, path string
		status             int
		code               string
	}{
		{name: "fail/unknown namespace", method: "GET", path: rgP + "/providers/No.Such/things/x" + wV, status: 400, code: "InvalidResourceNamespace"},
		{name: "fail/unknown type", method: "GET", path: rgP + "/providers/Test.Widgets/gadgets/x" + wV, status: 400, code: "InvalidResourceType"},
		{name: "fail/missing group", method: "PUT", path: subP + "/resourceGroups/nope/providers/Test.Widgets/widgets/x" + wV, status: 404, code: "ResourceGroupNotFound"},
		{name: "fail/missing resource", method: "GET", path: rgP + "/providers/Test.Widgets/widgets/nope" + wV, status: 404, code: "ResourceNotFound"},
		{name: "fail/junk path", method: "GET", path: subP + "/whatever" + wV, status: 404, code: "NotFound"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, map[string]any{"location": "eastus"})
			if r.Code != tc.status || r.errCode(t) != tc.code {
				t.Fatalf("got %d %s", r.Code, r.Body.String())
			}
		})
	}
	t.Run("ok/generic resource list with filter", func(t *testing.T) {
		for _, path := range []string{subP + "/resources", rgP + "/resources"} {
			v := e.must("GET", path+"?api-version=2015-11-01&$filter="+url.QueryEscape("resourceType eq 'Test.Widgets/widgets'"), nil, 200).json(t)["value"].([]any)
			if len(v) != 1 || v[0].(map[string]any)["id"] != widgP {
				t.Fatalf("%s: %v", path, v)
			}
		}
		v := e.must("GET", subP+"/resources?api-version=2015-11-01&$filter="+url.QueryEscape("resourceType eq 'Microsoft.KeyVault/vaults'"), nil, 200).json(t)["value"].([]any)
		if len(v) != 0 {
			t.Fatalf("filter ignored: %v", v)
		}
		if r := e.do("GET", subP+"/resources?api-version=2015-11-01&$filter=bogus", nil); r.Code != 400 {
			t.Fatalf("bad filter = %d", r.Code)
		}
	})
	t.Run("ok/providers list and register", func(t *testing.T) {
		m := e.must("GET", subP+"/providers/Test.Widgets"+rgV, nil, 200).json(t)
		rt := m["resourceTypes"].([]any)[0].(map[string]any)
		if m["registrationState"] != "Registered" || rt["resourceType"] != "widgets" || rt["apiVersions"].([]any)[0] != "2024-01-01" {
			t.Fatalf("provider %v", m)
		}
		if m := e.must("POST", subP+"/providers/test.widgets/register"+rgV, nil, 200).json(t); m["registrationState"] != "Registered" {
			t.Fatalf("register %v", m)
		}
		v := e.must("GET", subP+"/providers"+rgV, nil, 200).json(t)["value"].([]any)
		if len(v) != 2 {
			t.Fatalf("providers %v", v)
		}
		e.must("GET", "/providers/Microsoft.Resources"+rgV, nil, 200)
	})
}

func TestWriteGuard(t *testing.T) {
	e := newEnv(t, Options{SyncOperations: true})
	e.srv.Register(newWidgets())
	e.must("PUT", rgP+rgV, map[string]any{"location": "eastus"}, 201)
	e.must("PUT", widgP+wV, map[string]any{"location": "eastus"}, 201)
	lockedID, _ := ParseResourceID(widgP)
	e.srv.AddWriteGuard(&lockGuard{locked: []ResourceID{lockedID}})
	for _, tc := range []struct{ name, method, path string }{
		{"fail/resource delete", "DELETE", widgP + wV},
		{"fail/resource write", "PUT", widgP + wV},
		{"fail/group delete with locked resource", "DELETE", rgP + rgV},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, map[string]any{"location": "eastus"})
			if r.Code != 409 || r.errCode(t) != "ScopeLocked" {
				t.Fatalf("got %d %s", r.Code, r.Body.String())
			}
		})
	}
	t.Run("ok/reads pass", func(t *testing.T) { e.must("GET", widgP+wV, nil, 200) })
}

// waitStatus polls an Azure-AsyncOperation URL until it leaves InProgress.
func waitStatus(t *testing.T, e *env, statusURL string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		m := e.must("GET", statusURL, nil, 200).json(t)
		if m["status"] != StatusInProgress {
			return m
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("operation did not finish")
	return nil
}

func TestLongRunningOperations(t *testing.T) {
	e := newEnv(t, Options{})
	w := newWidgets()
	e.srv.Register(w)
	e.must("PUT", rgP+rgV, map[string]any{"location": "eastus"}, 201)
	e.must("PUT", widgP+wV, map[string]any{"location": "eastus"}, 201)

	t.Run("ok/action succeeds with a result", func(t *testing.T) {
		w.gate = make(chan struct{})
		r := e.must("POST", widgP+"/slowop"+wV, nil, 202)
		async, loc := r.Header().Get("Azure-AsyncOperation"), r.Header().Get("Location")
		if !strings.HasPrefix(async, testBase+subP+"/providers/Test.Widgets/locations/eastus/operationStatuses/") ||
			!strings.Contains(async, "api-version=2024-01-01") || !strings.Contains(loc, "/operationResults/") {
			t.Fatalf("headers %q %q", async, loc)
		}
		if r.Header().Get("retry-after-ms") != "100" || r.Header().Get("Retry-After") != "1" {
			t.Fatalf("retry headers %v", r.Header())
		}
		m := e.must("GET", async, nil, 200).json(t)
		if m["status"] != "InProgress" || m["startTime"] == nil {
			t.Fatalf("status %v", m)
		}
		if r := e.must("GET", loc, nil, 202); r.Header().Get("Location") == "" {
			t.Fatal("202 without Location")
		}
		close(w.gate)
		m = waitStatus(t, e, async)
		if m["status"] != "Succeeded" || m["endTime"] == nil {
			t.Fatalf("status %v", m)
		}
		if m := e.must("GET", loc, nil, 200).json(t); m["result"] != "done" {
			t.Fatalf("result %v", m)
		}
	})
	t.Run("fail/action fails", func(t *testing.T) {
		w.gate, w.failOp = nil, true
		defer func() { w.failOp = false }()
		r := e.must("POST", widgP+"/slowop"+wV, nil, 202)
		m := waitStatus(t, e, r.Header().Get("Azure-AsyncOperation"))
		if m["status"] != "Failed" || m["error"].(map[string]any)["code"] != "WidgetBusy" {
			t.Fatalf("status %v", m)
		}
		if r := e.do("GET", r.Header().Get("Location"), nil); r.Code != 409 || r.errCode(t) != "WidgetBusy" {
			t.Fatalf("location %d %s", r.Code, r.Body.String())
		}
	})
	t.Run("fail/unknown or foreign operation", func(t *testing.T) {
		if r := e.do("GET", subP+"/providers/Test.Widgets/locations/eastus/operationStatuses/00000000-0000-0000-0000-000000000000"+wV, nil); r.Code != 404 {
			t.Fatalf("got %d", r.Code)
		}
		if r := e.do("GET", subP+"/providers/Test.Widgets/locations/eastus/operationStatuses/../../x"+wV, nil); r.Code == 200 {
			t.Fatalf("got %d", r.Code)
		}
	})
	t.Run("ok/resource group delete cascades", func(t *testing.T) {
		w.gate = make(chan struct{})
		r := e.must("DELETE", rgP+rgV, nil, 202)
		async, loc := r.Header().Get("Azure-AsyncOperation"), r.Header().Get("Location")
		if !strings.Contains(async, "/providers/Microsoft.Resources/locations/eastus/operationStatuses/") {
			t.Fatalf("async %q", async)
		}
		if m := e.must("GET", rgP+rgV, nil, 200).json(t); m["properties"].(map[string]any)["provisioningState"] != "Deleting" {
			t.Fatalf("group %v", m)
		}
		if r := e.do("PUT", subP+"/resourceGroups/rg1/providers/Test.Widgets/widgets/w2"+wV, map[string]any{"location": "eastus"}); r.Code != 409 ||
			r.errCode(t) != "ResourceGroupBeingDeleted" {
			t.Fatalf("write into deleting group = %d %s", r.Code, r.Body.String())
		}
		e.must("GET", loc, nil, 202)
		close(w.gate)
		if m := waitStatus(t, e, async); m["status"] != "Succeeded" {
			t.Fatalf("status %v", m)
		}
		e.must("GET", loc, nil, 204)
		if r := e.do("GET", rgP+rgV, nil); r.Code != 404 {
			t.Fatalf("group still there: %d", r.Code)
		}
		if len(w.deleted) != 1 || w.deleted[0] != "w1" {
			t.Fatalf("provider deleted %v", w.deleted)
		}
	})
}

func TestAuditHook(t *testing.T) {
	e := newEnv(t, Options{})
	h := &recHook{}
	e.srv.AddAuditHook(h)
	e.do("GET", subP+"/resourceGroups/nope"+rgV, nil)
	if len(h.recs) != 1 {
		t.Fatal("no audit record")
	}
	rec := h.recs[0]
	if rec.Status != 404 || rec.ErrorCode != "ResourceGroupNotFound" || rec.Action != "Microsoft.Resources/subscriptions/resourceGroups/read" ||
		rec.APIVersion != "2021-04-01" || rec.Principal != e.p {
		t.Fatalf("record %+v", rec)
	}
}

func TestOperationSweeps(t *testing.T) {
	e := newEnv(t, Options{})
	w := newWidgets()
	e.srv.Register(w)
	e.must("PUT", rgP+rgV, map[string]any{"location": "eastus"}, 201)
	e.must("PUT", widgP+wV, map[string]any{"location": "eastus"}, 201)
	ctx := t.Context()

	w.gate = make(chan struct{})
	stuck := e.must("POST", widgP+"/slowop"+wV, nil, 202).Header().Get("Azure-AsyncOperation")
	if n, err := e.srv.FailInterrupted(ctx); err != nil || n != 0 {
		close(w.gate)
		t.Fatalf("FailInterrupted of its own running operation = %d, %v", n, err)
	}
	// A restarted single node (another replica id on the same store).
	restarted := New(e.st, e.dec, e.clk, Options{BaseURL: testBase, TenantID: testTenant})
	n, err := restarted.FailInterrupted(ctx)
	close(w.gate)
	if err != nil || n != 1 {
		t.Fatalf("FailInterrupted = %d, %v", n, err)
	}
	e.srv.Wait()
	// The original owner's late completion does not overwrite the answer.
	m := e.must("GET", stuck, nil, 200).json(t)
	if m["status"] != "Failed" || m["error"].(map[string]any)["code"] != "OperationInterrupted" {
		t.Fatalf("status %v", m)
	}

	w.gate = nil
	done := e.must("POST", widgP+"/slowop"+wV, nil, 202).Header().Get("Azure-AsyncOperation")
	waitStatus(t, e, done)
	if n, err := e.srv.PruneOperations(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("PruneOperations too early = %d, %v", n, err)
	}
	e.clk.Advance(2 * time.Hour)
	if n, err := e.srv.PruneOperations(ctx, time.Hour); err != nil || n != 2 {
		t.Fatalf("PruneOperations = %d, %v", n, err)
	}
	if r := e.do("GET", done, nil); r.Code != 404 {
		t.Fatalf("pruned operation = %d", r.Code)
	}
}
