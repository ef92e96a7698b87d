package drivers

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/xdg-go/scram"
)

// scramIterations matches PostgreSQL's default scram_iterations.
const scramIterations = 4096

// Postgres rotates a PostgreSQL role's password, connecting as the role.
type Postgres struct {
	timeout time.Duration
}

// NewPostgres returns a PostgreSQL driver.
func NewPostgres(opts Options) *Postgres {
	t := opts.Timeout
	if t <= 0 {
		t = 30 * time.Second
	}
	return &Postgres{timeout: t}
}

func (d *Postgres) connect(ctx context.Context, endpoint, username string, secret []byte) (*pgx.Conn, error) {
	if err := checkInputs(username, secret); err != nil {
		return nil, err
	}
	if _, err := Scheme(endpoint); err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(endpoint)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed PostgreSQL endpoint", ErrUnsupported)
	}
	// The credential comes from keyhaven only, never from the endpoint,
	// the environment or a password file.
	cfg.User = username
	cfg.Password = string(secret)
	cfg.ConnectTimeout = d.timeout
	cfg.RuntimeParams["application_name"] = "keyhaven-rotation"
	cfg.Fallbacks = nil
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (pe.Code == "28P01" || pe.Code == "28000") {
			return nil, fmt.Errorf("postgres: login as %q: %w", clip(username, 64), ErrRejected)
		}
		// pgx errors name host and user, never the password.
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	return conn, nil
}

// Login connects as username with secret.
func (d *Postgres) Login(ctx context.Context, endpoint, username string, secret []byte) error {
	conn, err := d.connect(ctx, endpoint, username, secret)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.Ping(ctx)
}

// Set runs ALTER ROLE {username} WITH PASSWORD '{verifier}' as the role.
func (d *Postgres) Set(ctx context.Context, endpoint, username string, current, next []byte) error {
	if err := checkInputs(username, next); err != nil {
		return err
	}
	verifier, err := scramVerifier(next, nil)
	if err != nil {
		return err
	}
	conn, err := d.connect(ctx, endpoint, username, current)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	sql := "ALTER ROLE " + pgx.Identifier{username}.Sanitize() + " WITH PASSWORD " + quoteLiteral(verifier)
	if _, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			// The statement holds only a verifier, but keep messages short.
			return fmt.Errorf("postgres: alter role: %s (SQLSTATE %s)", clip(pe.Message, 200), pe.Code)
		}
		return fmt.Errorf("postgres: alter role: %w", err)
	}
	return nil
}

// scramVerifier returns the SCRAM-SHA-256 verifier PostgreSQL stores for
// password (RFC 5802 §3, RFC 7677): SCRAM-SHA-256$iter:salt$StoredKey:ServerKey.
// Only printable ASCII passwords are accepted, for which SASLprep is the
// identity, so the server computes the same keys at login.
func scramVerifier(password, salt []byte) (string, error) {
	if len(password) == 0 {
		return "", errors.New("postgres: empty password")
	}
	for _, c := range password {
		if c < 0x20 || c > 0x7e {
			return "", errors.New("postgres: password must be printable ASCII")
		}
	}
	if salt == nil {
		salt = make([]byte, 16)
		if _, err := rand.Read(salt); err != nil {
			return "", err
		}
	}
	// xdg-go/scram derives the keys (SaltedPassword, StoredKey, ServerKey).
	c, err := scram.SHA256.NewClient("", string(password), "")
	if err != nil {
		return "", fmt.Errorf("postgres: %w", err)
	}
	creds := c.GetStoredCredentials(scram.KeyFactors{Salt: string(salt), Iters: scramIterations})
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", scramIterations, b64(salt), b64(creds.StoredKey), b64(creds.ServerKey)), nil
}

// quoteLiteral quotes s as a standard-conforming SQL string literal. It is
// only ever given a SCRAM verifier (base64 and "$:-"), but quotes properly
// regardless.
func quoteLiteral(s string) string {
	s = strings.ReplaceAll(s, "\x00", "")
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
