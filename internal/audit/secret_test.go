package audit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/principal"
)

func TestHMAC(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	// Same store, same key: another replica loads the one created first.
	again, err := LoadOrCreateKey(ctx, e.st, e.sealer)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, e.key) {
		t.Fatal("a second LoadOrCreateKey made a new key")
	}
	other := newEnv(t, Options{})
	tests := []struct {
		name  string
		a, b  string
		l1    *Log
		l2    *Log
		equal bool
	}{
		{"ok/deterministic", "s3cr3t", "s3cr3t", e.log, e.log, true},
		{"ok/replica-same-key", "s3cr3t", "s3cr3t", e.log, e.newLog(t, e.st, Options{}), true},
		{"fail/different-value", "s3cr3t", "s3cr3u", e.log, e.log, false},
		{"fail/different-deployment", "s3cr3t", "s3cr3t", e.log, other.log, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h1, h2 := tc.l1.HMAC(tc.a), tc.l2.HMAC(tc.b)
			if !strings.HasPrefix(h1, "hmac-sha256:") || len(h1) != len("hmac-sha256:")+64 {
				t.Fatalf("hmac %q", h1)
			}
			if (h1 == h2) != tc.equal {
				t.Fatalf("%s vs %s, want equal=%v", h1, h2, tc.equal)
			}
			if strings.Contains(h1, tc.a) {
				t.Fatal("hmac shows the value")
			}
		})
	}
	// The key is stored sealed, never in the clear, and never printed.
	rec, err := e.st.Get(ctx, keyRecord)
	if err != nil || bytes.Contains(rec.Value, e.key) {
		t.Fatalf("audit key stored in the clear (err %v)", err)
	}
	for _, s := range []string{fmt.Sprint(e.log), fmt.Sprintf("%+v", e.log), fmt.Sprintf("%#v", e.log)} {
		if strings.Contains(s, fmt.Sprint(e.key)) || strings.Contains(s, string(e.key)) {
			t.Fatalf("fmt shows the key: %s", s)
		}
	}
	if _, err := New(e.st, e.clk, Options{Key: []byte("short")}); err == nil {
		t.Fatal("a short key was accepted")
	}
}

func TestNoSecretMaterialInAuditRecords(t *testing.T) {
	const marker = "SECRET-MARKER-91c2d"
	e := newEnv(t, Options{})
	sink := &fakeSink{}
	l := e.newLog(t, e.st, Options{Sinks: []Sink{sink}})
	fs := &failingStore{Store: e.st}
	closed := e.newLog(t, fs, Options{})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		info := principal.InfoFrom(r.Context())
		info.OperationName, info.ResourceID, info.OperationVersion = "SecretSet", testVault, "7.5"
		info.ObjectID = "https://v1.vault.localhost/secrets/db"
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body) // the response carries the value too, as SecretSet's does
	})
	send := func(l *Log) *httptest.ResponseRecorder {
		body := `{"value":"` + marker + `","tags":{"password":"` + marker + `"}}`
		r := httptest.NewRequest("PUT", "https://v1.vault.localhost/secrets/db?api-version=7.5&value="+marker+"&$skiptoken="+marker+"&access_token="+marker, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+marker)
		r.Header.Set("Cookie", "session="+marker)
		r.Header.Set("X-Custom", marker)
		return serve(l.Middleware(handler), withInfo(r, &principal.Info{RequestID: "r", Principal: userPrincipal(), UserAgent: "ua"}))
	}
	if w := send(l); w.Code != 200 || !strings.Contains(w.Body.String(), marker) {
		t.Fatalf("sanity: the value should reach the client: %d %s", w.Code, w.Body)
	}
	fs.set(true)
	if w := send(closed); w.Code != 500 || strings.Contains(w.Body.String(), marker) {
		t.Fatalf("fail-closed response leaks: %d %s", w.Code, w.Body)
	}
	if _, err := l.ShipOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sink.got()) != 1 {
		t.Fatalf("sink got %d events", len(sink.got()))
	}
	// Search the bytes of everything audit wrote: records, shipped events,
	// logs, query and insights answers.
	var all bytes.Buffer
	for _, rec := range rawRecords(t, e.st, prefix) {
		all.WriteString(rec.Key)
		all.Write(rec.Value)
	}
	for _, s := range sink.got() {
		all.Write(s.event)
	}
	all.Write(e.logs.Bytes())
	evs, _, err := l.Query(context.Background(), Filter{})
	if err != nil || len(evs) != 1 {
		t.Fatalf("query: %d %v", len(evs), err)
	}
	fmt.Fprintf(&all, "%+v", evs)
	ins, _ := l.Insights(context.Background(), "", t0.Add(-24*time.Hour), t0.Add(24*time.Hour))
	fmt.Fprintf(&all, "%+v", ins)
	if bytes.Contains(all.Bytes(), []byte(marker)) {
		t.Fatalf("secret marker found in audit output:\n%s", all.String())
	}
	if !bytes.Contains(all.Bytes(), []byte("SecretSet")) {
		t.Fatal("the search found no events at all")
	}
}
