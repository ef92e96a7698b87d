package vault

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/seal"
	"github.com/keyhaven/keyhaven/internal/store"
)

// renewPolicy is a Self-issued create body valid for months with the given
// lifetime action and key_props.
func renewPolicy(months int, trigger, action, keyProps string) string {
	extra := fmt.Sprintf(`"x509_props":{"subject":"CN=renew.example.com","validity_months":%d}`, months)
	if trigger != "" {
		extra += fmt.Sprintf(`,"lifetime_actions":[{"trigger":{%s},"action":{"action_type":"%s"}}]`, trigger, action)
	}
	if keyProps != "" {
		extra += `,"key_props":{` + keyProps + `}`
	}
	return `{"policy":{"issuer":{"name":"Self"},` + extra + `}}`
}

// TestCertificateAutoRenew drives RenewDue with a fake clock: a certificate
// whose policy says AutoRenew gets a new version when its trigger falls due
// (not before, and once), with a new key unless reuse_key; other policies
// never renew; a policy update, a delete and a recovery move the schedule.
func TestCertificateAutoRenew(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		name   string
		body   string
		before func(e *env) // after create, before the clock moves
		due    time.Duration
		renews bool
		sameKy bool
	}{
		{name: "lifetime percentage", body: renewPolicy(12, `"lifetime_percentage":50`, "AutoRenew", ""),
			due: 182*day + 12*time.Hour, renews: true}, // half of the 365 days from Nov 25
		{name: "days before expiry", body: renewPolicy(12, `"days_before_expiry":30`, "AutoRenew", ""),
			due: 335 * day, renews: true}, // Nov 25 + 12 months - 30 days
		{name: "reuse key", body: renewPolicy(12, `"days_before_expiry":30`, "AutoRenew", `"reuse_key":true`),
			due: 335 * day, renews: true, sameKy: true},
		{name: "email contacts only", body: renewPolicy(12, `"lifetime_percentage":50`, "EmailContacts", ""),
			due: 200 * day},
		{name: "no lifetime action", body: renewPolicy(12, "", "", ""), due: 400 * day},
		{name: "policy updated to renew", body: renewPolicy(12, `"lifetime_percentage":50`, "EmailContacts", ""),
			before: func(e *env) {
				if code, m := e.do("PATCH", "/certificates/c/policy", `{"lifetime_actions":[{"trigger":{"days_before_expiry":100},"action":{"action_type":"AutoRenew"}}]}`); code != 200 {
					e.t.Fatalf("policy update: %d %v", code, m)
				}
			},
			due: 265 * day, renews: true},
		{name: "policy updated to stop renewing", body: renewPolicy(12, `"days_before_expiry":30`, "AutoRenew", ""),
			before: func(e *env) {
				if code, m := e.do("PATCH", "/certificates/c/policy", `{"lifetime_actions":[{"trigger":{"days_before_expiry":30},"action":{"action_type":"EmailContacts"}}]}`); code != 200 {
					e.t.Fatalf("policy update: %d %v", code, m)
				}
			},
			due: 340 * day},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			created := e.mustCert("c", tc.body)
			old, v1 := cerOf(t, created), versionOf(t, created)
			if tc.before != nil {
				tc.before(e)
			}
			renew := func() []Renewed {
				t.Helper()
				out, err := e.svc.RenewDue(t.Context())
				if err != nil {
					t.Fatalf("RenewDue: %v", err)
				}
				return out
			}
			e.clk.Advance(tc.due - time.Hour)
			if got := renew(); len(got) != 0 {
				t.Fatalf("renewed an hour before the trigger: %v", got)
			}
			e.clk.Advance(2 * time.Hour)
			got := renew()
			if !tc.renews {
				if len(got) != 0 {
					t.Fatalf("renewed a certificate whose policy does not say AutoRenew: %v", got)
				}
				return
			}
			if len(got) != 1 || got[0].Vault.Name != "v1" {
				t.Fatalf("RenewDue = %v, want one renewal in v1", got)
			}
			if again := renew(); len(again) != 0 {
				t.Fatalf("renewed twice: %v", again)
			}
			code, latest := e.do("GET", "/certificates/c/", "")
			if code != 200 || latest["id"] != got[0].ID {
				t.Fatalf("latest certificate %d %v, want %s", code, latest["id"], got[0].ID)
			}
			leaf := cerOf(t, latest)
			if leaf.Subject.CommonName != "renew.example.com" || !leaf.NotBefore.After(old.NotBefore) {
				t.Fatalf("renewed certificate subject %q not before %v (old %v)", leaf.Subject.CommonName, leaf.NotBefore, old.NotBefore)
			}
			same := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(old.PublicKey)
			if same != tc.sameKy {
				t.Fatalf("renewed with the same key: %v, want %v", same, tc.sameKy)
			}
			if _, s := e.do("GET", "/secrets/c/", ""); s["previousVersion"] != v1 {
				t.Fatalf("the renewed secret's previousVersion %v, want %s", s["previousVersion"], v1)
			}
			if _, v := e.do("GET", "/certificates/c/versions", ""); len(v["value"].([]any)) != 2 {
				t.Fatalf("versions after renewal: %v", v["value"])
			}
		})
	}
}

// A certificate deleted when its renewal falls due is not renewed; once
// recovered it is, at once. One in a deleted vault waits for the vault.
func TestCertificateAutoRenewAcrossDeletion(t *testing.T) {
	day := 24 * time.Hour
	e := newEnv(t)
	renewed := func(want int) {
		t.Helper()
		got, err := e.svc.RenewDue(t.Context())
		if err != nil || len(got) != want {
			t.Fatalf("RenewDue = %v, %v; want %d renewals", got, err, want)
		}
	}
	body := renewPolicy(12, `"days_before_expiry":30`, "AutoRenew", "")
	e.mustCert("c", body)
	e.mustCert("d", body)
	if code, m := e.do("DELETE", "/certificates/c", ""); code != 200 {
		t.Fatalf("delete: %d %v", code, m)
	}
	v1, _ := e.dir.LookupVault(t.Context(), "v1")
	e.dir.mu.Lock()
	delete(e.dir.vaults, "v1") // the vault is soft-deleted
	e.dir.mu.Unlock()
	e.clk.Advance(340 * day)
	renewed(0)
	e.dir.put(v1) // and recovered
	renewed(1)    // d, waiting for its vault
	if code, m := e.do("POST", "/deletedcertificates/c/recover", ""); code != 200 {
		t.Fatalf("recover: %d %v", code, m)
	}
	renewed(1) // c, at once
	renewed(0)
	for _, name := range []string{"c", "d"} {
		if _, v := e.do("GET", "/certificates/"+name+"/versions", ""); len(v["value"].([]any)) != 2 {
			t.Fatalf("%s: versions after renewal: %v", name, v["value"])
		}
	}
}

// Two replicas sharing a store renew a due certificate, and rotate a due
// key, once between them.
func TestCertificateAutoRenewOnceAcrossReplicas(t *testing.T) {
	e := newEnv(t)
	root, err := seal.RootFromBytes(bytes.Repeat([]byte{7}, seal.RootKeySize))
	if err != nil {
		t.Fatal(err)
	}
	other, err := New(Config{Store: e.st, Sealer: seal.NewEnvelope(e.st, root), Directory: e.dir, Decider: e.dec, Clock: e.clk,
		VaultDomain: "vault.localhost", Port: 8443, AuthorityBase: "https://localhost:8443"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		e.mustCert(fmt.Sprintf("c%d", i), renewPolicy(12, `"days_before_expiry":30`, "AutoRenew", ""))
		name := fmt.Sprintf("k%d", i)
		e.do("POST", "/keys/"+name+"/create", `{"kty":"RSA","key_size":3072}`) // slow to make: a wide race window
		if code, m := e.do("PUT", "/keys/"+name+"/rotationpolicy", `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P300D"},"action":{"type":"Rotate"}}]}`); code != 200 {
			t.Fatalf("policy: %d %v", code, m)
		}
	}
	e.clk.Advance(340 * 24 * time.Hour)
	var wg sync.WaitGroup
	counts := make([]int, 2)
	for i, svc := range []*Service{e.svc, other} {
		wg.Go(func() {
			got, err := svc.RenewDue(t.Context())
			if err != nil {
				t.Errorf("replica %d: %v", i, err)
			}
			counts[i] = len(got)
		})
	}
	wg.Wait()
	if counts[0]+counts[1] != 8 {
		t.Fatalf("renewals and rotations %v, want 8 in all", counts)
	}
	for i := range 4 {
		for _, p := range []string{"/certificates/c%d/versions", "/keys/k%d/versions"} {
			if _, v := e.do("GET", fmt.Sprintf(p, i), ""); len(v["value"].([]any)) != 2 {
				t.Fatalf(p+": %d versions, want 2", i, len(v["value"].([]any)))
			}
		}
	}
}

// A renewal waits while a certificate operation is pending (issuer Unknown
// awaiting its merge): the operation's key, which the merge needs, stays.
func TestCertificateRenewalWaitsForPendingMerge(t *testing.T) {
	e := newEnv(t)
	e.mustCert("p", renewPolicy(12, `"days_before_expiry":30`, "AutoRenew", ""))
	code, op := e.do("POST", "/certificates/p/create", `{"policy":{"issuer":{"name":"Unknown"},"key_props":{"kty":"EC"},"x509_props":{"subject":"CN=p.example"}}}`)
	if code != 202 || op["status"] != "inProgress" {
		t.Fatalf("unknown-issuer create: %d %v", code, op)
	}
	e.clk.Advance(340 * 24 * time.Hour)
	for range 2 {
		if got, err := e.svc.RenewDue(t.Context()); err != nil || len(got) != 0 {
			t.Fatalf("RenewDue during a pending merge = %v, %v", got, err)
		}
	}
	der, _ := base64.StdEncoding.DecodeString(op["csr"].(string))
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := testCert(t, caKey, "ca", nil, nil)
	tmpl := testCert(t, testECKey, "x", nil, nil)
	tmpl.Subject = csr.Subject
	signed, err := x509.CreateCertificate(rand.Reader, tmpl, ca, csr.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	if code, m := e.do("POST", "/certificates/p/pending/merge", importJSON(t, map[string]any{"x5c": []string{base64.StdEncoding.EncodeToString(signed)}})); code != 201 {
		t.Fatalf("merge after the renewal came due: %d %v", code, m)
	}
}

// A renewal that fails is retried with backoff, not on every pass.
func TestCertificateRenewalBacksOff(t *testing.T) {
	e := newEnv(t)
	e.mustCert("b", renewPolicy(12, `"days_before_expiry":30`, "AutoRenew", `"reuse_key":true`))
	// Damage the sealed key the renewal must reuse.
	ctx := t.Context()
	recs, err := e.st.List(ctx, "vault/iid-v1/keys/v/b/", store.ListOptions{Limit: 10})
	if err != nil || len(recs) != 1 {
		t.Fatalf("key versions: %v %d", err, len(recs))
	}
	var vr keyVersionRec
	if err := json.Unmarshal(recs[0].Value, &vr); err != nil {
		t.Fatal(err)
	}
	vr.Sealed[len(vr.Sealed)-1] ^= 1
	if err := e.st.Update(ctx, func(tx store.Tx) error { _, err := store.PutJSON(ctx, tx, recs[0].Key, vr, store.Any); return err }); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(340 * 24 * time.Hour)
	fails := func(want bool) {
		t.Helper()
		got, err := e.svc.RenewDue(ctx)
		if len(got) != 0 || (err != nil) != want {
			t.Fatalf("RenewDue = %v, %v; want a failure: %v", got, err, want)
		}
	}
	fails(true)
	fails(false) // backing off: not tried
	e.clk.Advance(61 * time.Second)
	fails(true)
	e.clk.Advance(61 * time.Second)
	fails(false) // the second wait is two minutes
	e.clk.Advance(60 * time.Second)
	fails(true)
}
