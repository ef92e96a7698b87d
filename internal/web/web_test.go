package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	vaultPath   = "/subscriptions/" + testSub + "/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/v1"
	clusterPath = "/subscriptions/" + testSub + "/resourceGroups/rg1/providers/Microsoft.NetworkCloud/clusters/c1"
	devicePath  = "/subscriptions/" + testSub + "/resourceGroups/rg1/providers/Microsoft.DataBoxEdge/dataBoxEdgeDevices/e1"
)

// fixtures fills the fake API with a vault (with a secret), a cluster and a
// device. Where an answer could carry a value (a misbehaving API), it does:
// the portal must still not show it.
func fixtures(h *harness) {
	a := h.api
	a.json("GET", vaultPath, 200, map[string]any{"id": vaultPath, "name": "v1", "location": "local",
		"properties": map[string]any{"vaultUri": a.srv.URL + "/dp/v1/", "enableRbacAuthorization": false, "enableSoftDelete": true,
			"softDeleteRetentionInDays": 90, "enablePurgeProtection": true,
			"networkAcls": map[string]any{"defaultAction": "Deny", "bypass": "AzureServices", "ipRules": []any{map[string]any{"value": "10.0.0.0/24"}}},
			"accessPolicies": []any{map[string]any{"tenantId": "tenant-1", "objectId": "device-oid",
				"permissions": map[string]any{"secrets": []string{"get", "set"}}}}}})
	// Lists across subscriptions, given out of order: the pages sort by name.
	rg1 := "/subscriptions/" + testSub + "/resourceGroups/rg1/providers/"
	for typ, names := range map[string][]string{"Microsoft.KeyVault/vaults": {"zz-vault", "v1"},
		"Microsoft.NetworkCloud/clusters": {"c1"}, "Microsoft.DataBoxEdge/dataBoxEdgeDevices": {"e1"}} {
		var items []any
		for _, n := range names {
			items = append(items, map[string]any{"id": rg1 + typ + "/" + n, "name": n, "location": "local"})
		}
		a.json("GET", "/subscriptions/"+testSub+"/providers/"+typ, 200, map[string]any{"value": items})
	}
	a.json("GET", "/v1.0/servicePrincipals/device-oid", 200, map[string]any{"displayName": "e1", "servicePrincipalType": "ManagedIdentity"})
	a.json("GET", "/dp/v1/secrets", 200, map[string]any{"value": []any{
		map[string]any{"id": a.srv.URL + "/dp/v1/secrets/db-password", "value": testSecret, "contentType": "text/plain",
			"attributes": map[string]any{"enabled": true, "created": 1700000000, "updated": 1700000100, "exp": 1900000000}}}})
	a.json("GET", "/dp/v1/secrets/db-password/versions", 200, map[string]any{"value": []any{
		map[string]any{"id": a.srv.URL + "/dp/v1/secrets/db-password/0123abcd", "value": testSecret,
			"attributes": map[string]any{"enabled": true, "created": 1700000000}}}})
	a.json("GET", vaultPath+"/providers/Microsoft.Authorization/locks", 200, map[string]any{"value": []any{
		map[string]any{"id": vaultPath + "/providers/Microsoft.Authorization/locks/keep", "name": "keep", "properties": map[string]any{"level": "CanNotDelete"}}}})
	// Access control (IAM): one assignment at the vault, one inherited.
	writer := "44f0a1a8-6fea-4b35-980a-8ff50c487c97"
	a.json("GET", vaultPath+"/providers/Microsoft.Authorization/roleAssignments", 200, map[string]any{"value": []any{
		map[string]any{"id": "/subscriptions/" + testSub + "/resourceGroups/rg1/providers/Microsoft.Authorization/roleAssignments/ra1",
			"properties": map[string]any{"roleDefinitionId": "/subscriptions/" + testSub + "/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
				"principalId": "admin-oid", "principalType": "User", "scope": "/subscriptions/" + testSub + "/resourceGroups/rg1"}},
		map[string]any{"id": vaultPath + "/providers/Microsoft.Authorization/roleAssignments/ra2",
			"properties": map[string]any{"roleDefinitionId": "/subscriptions/" + testSub + "/providers/Microsoft.Authorization/roleDefinitions/" + writer,
				"principalId": "device-oid", "principalType": "ServicePrincipal", "scope": vaultPath}}}})
	a.json("GET", vaultPath+"/providers/Microsoft.Authorization/roleDefinitions", 200, map[string]any{"value": []any{
		map[string]any{"name": writer, "properties": map[string]any{"roleName": "Operator Nexus Key Vault Writer Service Role (Preview)"}},
		map[string]any{"name": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "properties": map[string]any{"roleName": "Owner"}}}})
	a.json("GET", vaultPath+"/providers/Microsoft.Insights/diagnosticSettings", 200, map[string]any{"value": []any{
		map[string]any{"name": "to-storage", "properties": map[string]any{"storageAccountId": "/subscriptions/x/sa1",
			"logs": []any{map[string]any{"category": "AuditEvent", "enabled": true}}}}}})
	a.json("GET", "/audit/events", 200, map[string]any{"value": []any{
		map[string]any{"time": "2026-12-07T09:00:00Z", "operationName": "SecretGet", "resultType": "Success", "resultSignature": "OK",
			"identity": map[string]any{"claim": map[string]any{"upn": testUser}}, "properties": map[string]any{"httpStatusCode": 200}}}})
	a.json("GET", "/audit/insights", 200, map[string]any{"total": 3, "failures": 1,
		"operationsOverTime": []any{map[string]any{"time": "2026-12-07T09:00:00Z", "count": 3, "failures": 1}},
		"operations":         []any{map[string]any{"name": "SecretGet", "count": 3}},
		"topCallers":         []any{map[string]any{"upn": testUser, "count": 3}},
		"latency":            map[string]any{"p50": 2, "p90": 5, "p99": 9, "max": 9}})
	rot := []any{map[string]any{"secretType": "BMC Credentials", "lastRotationTime": "2026-12-01T00:00:00Z", "rotationPeriodDays": 60,
		"expirePeriodDays": 90, "secretArchiveReference": map[string]any{"keyVaultId": vaultPath, "secretName": "c1-m1-bmc-abc", "secretVersion": "v9"}}}
	a.json("GET", clusterPath, 200, map[string]any{"id": clusterPath, "name": "c1", "properties": map[string]any{
		"detailedStatus": "Running", "secretArchiveSettings": map[string]any{"vaultUri": "https://v1.vault.test/",
			"associatedIdentity": map[string]any{"identityType": "SystemAssignedIdentity"}}}})
	a.json("GET", "/subscriptions/"+testSub+"/providers/Microsoft.NetworkCloud/bareMetalMachines", 200, map[string]any{"value": []any{
		map[string]any{"id": "/subscriptions/" + testSub + "/resourceGroups/mrg/providers/Microsoft.NetworkCloud/bareMetalMachines/m1",
			"name": "m1", "properties": map[string]any{"clusterId": clusterPath, "detailedStatus": "Running", "secretRotationStatus": rot}}}})
	a.json("GET", "/subscriptions/"+testSub+"/providers/Microsoft.NetworkCloud/storageAppliances", 200, map[string]any{"value": []any{}})
	a.json("GET", "/rotation/alerts", 200, map[string]any{"value": []any{map[string]any{"id": "a1", "ownerId": clusterPath,
		"kind": "BMCCredential", "code": "MissingRoleAssignment", "message": "the identity has no role on the vault", "raisedAt": "2026-12-07T08:00:00Z"}}})
	a.json("GET", devicePath, 200, map[string]any{"id": devicePath, "name": "e1", "identity": map[string]any{"type": "SystemAssigned", "principalId": "dev-oid"},
		"properties": map[string]any{"dataBoxEdgeDeviceStatus": "Online"}})
	a.json("POST", devicePath+"/getExtendedInformation", 200, map[string]any{"properties": map[string]any{
		"clientSecretStoreId": vaultPath, "channelIntegrityKeyName": "ase-cik-1", "keyVaultSyncStatus": "KeyVaultSyncFailed",
		"keyVaultSyncError": "SecretSet: 404 VaultNotFound", "encryptedSecret": testSecret,
		"deviceSecrets": map[string]any{"BitLockerRecoveryKey": map[string]any{"keyVaultId": "https://v1.vault.test/secrets/ase-bitlocker-1"}}}})
	a.json("GET", devicePath+"/alerts", 200, map[string]any{"value": []any{map[string]any{"name": "KeyVaultDeletedEvent",
		"properties": map[string]any{"title": "The key vault was deleted", "severity": "Critical", "appearedAtDateTime": "2026-12-07T08:00:00Z"}}}})
	a.json("POST", devicePath+"/syncDeviceSecrets", 200, map[string]any{})
	a.json("POST", devicePath+"/recoverKeyVault", 200, map[string]any{})
}

func TestSignIn(t *testing.T) {
	h := newHarness(t)
	form := h.do("GET", "/portal/signin", nil)
	login := cookie(form, loginCookie)
	if form.Code != 200 || login == nil || !login.HttpOnly || !login.Secure || login.SameSite != http.SameSiteStrictMode {
		t.Fatalf("sign-in form: %d, cookie %+v", form.Code, login)
	}
	tok := csrfOf(t, form.Body.String())

	t.Run("fail/wrong password", func(t *testing.T) {
		w := h.do("POST", "/portal/signin", url.Values{"csrf": {tok}, "username": {testUser}, "password": {"wrong-password"}}, login)
		if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "Sign-in failed") || cookie(w, sessionCookie) != nil {
			t.Fatalf("%d %v\n%s", w.Code, cookie(w, sessionCookie), w.Body)
		}
		if strings.Contains(w.Body.String(), "wrong-password") {
			t.Fatal("the sign-in page echoes the password")
		}
	})
	t.Run("fail/no CSRF cookie", func(t *testing.T) {
		n := len(h.api.forms)
		w := h.do("POST", "/portal/signin", url.Values{"csrf": {tok}, "username": {testUser}, "password": {testPassword}})
		if w.Code != http.StatusForbidden || cookie(w, sessionCookie) != nil || len(h.api.forms) != n {
			t.Fatalf("%d, token requests %d→%d", w.Code, n, len(h.api.forms))
		}
	})
	t.Run("ok", func(t *testing.T) {
		w := h.do("POST", "/portal/signin", url.Values{"csrf": {tok}, "username": {testUser}, "password": {testPassword},
			"next": {"/portal/vaults"}}, login)
		sc := cookie(w, sessionCookie)
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/portal/vaults" || sc == nil {
			t.Fatalf("%d %q %v", w.Code, w.Header().Get("Location"), sc)
		}
		if !sc.HttpOnly || !sc.Secure || sc.SameSite != http.SameSiteStrictMode || sc.Path != "/" || sc.Domain != "" || len(sc.Value) != 43 {
			t.Fatalf("session cookie %+v", sc)
		}
		last := h.api.forms[len(h.api.forms)-1]
		if last.Get("grant_type") != "password" || last.Get("client_id") != portalClientID ||
			!strings.Contains(last.Get("scope"), "offline_access") {
			t.Fatalf("token request %v", last)
		}
		page := h.do("GET", "/portal/subscriptions", nil, sc)
		if page.Code != 200 || !strings.Contains(page.Body.String(), "sub one") || !strings.Contains(page.Body.String(), testUser) {
			t.Fatalf("%d\n%s", page.Code, page.Body)
		}
	})
	t.Run("ok/next is never another origin", func(t *testing.T) {
		for _, next := range []string{"https://evil.example/", "//evil.example/portal/", "/portal/../x", "/elsewhere"} {
			w := h.do("POST", "/portal/signin", url.Values{"csrf": {tok}, "username": {testUser}, "password": {testPassword},
				"next": {next}}, login)
			if loc := w.Header().Get("Location"); loc != "/portal/subscriptions" && !strings.HasPrefix(loc, "/portal/") {
				t.Fatalf("next %q redirected to %q", next, loc)
			}
			if strings.Contains(w.Header().Get("Location"), "evil") || strings.Contains(w.Header().Get("Location"), "..") {
				t.Fatalf("next %q redirected to %q", next, w.Header().Get("Location"))
			}
		}
	})
	if strings.Contains(h.logs.String(), testPassword) || strings.Contains(h.logs.String(), "rt-") {
		t.Fatalf("logs carry a password or token:\n%s", h.logs)
	}
}

func TestSignedOutRedirects(t *testing.T) {
	h := newHarness(t)
	w := h.do("GET", "/portal/vaults/"+testSub+"/rg1/v1", nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/portal/signin?next="+url.QueryEscape("/portal/vaults/"+testSub+"/rg1/v1") {
		t.Fatalf("%d %q", w.Code, w.Header().Get("Location"))
	}
	// A made-up session id is no session.
	fake := &http.Cookie{Name: sessionCookie, Value: strings.Repeat("A", 43)}
	if w := h.do("GET", "/portal/subscriptions", nil, fake); w.Code != http.StatusSeeOther {
		t.Fatalf("forged session: %d", w.Code)
	}
	if w := h.do("POST", "/portal/signout", url.Values{"csrf": {"x"}}, fake); w.Code != http.StatusUnauthorized {
		t.Fatalf("POST without session: %d", w.Code)
	}
}

func TestSessionExpiry(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		h := newHarness(t)
		sc, _ := h.signIn()
		h.advance(29 * time.Minute)
		if w := h.do("GET", "/portal/subscriptions", nil, sc); w.Code != 200 {
			t.Fatalf("within idle timeout: %d", w.Code)
		}
		h.advance(30 * time.Minute)
		if w := h.do("GET", "/portal/subscriptions", nil, sc); w.Code != http.StatusSeeOther {
			t.Fatalf("after idle timeout: %d", w.Code)
		}
	})
	t.Run("absolute", func(t *testing.T) {
		h := newHarness(t)
		sc, _ := h.signIn()
		for i := 0; i < 5; i++ { // active every 20 minutes: never idle
			h.advance(20 * time.Minute)
			if w := h.do("GET", "/portal/subscriptions", nil, sc); w.Code != 200 {
				t.Fatalf("at %d min: %d", (i+1)*20, w.Code)
			}
		}
		h.advance(25 * time.Minute) // 2h05m > 2h
		if w := h.do("GET", "/portal/subscriptions", nil, sc); w.Code != http.StatusSeeOther {
			t.Fatalf("after the absolute lifetime: %d", w.Code)
		}
	})
	t.Run("sign out", func(t *testing.T) {
		h := newHarness(t)
		sc, csrf := h.signIn()
		w := h.do("POST", "/portal/signout", url.Values{"csrf": {csrf}}, sc)
		if w.Code != http.StatusSeeOther || cookie(w, sessionCookie) == nil || cookie(w, sessionCookie).MaxAge >= 0 {
			t.Fatalf("sign-out: %d %+v", w.Code, cookie(w, sessionCookie))
		}
		if w := h.do("GET", "/portal/subscriptions", nil, sc); w.Code != http.StatusSeeOther {
			t.Fatalf("after sign-out: %d", w.Code)
		}
	})
	t.Run("token renewed through the refresh token", func(t *testing.T) {
		h := newHarness(t)
		sc, _ := h.signIn()
		n := len(h.api.forms)
		for i := 0; i < 4; i++ { // 80 minutes: the first ARM token (1h) is renewed
			h.advance(20 * time.Minute)
			if w := h.do("GET", "/portal/subscriptions", nil, sc); w.Code != 200 {
				t.Fatalf("%d", w.Code)
			}
		}
		if len(h.api.forms) != n+1 || h.api.forms[n].Get("grant_type") != "refresh_token" {
			t.Fatalf("token requests after sign-in: %v", h.api.forms[n:])
		}
	})
}

func TestCSRFRefused(t *testing.T) {
	h := newHarness(t)
	fixtures(h)
	sc, csrf := h.signIn()
	sync := "/portal/devices/" + testSub + "/rg1/e1/sync"
	for name, form := range map[string]url.Values{"fail/no token": {}, "fail/wrong token": {"csrf": {csrf[:42] + "x"}}} {
		w := h.do("POST", sync, form, sc)
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "CSRF") {
			t.Fatalf("%s: %d\n%s", name, w.Code, w.Body)
		}
	}
	// Another origin, with the right token.
	r := url.Values{"csrf": {csrf}}
	req := h.do("POST", sync, nil, sc) // no form at all
	if req.Code != http.StatusForbidden {
		t.Fatalf("no form: %d", req.Code)
	}
	w := h.postFrom("https://evil.example", sync, r, sc)
	if w.Code != http.StatusForbidden {
		t.Fatalf("cross-origin: %d", w.Code)
	}
	if h.api.called("POST " + devicePath + "/syncDeviceSecrets") {
		t.Fatal("a refused form reached the API")
	}
	w = h.do("POST", sync, r, sc)
	if w.Code != http.StatusSeeOther || !h.api.called("POST "+devicePath+"/syncDeviceSecrets") {
		t.Fatalf("with the token: %d", w.Code)
	}
	page := h.do("GET", "/portal/devices/"+testSub+"/rg1/e1", nil, sc)
	if !strings.Contains(page.Body.String(), "Sync requested") {
		t.Fatalf("no notice after the sync:\n%s", page.Body)
	}
}

// postFrom posts a form that says it comes from origin.
func (h *harness) postFrom(origin, path string, form url.Values, c *http.Cookie) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "https://"+testHost+path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Origin", origin)
	r.AddCookie(c)
	w := httptest.NewRecorder()
	h.p.ServeHTTP(w, r)
	return w
}

func TestAccessDeniedPage(t *testing.T) {
	h := newHarness(t)
	h.api.json("GET", vaultPath, 403, map[string]any{"error": map[string]any{"code": "AuthorizationFailed",
		"message": "The client 'oid-1' does not have authorization to perform action 'Microsoft.KeyVault/vaults/read'."}})
	sc, _ := h.signIn()
	for _, p := range []string{"", "/logs", "/insights"} {
		w := h.do("GET", "/portal/vaults/"+testSub+"/rg1/v1"+p, nil, sc)
		body := w.Body.String()
		if w.Code != http.StatusForbidden || !strings.Contains(body, "You do not have access") || !strings.Contains(body, "Microsoft.KeyVault/vaults/read") ||
			!strings.Contains(body, `id="access-denied"`) {
			t.Fatalf("%s: %d\n%s", p, w.Code, body)
		}
	}
}

// Every view over an API that even returns values: none reaches a page.
func TestNoSecretValueInAnyPage(t *testing.T) {
	h := newHarness(t)
	fixtures(h)
	sc, _ := h.signIn()
	base := "/portal/vaults/" + testSub + "/rg1/v1"
	pages := map[string][]string{
		base: {"db-password", "text/plain", "CanNotDelete", "to-storage", "Vault access policy", "10.0.0.0/24", "get, set", "e1 (ManagedIdentity)",
			"Operator Nexus Key Vault Writer Service Role (Preview)</td><td>e1 (ManagedIdentity)<br><code>device-oid</code></td><td>ServicePrincipal</td><td>This resource",
			"Owner</td><td><code>admin-oid</code></td><td>User</td><td>Inherited from <code>/subscriptions/" + testSub + "/resourceGroups/rg1</code>"},
		base + "/secrets/db-password": {"0123abcd"},
		base + "/logs":                {"SecretGet", testUser},
		base + "/logs?operation=SecretGet&result=Success&window=7d": {"SecretGet"},
		base + "/insights":                        {"p50 2 ms", "<svg"},
		"/portal/clusters/" + testSub + "/rg1/c1": {"MissingRoleAssignment", "c1-m1-bmc-abc", base + "/secrets/c1-m1-bmc-abc", "SystemAssignedIdentity"},
		"/portal/devices/" + testSub + "/rg1/e1":  {"ase-cik-1", "KeyVaultSyncFailed", "Critical", `href="` + base + `"`, "Sync device secrets", "Recover key vault"},
		"/portal/subscriptions":                   {"sub one"},
		"/portal/vaults":                          {base, "zz-vault"},
		"/portal/clusters":                        {"/portal/clusters/" + testSub + "/rg1/c1"},
		"/portal/devices":                         {"/portal/devices/" + testSub + "/rg1/e1"},
	}
	for path, want := range pages {
		w := h.do("GET", path, nil, sc)
		body := w.Body.String()
		if w.Code != 200 {
			t.Fatalf("%s: %d\n%s", path, w.Code, body)
		}
		for _, s := range want {
			if !strings.Contains(body, s) {
				t.Errorf("%s lacks %q", path, s)
			}
		}
		if strings.Contains(body, testSecret) || strings.Contains(body, testPassword) || strings.Contains(body, "rt-") ||
			strings.Contains(body, "eyJ") {
			t.Fatalf("%s shows a secret value, password or token", path)
		}
		hd := w.Header()
		if !strings.Contains(hd.Get("Content-Security-Policy"), "default-src 'self'") ||
			!strings.Contains(hd.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
			hd.Get("Cache-Control") != "no-store" || hd.Get("X-Frame-Options") != "DENY" || hd.Get("X-Content-Type-Options") != "nosniff" ||
			hd.Get("Strict-Transport-Security") != "max-age=31536000" {
			t.Fatalf("%s headers %v", path, hd)
		}
	}
	// List pages sort by name, whatever order the API answers in.
	if body := h.do("GET", "/portal/vaults", nil, sc).Body.String(); strings.Index(body, base) > strings.Index(body, "zz-vault") {
		t.Fatal("the vault list is not sorted by name")
	}
}

func TestBadPathsAndFilters(t *testing.T) {
	h := newHarness(t)
	fixtures(h)
	sc, _ := h.signIn()
	for path, want := range map[string]int{
		"/portal/vaults/" + testSub + "/rg1/v1/logs?operation=Secret%3CGet": http.StatusBadRequest,
		"/portal/vaults/" + testSub + "/..%2F..%2Fx/v1":                     http.StatusNotFound,
		"/portal/vaults/" + testSub + "/rg1/v1/secrets/bad.name":            http.StatusNotFound,
		"/portal/nothing-here": http.StatusNotFound,
	} {
		if w := h.do("GET", path, nil, sc); w.Code != want {
			t.Errorf("%s: %d, want %d", path, w.Code, want)
		}
	}
	// The API refusing a token ends the session.
	h.api.json("GET", "/subscriptions", 401, map[string]any{})
	if w := h.do("GET", "/portal/subscriptions", nil, sc); w.Code != http.StatusSeeOther {
		t.Fatalf("API 401: %d", w.Code)
	}
	if w := h.do("GET", "/portal/vaults/"+testSub+"/rg1/v1", nil, sc); w.Code != http.StatusSeeOther {
		t.Fatalf("session after API 401: %d", w.Code)
	}
}

// Every call the portal makes, sign-in included, carries the browser's
// address for the API's firewall and audit log.
func TestForwardsClientAddress(t *testing.T) {
	h := newHarness(t)
	h.p.opts.Forward = func(req *http.Request, ip string) { req.Header.Set("X-Test-Client", ip) }
	fixtures(h)
	sc, _ := h.signIn()
	if w := h.do("GET", "/portal/vaults/"+testSub+"/rg1/v1", nil, sc); w.Code != 200 {
		t.Fatalf("%d", w.Code)
	}
	h.api.mu.Lock()
	defer h.api.mu.Unlock()
	if len(h.api.clients) < 5 {
		t.Fatalf("%d calls", len(h.api.clients))
	}
	for i, c := range h.api.clients {
		if c != "203.0.113.9" {
			t.Fatalf("%s carried client %q", h.api.requests[i], c)
		}
	}
}
