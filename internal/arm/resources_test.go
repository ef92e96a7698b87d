package arm

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/store"
)

func TestListGeneric(t *testing.T) {
	boom := errors.New("boom")
	generic := func(n string) GenericResource { return GenericResource{Name: n} }
	tests := []struct {
		name    string
		recs    []string
		listErr error
		want    []string
	}{
		{name: "ok/converts-each", recs: []string{"a", "b"}, want: []string{"a", "b"}},
		{name: "ok/empty-not-nil", recs: nil, want: []string{}},
		{name: "fail/list-error", listErr: boom},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var gotSub, gotRG string
			list := func(_ context.Context, sub, rg string) ([]string, error) {
				gotSub, gotRG = sub, rg
				return tc.recs, tc.listErr
			}
			out, err := ListGeneric(context.Background(), "s1", "g1", list, generic)
			if gotSub != "s1" || gotRG != "g1" {
				t.Fatalf("list called with %q, %q", gotSub, gotRG)
			}
			if tc.listErr != nil {
				if !errors.Is(err, tc.listErr) || out != nil {
					t.Fatalf("got %v, %v; want nil, %v", out, err, tc.listErr)
				}
				return
			}
			if err != nil || out == nil || len(out) != len(tc.want) {
				t.Fatalf("got %v, %v; want %v", out, err, tc.want)
			}
			for i, g := range out {
				if g.Name != tc.want[i] {
					t.Fatalf("item %d = %q, want %q", i, g.Name, tc.want[i])
				}
			}
		})
	}
}

func TestRenderPage(t *testing.T) {
	tests := []struct {
		name  string
		top   string
		want  string
		next  bool
		fails bool
	}{
		{name: "ok/sorted-by-key", top: "10", want: "A,B,C"},
		{name: "ok/first-page", top: "2", want: "A,B", next: true},
		{name: "fail/bad-top", top: "0", fails: true},
	}
	srv := newEnv(t, Options{}).srv
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := &Request{Query: url.Values{"$top": {tc.top}}, path: "/x", srv: srv}
			resp, err := RenderPage(req, []string{"c", "a", "b"}, strings.ToUpper, func(s string) string { return s })
			if tc.fails {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil || resp.Status != http.StatusOK {
				t.Fatalf("got %v, %v", resp, err)
			}
			page := resp.Body.(*Page[string])
			if got := strings.Join(page.Value, ","); got != tc.want || (page.NextLink != "") != tc.next {
				t.Fatalf("page %q next %q; want %q next %v", got, page.NextLink, tc.want, tc.next)
			}
		})
	}
}

func TestDecodeCheckName(t *testing.T) {
	subID := ResourceID{SubscriptionID: "s1"}
	tests := []struct {
		name string
		req  Request
		code string // "" = ok
		want CheckNameRequest
	}{
		{name: "ok/decodes", req: Request{Kind: KindAction, ID: subID, Body: []byte(`{"name":"n1","type":"T/x"}`)}, want: CheckNameRequest{Name: "n1", Type: "T/x"}},
		{name: "fail/not-action", req: Request{Kind: KindResource, Method: http.MethodGet, ID: subID}, code: "MethodNotAllowed"},
		{name: "fail/no-subscription", req: Request{Kind: KindAction, Method: http.MethodPost}, code: "MethodNotAllowed"},
		{name: "fail/group-level", req: Request{Kind: KindAction, Method: http.MethodPost, ID: ResourceID{SubscriptionID: "s1", ResourceGroup: "g"}}, code: "MethodNotAllowed"},
		{name: "fail/bad-json", req: Request{Kind: KindAction, ID: subID, Body: []byte(`{`)}, code: "any"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeCheckName(&tc.req)
			switch {
			case tc.code == "":
				if err != nil || got != tc.want {
					t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
				}
			case err == nil:
				t.Fatal("want an error")
			case tc.code != "any" && azerr.From(err).Code != tc.code:
				t.Fatalf("code %q, want %q", azerr.From(err).Code, tc.code)
			}
		})
	}
}

func TestAnswerCheckName(t *testing.T) {
	invalid := func(string) error { return azerr.BadParameter("Name is invalid.") }
	valid := func(string) error { return nil }
	tests := []struct {
		name      string
		validate  func(string) error
		lookupErr error
		want      CheckNameResult
		lookedUp  bool
		fails     bool
	}{
		{name: "ok/available", validate: valid, lookupErr: store.ErrNotFound, want: CheckNameResult{NameAvailable: true}, lookedUp: true},
		{name: "ok/taken", validate: valid, want: CheckNameResult{Reason: "AlreadyExists", Message: "taken"}, lookedUp: true},
		{name: "ok/invalid-skips-lookup", validate: invalid, want: CheckNameResult{Reason: "AccountNameInvalid", Message: "Name is invalid."}},
		{name: "fail/lookup-error", validate: valid, lookupErr: errors.New("disk"), lookedUp: true, fails: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lookedUp := false
			lookup := func(name string) error {
				lookedUp = true
				if name != "n1" {
					t.Fatalf("lookup(%q)", name)
				}
				return tc.lookupErr
			}
			resp, err := AnswerCheckName("n1", tc.validate, lookup, "taken")
			if lookedUp != tc.lookedUp {
				t.Fatalf("lookup ran: %v, want %v", lookedUp, tc.lookedUp)
			}
			if tc.fails {
				if err == nil || azerr.From(err).Status != http.StatusInternalServerError {
					t.Fatalf("got %v, want an internal error", err)
				}
				return
			}
			if err != nil || resp.Status != http.StatusOK || resp.Body != tc.want {
				t.Fatalf("got %+v, %v; want %+v", resp, err, tc.want)
			}
		})
	}
}

func TestRequireLocation(t *testing.T) {
	srv := newEnv(t, Options{Locations: []string{"eastus", "westeurope"}}).srv
	str := func(s string) *string { return &s }
	tests := []struct {
		name string
		loc  *string
		want string
		code string // "" = ok
	}{
		{name: "ok/normalized", loc: str("West Europe"), want: "westeurope"},
		{name: "ok/plain", loc: str("eastus"), want: "eastus"},
		{name: "fail/absent", code: "LocationRequired"},
		{name: "fail/blank", loc: str("  "), code: "LocationRequired"},
		{name: "fail/not-offered", loc: str("mars" + strings.Repeat("x", 60)), code: "LocationNotAvailableForResourceType"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := &Request{srv: srv}
			got, err := req.RequireLocation(tc.loc, "Test.Widgets/widgets")
			if tc.code == "" {
				if err != nil || got != tc.want {
					t.Fatalf("got %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			e := azerr.From(err)
			if err == nil || e.Code != tc.code || e.Target != "location" {
				t.Fatalf("got %v, want code %s on location", err, tc.code)
			}
			if tc.code == "LocationNotAvailableForResourceType" &&
				(strings.Contains(e.Message, strings.Repeat("x", 60)) || !strings.Contains(e.Message, "eastus,westeurope")) {
				t.Fatalf("message %q: want the location clipped and the offered list", e.Message)
			}
		})
	}
}

func TestTagsOf(t *testing.T) {
	var null map[string]string
	some := map[string]string{"env": "test"}
	tooLong := map[string]string{strings.Repeat("k", 600): "v"}
	tests := []struct {
		name  string
		in    *map[string]string
		want  int
		fails bool
	}{
		{name: "ok/absent-is-empty", in: nil, want: 0},
		{name: "ok/null-is-empty", in: &null, want: 0},
		{name: "ok/given", in: &some, want: 1},
		{name: "fail/invalid", in: &tooLong, fails: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := TagsOf(tc.in)
			if tc.fails {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil || got == nil || len(got) != tc.want {
				t.Fatalf("got %v, %v; want %d tags", got, err, tc.want)
			}
		})
	}
}
