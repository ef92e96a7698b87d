package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keyhaven/keyhaven/internal/testutil/khtest"
)

// chromiumPath finds a headless-capable Chromium: $KEYHAVEN_CHROMIUM, else
// the usual names on PATH.
func chromiumPath() string {
	if p := os.Getenv("KEYHAVEN_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// spkiHashes are the base64 SHA-256 hashes of the public keys of the
// certificates in the PEM files: Chromium then accepts only the server's own
// chain (--ignore-certificate-errors-spki-list), not every certificate. The
// server does not send its CA, so the leaf is listed beside it.
func spkiHashes(t *testing.T, files ...string) string {
	t.Helper()
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			t.Fatalf("%s holds no PEM block", f)
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
		out = append(out, base64.StdEncoding.EncodeToString(sum[:]))
	}
	return strings.Join(out, ",")
}

// The portal in a real browser against the real binary: the administrator
// signs in, opens a vault, sees a secret's name and never its value, finds the
// SecretGet event in the vault's audit log and signs out; a user without a
// role sees the access-denied page.
func TestPortalBrowser(t *testing.T) {
	chrome := chromiumPath()
	if chrome == "" {
		t.Skip("SKIP: no Chromium binary (chromium, chromium-browser, google-chrome or headless-shell on PATH, or KEYHAVEN_CHROMIUM): the portal's browser test did not run")
	}
	s := khtest.Start(t, khtest.Options{})
	kh := cliSession(t, s)
	const value = "Portal-N3ver-Shows-This-Value"
	kh("group", "create", "--name", "rg1", "--location", "local", "-o", "none")
	kh("keyvault", "create", "--name", "portalvault", "--resource-group", "rg1", "--location", "local", "-o", "none")
	kh("keyvault", "secret", "set", "--vault-name", "portalvault", "--name", "db-password", "--value", value, "-o", "none")
	if got := strings.TrimSpace(kh("keyvault", "secret", "show", "--vault-name", "portalvault", "--name", "db-password", "--query", "value", "-o", "tsv")); got != value {
		t.Fatalf("secret show: %q", got) // and the SecretGet event the audit view must show
	}
	const noRoleUPN, noRolePassword = "norole@keyhaven.local", "N0-role-Passw0rd!"
	kh("ad", "user", "create", "--display-name", "No Role", "--user-principal-name", noRoleUPN, "--password", noRolePassword, "-o", "none")

	// A Stack Edge device, activated, whose agent pushed its secrets; the
	// administrator may read them (the guide's "View secrets").
	kh("databoxedge", "device", "create", "-n", "edge1", "-g", "rg1", "--sku", "EdgeP_Base", "-o", "none")
	key := strings.TrimSpace(kh("databoxedge", "device", "generate-activation-key", "-n", "edge1", "-g", "rg1",
		"--key-vault-name", "edge1-kv", "--query", "activationKey", "-o", "tsv"))
	kh("keyvault", "set-policy", "-n", "edge1-kv", "-g", "rg1", "--upn", s.Admin.Username, "--secret-permissions", "get", "list", "-o", "none")
	state := filepath.Join(t.TempDir(), "edge1")
	kh("edge", "activate", "--server", s.BaseURL, "--ca-file", s.CAFile, "--activation-key", key, "--state-dir", state, "-o", "none")
	kh("edge", "agent", "--state-dir", state, "--once", "-o", "none")
	var deviceValues []string
	for _, name := range strings.Fields(kh("keyvault", "secret", "list", "--vault-name", "edge1-kv", "--query", "[].name", "-o", "tsv")) {
		deviceValues = append(deviceValues, strings.TrimSpace(kh("keyvault", "secret", "show", "--vault-name", "edge1-kv", "-n", name, "--query", "value", "-o", "tsv")))
	}
	if len(deviceValues) != 3 { // CIK, BitLocker recovery key, BMC password
		t.Fatalf("device secrets: %d", len(deviceValues))
	}

	uaiID := strings.TrimSpace(kh("identity", "create", "-n", "clusterUAI", "-g", "rg1", "-l", "local", "--query", "id", "-o", "tsv"))
	vaultPage := s.BaseURL + "/portal/vaults/" + s.Admin.SubscriptionID + "/rg1/portalvault"
	identityPage := s.BaseURL + "/portal/identities/" + s.Admin.SubscriptionID + "/rg1/clusterUAI"
	devicePage := s.BaseURL + "/portal/devices/" + s.Admin.SubscriptionID + "/rg1/edge1"
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("ignore-certificate-errors-spki-list", spkiHashes(t, s.CAFile, filepath.Join(s.DataDir, "tls", "server.pem"))))...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil { // start the browser (no timeout on this first call)
		t.Fatalf("start %s: %v", chrome, err)
	}
	ctx, cancel := context.WithTimeout(browser, 90*time.Second)
	defer cancel()

	step := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
			t.Fatalf("%s: %v\npage:\n%s\nserver log:\n%s", what, err, html, s.Logs())
		}
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return v
	}
	page := func() string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	signIn := func(user, password string) {
		t.Helper()
		step("sign in as "+user,
			chromedp.WaitVisible(chromedp.CSS("#username")),
			chromedp.SendKeys(chromedp.CSS("#username"), user),
			chromedp.SendKeys(chromedp.CSS("#password"), password),
			chromedp.Click(chromedp.CSS("#signin")))
	}

	// The vault's page asks for a sign-in first, then returns to the vault.
	step("open the vault signed out", chromedp.Navigate(vaultPage))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.Contains(loc, "/portal/signin?next=") {
		t.Fatalf("signed out, the vault page went to %s", loc)
	}
	signIn(s.Admin.Username, s.Admin.Password)
	step("the vault's secrets", chromedp.WaitVisible(chromedp.CSS("#secrets-table")))
	if got := text("#secrets-table"); !strings.Contains(got, "db-password") {
		t.Fatalf("secrets table: %q", got)
	}
	if html := page(); strings.Contains(html, value) || strings.Contains(html, s.Admin.Password) {
		t.Fatal("the vault page shows the secret's value or the password")
	}
	// Access control (IAM): the administrator's bootstrap roles, inherited
	// from the root scope, with their role names.
	if got := text("#role-assignments"); !strings.Contains(got, "Key Vault Administrator") || !strings.Contains(got, "Owner") ||
		!strings.Contains(got, "Inherited from") {
		t.Fatalf("role assignments: %q", got)
	}
	if got := text("#user"); got != s.Admin.Username {
		t.Fatalf("signed in as %q", got)
	}

	// The audit log: the CLI's SecretGet, filtered by operation.
	step("open the audit log", chromedp.Click(chromedp.CSS("#tab-logs")), chromedp.WaitVisible(chromedp.CSS("#events")))
	if got := text("#events"); !strings.Contains(got, "SecretGet") || !strings.Contains(got, s.Admin.Username) {
		t.Fatalf("audit log lacks the SecretGet event:\n%s", got)
	}
	step("filter by operation",
		chromedp.SendKeys(chromedp.CSS("#operation"), "SecretGet"),
		chromedp.Click(chromedp.CSS("#filter")))
	// The click starts a navigation; the old page's #events is still there
	// until it lands, so wait for the filtered URL, then for the new page.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err == nil && strings.Contains(loc, "operation=SecretGet") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("filter did not apply: %s (%v)", loc, err)
		}
	}
	step("the filtered log", chromedp.WaitReady(chromedp.CSS("#events")))
	got := text("#events")
	if !strings.Contains(got, "SecretGet") || strings.Contains(got, "SecretList") || strings.Contains(got, "SecretSet") {
		t.Fatalf("filtered log:\n%s", got)
	}
	if html := page(); strings.Contains(html, value) {
		t.Fatal("the audit log shows the secret's value")
	}

	// The device's Security page: its vault, the CIK's name, the sync status;
	// Sync device secrets (a POST with the page's CSRF token) sets it pending.
	step("the device's Security page", chromedp.Navigate(devicePage), chromedp.WaitVisible(chromedp.CSS("#sync-status")))
	if got := text("#sync-status"); got != "KeyVaultSynced" {
		t.Fatalf("sync status %q", got)
	}
	if got := text("#cik-name"); !strings.Contains(got, "ase-cik-") {
		t.Fatalf("CIK name %q", got)
	}
	step("Sync device secrets", chromedp.Click(chromedp.CSS("#sync-secrets")), chromedp.WaitVisible(chromedp.CSS("#flash")))
	if got := text("#sync-status"); got != "KeyVaultSyncPending" {
		t.Fatalf("sync status after Sync device secrets: %q", got)
	}
	// Key vault name links to the vault: the device secrets' names, never their values.
	step("the device's vault", chromedp.Click(chromedp.CSS("#vault-name a")), chromedp.WaitVisible(chromedp.CSS("#secrets-table")))
	if got := text("#secrets-table"); !strings.Contains(got, "ase-bitlocker-") || !strings.Contains(got, "ase-cik-") {
		t.Fatalf("device vault secrets: %q", got)
	}
	html := page()
	for _, v := range deviceValues {
		if v == "" || strings.Contains(html, v) {
			t.Fatal("the device vault's page shows a device secret's value")
		}
	}
	if !strings.Contains(html, "edge1 (ManagedIdentity)") {
		t.Fatal("the access policy does not name the device's managed identity")
	}

	// The Nexus guide's portal steps for a user-assigned identity: Access
	// control (IAM) > Add role assignment > Managed Identity Operator > the
	// platform's application. The role lands in the control plane.
	step("the identity's page", chromedp.Navigate(identityPage), chromedp.WaitVisible(chromedp.CSS("#add-role-assignment")))
	step("Add role assignment",
		chromedp.SetValue(chromedp.CSS("#role"), "f1a07417-d97a-45cb-824c-7a7467783830"),
		chromedp.SendKeys(chromedp.CSS("#member"), "keyhaven-platform"),
		chromedp.Click(chromedp.CSS("#add-role")), chromedp.WaitVisible(chromedp.CSS("#flash")))
	if got := text("#flash"); got != "Role assignment added for keyhaven-platform." {
		t.Fatalf("after Add role assignment: %q", got)
	}
	if got := text("#role-assignments"); !strings.Contains(got, "Managed Identity Operator") || !strings.Contains(got, "keyhaven-platform") ||
		!strings.Contains(got, "This resource") {
		t.Fatalf("the identity's role assignments: %q", got)
	}
	if n := strings.TrimSpace(kh("role", "assignment", "list", "--scope", uaiID, "--role", "Managed Identity Operator", "--query", "length(@)", "-o", "tsv")); n != "1" {
		t.Fatalf("Managed Identity Operator assignments on the identity: %s, want 1", n)
	}

	// Sign out: the session is gone; the vault page asks for a sign-in again.
	step("sign out", chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#username")))
	step("open the vault after signing out", chromedp.Navigate(vaultPage), chromedp.WaitVisible(chromedp.CSS("#username")))

	// A user without a role: the access-denied page.
	signIn(noRoleUPN, noRolePassword)
	step("the access-denied page", chromedp.WaitVisible(chromedp.CSS("#access-denied")))
	if got := text("#access-denied"); !strings.Contains(got, "You do not have access") || !strings.Contains(got, "Microsoft.KeyVault/vaults/read") {
		t.Fatalf("access-denied page: %q", got)
	}
	if html := page(); strings.Contains(html, "db-password") {
		t.Fatal("the access-denied page names the vault's secrets")
	}

	// Every call the portal made is in the audit log as the user's own, with
	// the portal as the client application.
	ev := kh("monitor", "log", "list", "--vault-name", "portalvault", "--operation", "SecretList", "--query",
		"[?identity.claim.appid=='c44b4083-3bb0-49c1-b47d-974e53cbdf3c'].identity.claim.upn", "-o", "tsv")
	if !strings.Contains(ev, s.Admin.Username) {
		t.Fatalf("no SecretList event of the portal as %s:\n%s", s.Admin.Username, ev)
	}
	if strings.Contains(s.Logs(), value) || strings.Contains(s.Logs(), s.Admin.Password) || strings.Contains(s.Logs(), url.QueryEscape(noRolePassword)) ||
		strings.Contains(s.Logs(), noRolePassword) {
		t.Fatal("the server log holds a secret value or a password")
	}
}
