// Package drivers owns the rotation engine's reach into target systems: one
// Driver interface (log in with a credential; replace it with a new one) and
// its implementations, selected by the scheme of a target's endpoint:
//
//	redfish+https://host[:port]   BMC account via the Redfish API (DMTF DSP0266)
//	redfish+http://host[:port]    the same over plain HTTP (Options.AllowPlainHTTP only)
//	postgres://host[:port]/db     a PostgreSQL role (postgresql:// too)
//	""                            a credential keyhaven holds outright (Platform)
//
// Redfish: a session is opened with POST /redfish/v1/SessionService/Sessions
// (the X-Auth-Token header carries it; the session is deleted afterwards).
// DSP0266 requires services to offer both sessions and HTTP Basic; a BMC
// that answers the session create with 404, 405 or 501 (no session login)
// gets Basic instead, checked with a GET of the account collection. A 401 or
// 403 never falls back, so a wrong password counts once against the BMC's
// lockout policy. Set lists /redfish/v1/AccountService/Accounts, finds the member whose
// UserName matches and PATCHes {"Password": ...} to it (with If-Match when
// the BMC sent an ETag). TLS to a BMC is verified against Options.RootCAs
// (system roots when nil) or, explicitly, against pinned self-signed
// certificates (Options.PinnedCerts, exact DER match); verification is never
// skipped silently.
//
// PostgreSQL: the driver connects as the role itself with its current
// password and runs ALTER ROLE {role} WITH PASSWORD '{SCRAM-SHA-256 verifier}':
// the verifier is computed here (RFC 5802/7677 with crypto/pbkdf2 and HMAC-
// SHA-256), so the plaintext password never reaches the server, its logs or
// pg_stat_statements. The role name is quoted with pgx.Identifier. Note that
// a server using "trust" authentication accepts any password, so Login cannot
// tell a wrong password there.
//
// Every driver reports a refused credential as ErrRejected (wrapped), and
// anything else (unreachable target, protocol error) as another error, so the
// engine can tell "the target changed behind our back" from "try later".
// Errors never carry credential values.
package drivers
