// Package pgtest gives tests a superuser connection to the PostgreSQL
// server of KEYHAVEN_TEST_POSTGRES_DSN (skipping, with the reason, when there
// is none), throwaway login roles, and a check of the SCRAM-SHA-256 verifier
// a role's password is stored as.
package pgtest

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Admin connects as the superuser of KEYHAVEN_TEST_POSTGRES_DSN and returns
// the connection (closed at the end of the test) and an endpoint for the
// same server without credentials. Without the variable, or when the server
// does not answer, the test is skipped with a reason naming what.
func Admin(t *testing.T, what string) (*pgx.Conn, string) {
	t.Helper()
	dsn := os.Getenv("KEYHAVEN_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skipf("KEYHAVEN_TEST_POSTGRES_DSN is unset (scripts/test.sh sets it when PostgreSQL answers on 127.0.0.1:5432): skipping %s", what)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Skipf("PostgreSQL at KEYHAVEN_TEST_POSTGRES_DSN is unreachable (%v): skipping %s", err, what)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	cfg := admin.Config()
	return admin, "postgres://" + net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))) + "/" + cfg.Database + "?sslmode=disable"
}

// Role creates a login role named prefix + random hex + suffix with
// password (hashed by the server's own SCRAM code) and drops it at the end
// of the test.
func Role(t *testing.T, admin *pgx.Conn, prefix, suffix, password string) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	role := prefix + hex.EncodeToString(b) + suffix
	ident := pgx.Identifier{role}.Sanitize()
	ctx := context.Background()
	if _, err := admin.Exec(ctx, "SET password_encryption = 'scram-sha-256'"); err != nil {
		t.Fatal(err)
	}
	lit := "'" + strings.ReplaceAll(password, "'", "''") + "'"
	if _, err := admin.Exec(ctx, "CREATE ROLE "+ident+" LOGIN PASSWORD "+lit); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+ident) })
	return role
}

// StoredPassword is the role's rolpassword from pg_authid.
func StoredPassword(t *testing.T, admin *pgx.Conn, role string) string {
	t.Helper()
	var v string
	if err := admin.QueryRow(context.Background(), "SELECT rolpassword FROM pg_authid WHERE rolname = $1", role).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// ScramMatches reports whether a PostgreSQL SCRAM-SHA-256 verifier
// ("SCRAM-SHA-256$iter:salt$StoredKey:ServerKey") was made from password:
// RFC 5802 §3 recomputed from the verifier's own salt and iteration count,
// with the standard library, apart from the production code (which uses
// xdg-go/scram), so the two cannot share a mistake.
func ScramMatches(verifier, password string) (bool, error) {
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
