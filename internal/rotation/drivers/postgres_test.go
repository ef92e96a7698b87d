package drivers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/testutil/pgtest"
)

// wireTap is a TCP relay to PostgreSQL that records what clients send, to
// show what reaches the server (and its logs) with sslmode=disable.
type wireTap struct {
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	sent bytes.Buffer
}

func newWireTap(t *testing.T, target string) *wireTap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &wireTap{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			w.wg.Add(1)
			go func() { _, _ = io.Copy(c, s); c.Close() }()
			go func() {
				defer w.wg.Done()
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						w.mu.Lock()
						w.sent.Write(buf[:n])
						w.mu.Unlock()
						_, _ = s.Write(buf[:n])
					}
					if err != nil {
						s.Close()
						return
					}
				}
			}()
		}
	}()
	return w
}

// bytes waits for the clients to hang up and returns all they sent.
func (w *wireTap) bytes(t *testing.T) []byte {
	t.Helper()
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a client connection through the tap is still open")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.sent.Bytes())
}

// TestPostgresSet rotates throwaway roles on the real local PostgreSQL.
// The local server trusts every connection, so a login cannot tell a wrong
// password; instead the role's stored verifier (pg_authid, as the
// superuser) must match the new password and not the old one, and the
// bytes the driver sent must hold a verifier, never the new password.
func TestPostgresSet(t *testing.T) {
	admin, endpoint := pgtest.Admin(t, "the PostgreSQL driver test")
	ctx := context.Background()
	const first = "first-pass-1"
	cases := []struct {
		name, suffix, next string
		fail               bool
	}{
		{name: "ok/plain-role", next: "N3w-pass-word-1"},
		// The role name needs quoting; the password holds SQL syntax.
		{name: "ok/quoted-role-sql-in-password", suffix: "-Mixed", next: "N3w-pass'word;DROP ROLE x;--"},
		{name: "fail/non-ascii-password", next: "pässwörd-123", fail: true},
		{name: "fail/empty-password", next: "", fail: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			role := pgtest.Role(t, admin, "kh_rot_", tc.suffix, first)
			before := pgtest.StoredPassword(t, admin, role)
			// The helper agrees with the server's own SCRAM implementation.
			if ok, err := pgtest.ScramMatches(before, first); err != nil || !ok {
				t.Fatalf("server verifier for the first password not matched: %v", err)
			}
			if ok, _ := pgtest.ScramMatches(before, first+"x"); ok {
				t.Fatal("server verifier matched a wrong password")
			}

			cfg := admin.Config()
			tap := newWireTap(t, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))))
			tapped := "postgres://" + tap.ln.Addr().String() + "/" + cfg.Database + "?sslmode=disable"
			d := NewPostgres(Options{Timeout: 5 * time.Second})
			err := d.Set(ctx, tapped, role, []byte(first), []byte(tc.next))
			if tc.fail {
				if err == nil {
					t.Fatal("Set accepted the password")
				}
				if tc.next != "" && strings.Contains(err.Error(), tc.next) {
					t.Fatal("error quotes the password")
				}
				if after := pgtest.StoredPassword(t, admin, role); after != before {
					t.Fatal("the stored verifier changed although Set failed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			after := pgtest.StoredPassword(t, admin, role)
			if !strings.HasPrefix(after, "SCRAM-SHA-256$") {
				t.Fatal("stored password is not a SCRAM-SHA-256 verifier")
			}
			if ok, err := pgtest.ScramMatches(after, tc.next); err != nil || !ok {
				t.Fatalf("stored verifier does not match the new password (%v)", err)
			}
			if ok, _ := pgtest.ScramMatches(after, first); ok {
				t.Fatal("stored verifier still matches the old password")
			}
			sent := tap.bytes(t)
			if bytes.Contains(sent, []byte(tc.next)) {
				t.Fatal("the new password went to the server in plain text")
			}
			if !bytes.Contains(sent, []byte("ALTER ROLE")) || !bytes.Contains(sent, []byte("SCRAM-SHA-256$")) {
				t.Fatal("the tap did not see the ALTER ROLE with a verifier")
			}
			if err := d.Login(ctx, endpoint, role, []byte(tc.next)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPostgresLogin(t *testing.T) {
	admin, endpoint := pgtest.Admin(t, "the PostgreSQL driver test")
	role := pgtest.Role(t, admin, "kh_rot_", "", "first-pass-1")
	d := NewPostgres(Options{Timeout: 5 * time.Second})
	cases := []struct {
		name, endpoint, role string
		unsupported          bool
	}{
		{name: "ok/login", endpoint: endpoint, role: role},
		{name: "fail/unknown-role", endpoint: endpoint, role: role + "-missing"},
		{name: "fail/malformed-endpoint", endpoint: "postgres://%zz", role: role, unsupported: true},
		{name: "fail/no-scheme", endpoint: "db:5432", role: role, unsupported: true},
		{name: "fail/unreachable", endpoint: fmt.Sprintf("postgres://127.0.0.1:%d/test?sslmode=disable&connect_timeout=2", closedPort(t)), role: role},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := d.Login(context.Background(), tc.endpoint, tc.role, []byte("first-pass-1"))
			switch {
			case strings.HasPrefix(tc.name, "ok/"):
				if err != nil {
					t.Fatal(err)
				}
			case err == nil:
				t.Fatal("login succeeded")
			case errors.Is(err, ErrUnsupported) != tc.unsupported:
				t.Fatalf("ErrUnsupported = %v, want %v: %v", errors.Is(err, ErrUnsupported), tc.unsupported, err)
			case strings.Contains(err.Error(), "first-pass-1"):
				t.Fatal("error quotes the password")
			}
		})
	}
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}
