// Package clientnet owns how keyhaven's own clients (the CLI and the Stack
// Edge device agent) reach a server over the network: TLS trusting the
// server's CA, and a dialer that sends the per-vault host names
// ({vault}.{vault-domain}) and *.localhost names to the server, because
// those names resolve on few machines. It is a leaf: no keyhaven imports.
package clientnet
