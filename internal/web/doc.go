// Package web is keyhaven's operator portal: server-rendered HTML pages under
// /portal for the views the Key Vault, Operator Nexus and Stack Edge guides
// send operators to (vaults with their secrets, access policies, role
// assignments (Access control (IAM), with Add role assignment), locks and
// diagnostic settings; user-assigned identities with their Access control
// (IAM), where the Nexus guide grants the platform Managed Identity
// Operator; a vault's audit log and insights; Nexus clusters with
// their credential rotation status and alerts; a Stack Edge device's Security
// page with Sync device secrets and Recover key vault).
//
// The portal is a client of keyhaven's own REST APIs, like the CLI and the
// rotation engine: every view is one or more HTTPS requests to this server
// (ARM, the vault data plane, /audit, /rotation/alerts) with the signed-in
// user's access token, so authentication, RBAC and access policies, the vault
// firewall and the audit log apply to the portal exactly as to any client.
// It imports none of the server's packages.
//
// Sign-in is the identity service's password grant at the server's own token
// endpoint; the tokens (an ARM token, a vault token, the rotating refresh
// token) stay in a server-side session held in memory. The browser holds only
// a random 256-bit session id in an HttpOnly, Secure, SameSite=Strict
// __Host- cookie. Sessions have an idle and an absolute lifetime; every POST
// form carries a per-session CSRF token (the sign-in form a per-browser one)
// and must come from the portal's own origin. Pages carry a strict CSP (no
// script at all), refuse framing and are never cached. No page ever shows a
// secret value, token or password: responses are decoded into types that
// have no field for them, and nothing of a request body is logged.
//
// Sessions live in the memory of the replica that signed the user in; with
// several replicas behind a load balancer, route a browser to one replica
// (sticky sessions), or it is asked to sign in again.
package web
