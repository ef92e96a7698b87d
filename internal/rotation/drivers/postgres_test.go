package drivers

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgAdmin connects as the superuser of KEYHAVEN_TEST_POSTGRES_DSN and
// returns the connection and a driver endpoint for the same server (no
// credentials in it: the driver supplies them).
func pgAdmin(t *testing.T) (*pgx.Conn, string) {
	t.Helper()
	dsn := os.Getenv("KEYHAVEN_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("KEYHAVEN_TEST_POSTGRES_DSN is unset (scripts/test.sh sets postgres://postgres@127.0.0.1:5432/test?sslmode=disable when it answers): skipping the PostgreSQL driver test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Skipf("PostgreSQL at KEYHAVEN_TEST_POSTGRES_DSN is unreachable (%v): skipping the PostgreSQL driver test", err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	cfg := admin.Config()
	return admin, "postgres://" + net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))) + "/" + cfg.Database + "?sslmode=disable"
}

// pgRole creates a login role with password (hashed by the server, with
// its own SCRAM implementation) and drops it at the end of the test.
func pgRole(t *testing.T, admin *pgx.Conn, suffix, password string) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	role := "kh_rot_" + hex.EncodeToString(b) + suffix
	ident := pgx.Identifier{role}.Sanitize()
	ctx := context.Background()
	if _, err := admin.Exec(ctx, "SET password_encryption = 'scram-sha-256'"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "CREATE ROLE "+ident+" LOGIN PASSWORD "+quoteLiteral(password)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+ident) })
	return role
}

func rolPassword(t *testing.T, admin *pgx.Conn, role string) string {
	t.Helper()
	var v string
	if err := admin.QueryRow(context.Background(), "SELECT rolpassword FROM pg_authid WHERE rolname = $1", role).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// scramMatches reports whether a PostgreSQL SCRAM-SHA-256 verifier
// ("SCRAM-SHA-256$iter:salt$StoredKey:ServerKey") was made from password:
// RFC 5802 §3 recomputed from the verifier's own salt and iteration count.
// Written apart from the production scramVerifier, so the two cannot share
// a mistake; the tests check it against verifiers the server computed.
func scramMatches(verifier, password string) (bool, error) {
	rest, ok := strings.CutPrefix(verifier, "SCRAM-SHA-256$")
	if !ok {
		return false, errors.New("not a SCRAM-SHA-256 verifier")
	}
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return false, errors.New("malformed verifier")
	}
	iterS, saltB64, ok1 := strings.Cut(params, ":")
	storedB64, serverB64, ok2 := strings.Cut(keys, ":")
	if !ok1 || !ok2 {
		return false, errors.New("malformed verifier")
	}
	iter, err := strconv.Atoi(iterS)
	if err != nil || iter < 1 {
		return false, errors.New("malformed iteration count")
	}
	dec := base64.StdEncoding.DecodeString
	salt, err1 := dec(saltB64)
	stored, err2 := dec(storedB64)
	server, err3 := dec(serverB64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return false, err
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iter, sha256.Size)
	if err != nil {
		return false, err
	}
	mac := func(msg string) []byte {
		m := hmac.New(sha256.New, salted)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	clientKey := sha256.Sum256(mac("Client Key"))
	return hmac.Equal(clientKey[:], stored) && hmac.Equal(mac("Server Key"), server), nil
}

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
	admin, endpoint := pgAdmin(t)
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
			role := pgRole(t, admin, tc.suffix, first)
			before := rolPassword(t, admin, role)
			// The helper agrees with the server's own SCRAM implementation.
			if ok, err := scramMatches(before, first); err != nil || !ok {
				t.Fatalf("server verifier for the first password not matched: %v", err)
			}
			if ok, _ := scramMatches(before, first+"x"); ok {
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
				if after := rolPassword(t, admin, role); after != before {
					t.Fatal("the stored verifier changed although Set failed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			after := rolPassword(t, admin, role)
			if !strings.HasPrefix(after, "SCRAM-SHA-256$") {
				t.Fatal("stored password is not a SCRAM-SHA-256 verifier")
			}
			if ok, err := scramMatches(after, tc.next); err != nil || !ok {
				t.Fatalf("stored verifier does not match the new password (%v)", err)
			}
			if ok, _ := scramMatches(after, first); ok {
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
	admin, endpoint := pgAdmin(t)
	role := pgRole(t, admin, "", "first-pass-1")
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
