package storage

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/store"
)

var storeAll = store.ListOptions{}

func TestAppendOnly(t *testing.T) {
	e := newEnv(t)
	id := e.createAccount(sub1, "rg1", "logs1")
	const c, path = "insights-logs-auditevent", "resourceId=/SUBSCRIPTIONS/X/y=2026/m=03/PT1H.json"
	var want bytes.Buffer
	for i := range 5 {
		line := fmt.Sprintf("{\"n\":%d}\n", i)
		want.WriteString(line)
		if err := e.sp.AppendBlob(e.Ctx, id, c, path, []byte(line)); err != nil {
			t.Fatal(err)
		}
		e.Clock.Advance(time.Minute)
	}
	got, err := e.sp.ReadBlob(e.Ctx, id, c, path)
	if err != nil || !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("ReadBlob = %q, %v; want %q", got, err, want.String())
	}
	bl, err := e.sp.ListBlobs(e.Ctx, id, c, "resourceId=/")
	if err != nil || len(bl) != 1 || bl[0].Size != int64(want.Len()) || bl[0].Name != path ||
		!bl[0].LastModified.Equal(time.Date(2026, 3, 1, 12, 4, 0, 0, time.UTC)) || !bl[0].Created.Equal(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("ListBlobs = %+v, %v", bl, err)
	}

	tests := []struct {
		name, acct, container, path string
		data                        []byte
		status                      int
		code                        string
	}{
		{"ok/empty append is a no-op", id, c, path, nil, 0, ""},
		{"fail/unknown account", acctPath(sub1, "rg1", "nosuch"), c, path, []byte("x"), 404, "ResourceNotFound"},
		{"fail/account in wrong group", acctPath(sub1, "rg2", "logs1"), c, path, []byte("x"), 404, "ResourceNotFound"},
		{"fail/not an account id", "/subscriptions/" + sub1, c, path, []byte("x"), 400, "InvalidResourceId"},
		{"fail/bad container", id, "Bad_Container", path, []byte("x"), 400, "InvalidResourceName"},
		{"fail/dot segment", id, c, "a/../b", []byte("x"), 400, "InvalidBlobName"},
		{"fail/empty segment", id, c, "a//b", []byte("x"), 400, "InvalidBlobName"},
		{"fail/name too long", id, c, strings.Repeat("a", MaxBlobNameLength+1), []byte("x"), 400, "InvalidBlobName"},
		{"fail/append too large", id, c, path, make([]byte, MaxAppendBytes+1), 413, "RequestBodyTooLarge"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := e.sp.AppendBlob(e.Ctx, tc.acct, tc.container, tc.path, tc.data)
			if tc.status == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			ae := azerr.From(err)
			if err == nil || ae.Status != tc.status || ae.Code != tc.code {
				t.Fatalf("err = %v", err)
			}
		})
	}
	// Nothing above changed the blob.
	if got, _ := e.sp.ReadBlob(e.Ctx, id, c, path); !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("blob changed: %q", got)
	}
	// Chunks are written once: a second writer at a used offset is refused
	// by the store, so no code path can overwrite data.
	m := blobList(t, e, id, c)[0]
	err = e.Store.Update(e.Ctx, func(tx store.Tx) error {
		aid := e.account(t, "logs1")
		_, err := tx.Put(e.Ctx, chunkKey(aid, m["blobId"], 0), []byte("overwrite"), store.Absent)
		return err
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("overwriting a chunk: %v", err)
	}
}

func (e *env) account(t *testing.T, name string) string {
	t.Helper()
	a, _, err := e.sp.get(e.Ctx, e.Store, name)
	if err != nil {
		t.Fatal(err)
	}
	return a.InternalID
}

// blobList lists blobs through the ARM route: name, blobId, size.
func blobList(t *testing.T, e *env, acct, c string) []map[string]string {
	t.Helper()
	items := e.Must("GET", containersPath(acct)+"/"+c+"/blobs"+stV, nil, 200).JSON(t)["value"].([]any)
	var out []map[string]string
	for _, it := range items {
		m := it.(map[string]any)
		id := m["id"].(string)
		out = append(out, map[string]string{"name": m["name"].(string), "blobId": id[strings.LastIndex(id, "/")+1:], "id": id,
			"size": fmt.Sprint(m["properties"].(map[string]any)["contentLength"])})
	}
	return out
}

func TestBlobRoutes(t *testing.T) {
	e := newEnv(t)
	id := e.createAccount(sub1, "rg1", "logs2")
	const c = "insights-logs-auditevent"
	for _, p := range []string{"resourceId=/A/h=01/PT1H.json", "resourceId=/A/h=02/PT1H.json", "resourceId=/B/h=01/PT1H.json"} {
		for i := range 3 {
			if err := e.sp.AppendBlob(e.Ctx, id, c, p, fmt.Appendf(nil, "%s line %d\n", p, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := e.sp.AppendBlob(e.Ctx, id, "other", "x", []byte("1")); err != nil {
		t.Fatal(err)
	}
	cs := e.Must("GET", containersPath(id)+stV, nil, 200).JSON(t)["value"].([]any)
	if len(cs) != 2 || cs[0].(map[string]any)["name"] != c || cs[0].(map[string]any)["id"] != containersPath(id)+"/"+c {
		t.Fatalf("containers %v", cs)
	}
	e.Must("GET", containersPath(id)+"/"+c+stV, nil, 200)

	tests := []struct {
		name, query string
		want        int
	}{
		{"ok/all", "", 3},
		{"ok/prefix", "&prefix=" + url.QueryEscape("resourceId=/A/"), 2},
		{"ok/prefix none", "&prefix=zzz", 0},
		{"ok/page", "&$top=2", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := e.Must("GET", containersPath(id)+"/"+c+"/blobs"+stV+tc.query, nil, 200).JSON(t)
			if got := len(m["value"].([]any)); got != tc.want {
				t.Fatalf("got %d: %v", got, m)
			}
			if tc.name == "ok/page" && m["nextLink"] == nil {
				t.Fatal("no nextLink")
			}
		})
	}

	bl := blobList(t, e, id, c)
	first := bl[0]
	want := ""
	for i := range 3 {
		want += fmt.Sprintf("%s line %d\n", first["name"], i)
	}
	get := func(q string) (string, map[string]any) {
		m := e.Must("GET", first["id"]+stV+q, nil, 200).JSON(t)
		ct := m["content"].(map[string]any)
		data, err := base64.StdEncoding.DecodeString(ct["data"].(string))
		if err != nil {
			t.Fatal(err)
		}
		return string(data), m
	}
	for _, tc := range []struct{ name, q, want string }{
		{"ok/whole", "", want},
		{"ok/range inside a chunk", "&offset=2&length=5", want[2:7]},
		{"ok/range across chunks", fmt.Sprintf("&offset=%d&length=%d", len(want)/3-2, len(want)/3+4), want[len(want)/3-2 : 2*len(want)/3+2]},
		{"ok/range past end", fmt.Sprintf("&offset=%d&length=1000", len(want)-3), want[len(want)-3:]},
		{"ok/at end", fmt.Sprintf("&offset=%d", len(want)), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, m := get(tc.q)
			if got != tc.want || m["name"] != first["name"] || m["properties"].(map[string]any)["blobType"] != "AppendBlob" {
				t.Fatalf("got %q want %q (%v)", got, tc.want, m)
			}
		})
	}
	for _, tc := range []struct{ name, path string }{
		{"fail/unknown blob id", containersPath(id) + "/" + c + "/blobs/00000000-0000-0000-0000-000000000000"},
		{"fail/not a guid", containersPath(id) + "/" + c + "/blobs/nope"},
		{"fail/blob in other container", containersPath(id) + "/other/blobs/" + first["blobId"]},
		{"fail/unknown container", containersPath(id) + "/nosuch/blobs"},
		{"fail/blob service not default", id + "/blobServices/other/containers"},
		{"fail/unknown account", containersPath(acctPath(sub1, "rg1", "nosuch"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.Must("GET", tc.path+stV, nil, 404)
		})
	}
	t.Run("fail/offset beyond end", func(t *testing.T) {
		e.Must("GET", first["id"]+stV+fmt.Sprintf("&offset=%d", len(want)+1), nil, 416)
	})
	t.Run("fail/no writes through routes", func(t *testing.T) {
		for _, m := range []string{"PUT", "PATCH"} {
			if r := e.Do(m, first["id"]+stV, map[string]any{"content": "x"}); r.Code != 405 {
				t.Fatalf("%s = %d", m, r.Code)
			}
		}
		if r := e.Do("PUT", containersPath(id)+"/newc"+stV, map[string]any{}); r.Code != 405 {
			t.Fatalf("container PUT = %d", r.Code)
		}
	})
	t.Run("fail/read denied", func(t *testing.T) {
		e.dec.Set("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read", true)
		defer e.dec.Set("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read", false)
		r := e.Do("GET", first["id"]+stV, nil)
		if r.Code != 403 || r.ErrCode(t) != "AuthorizationFailed" {
			t.Fatalf("got %d %s", r.Code, r.Body.String())
		}
	})
}

func TestBlobDeleteAndLocks(t *testing.T) {
	e := newEnv(t)
	id := e.createAccount(sub1, "rg1", "locked1")
	const c = "insights-logs-auditevent"
	for _, p := range []string{"a/1.json", "a/2.json"} {
		if err := e.sp.AppendBlob(e.Ctx, id, c, p, []byte("{}\n")); err != nil {
			t.Fatal(err)
		}
	}
	bl := blobList(t, e, id, c)
	lock := id + "/providers/Microsoft.Authorization/locks/keep" + lockV
	e.Must("PUT", lock, map[string]any{"properties": map[string]any{"level": "CanNotDelete"}}, 201)

	for _, tc := range []struct{ name, path string }{
		{"fail/blob under locked account", bl[0]["id"]},
		{"fail/locked account", id},
		{"fail/group of locked account", rgPath(sub1, "rg1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := stV
			if tc.path == rgPath(sub1, "rg1") {
				v = rgV
			}
			r := e.Do("DELETE", tc.path+v, nil)
			if r.Code != 409 || r.ErrCode(t) != "ScopeLocked" {
				t.Fatalf("got %d %s", r.Code, r.Body.String())
			}
		})
	}
	// Appends (the data path) still work under the lock.
	if err := e.sp.AppendBlob(e.Ctx, id, c, "a/1.json", []byte("{}\n")); err != nil {
		t.Fatalf("append under lock: %v", err)
	}
	if got := blobList(t, e, id, c); len(got) != 2 {
		t.Fatalf("blobs after refused deletes: %v", got)
	}

	e.Must("DELETE", lock, nil, 200)
	e.Must("DELETE", bl[0]["id"]+stV, nil, 200)
	e.Must("DELETE", bl[0]["id"]+stV, nil, 204)
	if _, err := e.sp.ReadBlob(e.Ctx, id, c, bl[0]["name"]); azerr.From(err).Code != "BlobNotFound" {
		t.Fatalf("read deleted blob: %v", err)
	}
	// Recreating the path starts a new, empty blob with a new id.
	if err := e.sp.AppendBlob(e.Ctx, id, c, bl[0]["name"], []byte("new\n")); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.sp.ReadBlob(e.Ctx, id, c, bl[0]["name"]); string(got) != "new\n" {
		t.Fatalf("recreated blob %q", got)
	}
	t.Run("fail/delete denied", func(t *testing.T) {
		e.dec.Set("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete", true)
		defer e.dec.Set("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete", false)
		if r := e.Do("DELETE", bl[1]["id"]+stV, nil); r.Code != 403 {
			t.Fatalf("got %d", r.Code)
		}
	})
}

func TestRetentionPrune(t *testing.T) {
	e := newEnv(t)
	id := e.createAccount(sub1, "rg1", "retain1")
	const c = "insights-logs-auditevent"
	write := func(p string) {
		t.Helper()
		if err := e.sp.AppendBlob(e.Ctx, id, c, p, []byte("{}\n")); err != nil {
			t.Fatal(err)
		}
	}
	write("resourceId=/V1/old.json")
	write("resourceId=/V2/old.json")
	if err := e.sp.AppendBlob(e.Ctx, id, "other", "resourceId=/V1/old.json", []byte("x")); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(3 * 24 * time.Hour)
	write("resourceId=/V1/new.json")
	write("resourceId=/V1/kept-alive.json")
	if err := e.sp.SetRetention(e.Ctx, id, c, "resourceId=/V1/", 2); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		days  int
		code  string
		acct  string
		cname string
	}{
		{"fail/negative", -1, "BadParameter", id, c},
		{"fail/too long", MaxRetentionDays + 1, "BadParameter", id, c},
		{"fail/no account", 1, "ResourceNotFound", acctPath(sub1, "rg1", "nosuch"), c},
		{"fail/bad container", 1, "InvalidResourceName", id, "X"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := e.sp.SetRetention(e.Ctx, tc.acct, tc.cname, "p/", tc.days); azerr.From(err).Code != tc.code {
				t.Fatalf("err = %v", err)
			}
		})
	}

	n, err := e.sp.PruneBlobs(e.Ctx, e.Clock.Now())
	if err != nil || n != 1 {
		t.Fatalf("PruneBlobs = %d, %v", n, err)
	}
	names := func(container string) []string {
		bl, err := e.sp.ListBlobs(e.Ctx, id, container, "")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, b := range bl {
			out = append(out, b.Name)
		}
		return out
	}
	// V1's old blob is gone; V2 (no rule) and the other container stay.
	if got := strings.Join(names(c), ","); got != "resourceId=/V1/kept-alive.json,resourceId=/V1/new.json,resourceId=/V2/old.json" {
		t.Fatalf("after prune: %s", got)
	}
	if got := names("other"); len(got) != 1 {
		t.Fatalf("other container: %v", got)
	}
	// A blob appended to recently is kept even if created long ago.
	e.Clock.Advance(24 * time.Hour)
	write("resourceId=/V1/kept-alive.json")
	e.Clock.Advance(36 * time.Hour)
	if n, err := e.sp.PruneBlobs(e.Ctx, e.Clock.Now()); err != nil || n != 1 {
		t.Fatalf("second prune = %d, %v", n, err)
	}
	if got := strings.Join(names(c), ","); got != "resourceId=/V1/kept-alive.json,resourceId=/V2/old.json" {
		t.Fatalf("after second prune: %s", got)
	}
	// Locks do not stop retention.
	e.Must("PUT", id+"/providers/Microsoft.Authorization/locks/keep"+lockV, map[string]any{"properties": map[string]any{"level": "CanNotDelete"}}, 201)
	e.Clock.Advance(10 * 24 * time.Hour)
	if n, err := e.sp.PruneBlobs(e.Ctx, e.Clock.Now()); err != nil || n != 1 {
		t.Fatalf("prune under lock = %d, %v", n, err)
	}
	// Removing the rule stops pruning.
	write("resourceId=/V1/again.json")
	if err := e.sp.SetRetention(e.Ctx, id, c, "resourceId=/V1/", 0); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(100 * 24 * time.Hour)
	if n, err := e.sp.PruneBlobs(e.Ctx, e.Clock.Now()); err != nil || n != 0 {
		t.Fatalf("prune without rule = %d, %v", n, err)
	}
}

func TestAccountDeleteRemovesData(t *testing.T) {
	e := newEnv(t)
	id := e.createAccount(sub1, "rg1", "gone1")
	if err := e.sp.AppendBlob(e.Ctx, id, "logs", "a.json", []byte("secret-ish\n")); err != nil {
		t.Fatal(err)
	}
	if err := e.sp.SetRetention(e.Ctx, id, "logs", "", 5); err != nil {
		t.Fatal(err)
	}
	e.Must("DELETE", id+stV, nil, 200)
	recs, err := e.Store.List(e.Ctx, prefix, storeAll)
	if err != nil || len(recs) != 0 {
		t.Fatalf("left behind: %d %v", len(recs), err)
	}
	// A new account of the same name starts empty.
	e.createAccount(sub1, "rg1", "gone1")
	if _, err := e.sp.ListBlobs(e.Ctx, id, "logs", ""); azerr.From(err).Code != "ContainerNotFound" {
		t.Fatalf("ListBlobs on new account: %v", err)
	}
}

func TestConcurrentAppends(t *testing.T) {
	e := newEnv(t)
	id := e.createAccount(sub1, "rg1", "busy1")
	const writers, each = 8, 10
	errs := make(chan error, writers*each)
	done := make(chan struct{})
	for w := range writers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range each {
				errs <- e.sp.AppendBlob(e.Ctx, id, "logs", "h.json", fmt.Appendf(nil, "w%d-%d\n", w, i))
			}
		}()
	}
	for range writers {
		<-done
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := e.sp.ReadBlob(e.Ctx, id, "logs", "h.json")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	if len(lines) != writers*each {
		t.Fatalf("%d lines, want %d", len(lines), writers*each)
	}
	// Each writer's lines keep their order.
	next := map[string]int{}
	for _, l := range lines {
		var w, i int
		if _, err := fmt.Sscanf(l, "w%d-%d", &w, &i); err != nil {
			t.Fatalf("line %q", l)
		}
		key := fmt.Sprint(w)
		if i != next[key] {
			t.Fatalf("writer %d: line %d after %d", w, i, next[key])
		}
		next[key]++
	}
}
