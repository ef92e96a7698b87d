// Package identity owns keyhaven's Entra-like directory and token service:
// tenants, users, applications and their service principals, managed
// identities (system- and user-assigned, and which resources carry them),
// the RS256 signing keys and their JWKS, token issue and verification, the
// OAuth2/OIDC endpoints (discovery, JWKS, token: client_credentials with a
// secret or a certificate assertion, password, refresh_token), the App
// Service-style managed-identity endpoint and a small Graph-like directory
// API.
//
// It authenticates; it never decides permissions. The Graph-like API asks an
// authz.Decider whether the caller may read or write the directory.
//
// Everything it persists lives under the store prefix "identity/". Passwords
// are argon2id hashes, client secrets, refresh tokens and workload secrets
// are HMAC-SHA256 under a per-deployment pepper (they are high-entropy), and
// signing private keys are sealed with the seal.Sealer (scope "sys").
package identity
