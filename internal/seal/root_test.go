package seal

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateRoot(t *testing.T) {
	r, path := newFileRoot(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Fatalf("keyring mode = %04o, want 0600", got)
	}
	if r.ActiveVersion() != 1 || fmt.Sprint(r.Versions()) != "[1]" {
		t.Fatalf("new keyring: active %d versions %v, want 1 [1]", r.ActiveVersion(), r.Versions())
	}
	r2, created, err := LoadOrCreateRoot(path)
	if err != nil || created {
		t.Fatalf("reload: created=%v err=%v", created, err)
	}
	if !bytes.Equal(r.raw[1], r2.raw[1]) {
		t.Fatal("reloaded keyring holds a different key")
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".keyhaven-keyring-*")); len(leftovers) > 0 {
		t.Fatalf("temporary files left behind: %v", leftovers)
	}
}

func TestLoadOrCreateRootConcurrentCreatorsAgree(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root.json")
	const n = 8
	roots := make([]*Root, n)
	var created, wg = make([]bool, n), sync.WaitGroup{}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, c, err := LoadOrCreateRoot(path)
			if err != nil {
				t.Errorf("LoadOrCreateRoot: %v", err)
				return
			}
			roots[i], created[i] = r, c
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	nCreated := 0
	for i := range n {
		if created[i] {
			nCreated++
		}
		if !bytes.Equal(roots[i].raw[1], roots[0].raw[1]) {
			t.Fatalf("creator %d ended with a different root key", i)
		}
	}
	if nCreated != 1 {
		t.Fatalf("%d callers report creating the keyring, want 1", nCreated)
	}
}

func TestLoadRootFileChecks(t *testing.T) {
	good := func(t *testing.T) string {
		_, path := newFileRoot(t)
		return path
	}
	tests := []struct {
		name    string
		prepare func(t *testing.T) string
		wantErr error
		wantMsg string
	}{
		{name: "ok/0600", prepare: good},
		{name: "ok/0400", prepare: func(t *testing.T) string {
			p := good(t)
			os.Chmod(p, 0o400)
			return p
		}},
		{name: "fail/group-readable", wantErr: ErrInsecureKeyFile, wantMsg: "chmod 600", prepare: func(t *testing.T) string {
			p := good(t)
			os.Chmod(p, 0o640)
			return p
		}},
		{name: "fail/world-readable", wantErr: ErrInsecureKeyFile, wantMsg: "0604", prepare: func(t *testing.T) string {
			p := good(t)
			os.Chmod(p, 0o604)
			return p
		}},
		{name: "fail/not-json", wantMsg: "not valid JSON", prepare: func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "k.json")
			os.WriteFile(p, []byte("c2VjcmV0LWtleS1tYXRlcmlhbA== not json"), 0o600)
			return p
		}},
		{name: "fail/short-key", wantMsg: "must be 32 bytes", prepare: func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "k.json")
			os.WriteFile(p, []byte(`{"format":"keyhaven-root-keyring","v":1,"active":1,"keys":[{"version":1,"key":"AAAA"}]}`), 0o600)
			return p
		}},
		{name: "fail/active-missing", wantMsg: "active version 2", prepare: func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "k.json")
			k := base64.StdEncoding.EncodeToString(make([]byte, 32))
			os.WriteFile(p, []byte(`{"format":"keyhaven-root-keyring","v":1,"active":2,"keys":[{"version":1,"key":"`+k+`"}]}`), 0o600)
			return p
		}},
		{name: "fail/directory", wantMsg: "not a regular file", prepare: func(t *testing.T) string {
			return t.TempDir()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.prepare(t)
			_, created, err := LoadOrCreateRoot(path)
			if strings.HasPrefix(tc.name, "ok/") {
				if err != nil || created {
					t.Fatalf("created=%v err=%v", created, err)
				}
				return
			}
			if err == nil {
				t.Fatal("want an error")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("err = %q, want it to mention %q", err, tc.wantMsg)
			}
			if strings.Contains(err.Error(), "c2VjcmV0") {
				t.Fatalf("error quotes file content: %q", err)
			}
		})
	}
}

func TestRootFromEnv(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	tests := []struct {
		name   string
		value  string
		wantOK bool
	}{
		{name: "ok/set", value: base64.StdEncoding.EncodeToString(key), wantOK: true},
		{name: "ok/surrounding-space", value: " " + base64.StdEncoding.EncodeToString(key) + "\n", wantOK: true},
		{name: "ok/unset", value: ""},
		{name: "fail/not-base64", value: "not*base64"},
		{name: "fail/16-bytes", value: base64.StdEncoding.EncodeToString(key[:16])},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvRootKey, tc.value)
			r, ok, err := RootFromEnv()
			if strings.HasPrefix(tc.name, "fail/") {
				if err == nil {
					t.Fatal("want an error")
				}
				if strings.Contains(err.Error(), tc.value) {
					t.Fatalf("error quotes the variable's value: %q", err)
				}
				return
			}
			if err != nil || ok != tc.wantOK {
				t.Fatalf("ok=%v err=%v, want ok=%v", ok, err, tc.wantOK)
			}
			if ok && (r.ActiveVersion() != 1 || r.Path() != "" || !bytes.Equal(r.raw[1], key)) {
				t.Fatalf("root = %v", r)
			}
		})
	}
}

func TestRootNeverPrintsKey(t *testing.T) {
	key := bytes.Repeat([]byte{0xAB}, 32)
	r, err := RootFromBytes(key)
	if err != nil {
		t.Fatal(err)
	}
	key[0] = 0 // RootFromBytes must have copied
	if r.raw[1][0] != 0xAB {
		t.Fatal("RootFromBytes kept the caller's slice")
	}
	e := NewEnvelope(nil, r)
	for _, s := range []string{fmt.Sprint(r), fmt.Sprintf("%v %+v %#v", r, r, r), fmt.Sprintf("%v %#v", e, e)} {
		if strings.Contains(s, "171") || strings.Contains(strings.ToLower(s), "abab") || strings.Contains(s, "q6ur") {
			t.Fatalf("formatted root leaks key bytes: %s", s)
		}
	}
}
