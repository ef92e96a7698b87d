// Package pki owns the TLS material of `keyhaven serve`.
//
// EnsureServerTLS keeps a local certificate authority ("keyhaven local CA",
// ECDSA P-256, ten years) and a server certificate it signs (ECDSA P-256,
// one year) in a directory: ca.pem, ca-key.pem, server.pem and server-key.pem,
// key files mode 0600. Later starts reuse them and re-issue only the server
// certificate, under the same CA, when it expires within 30 days, no longer
// chains to the CA, or does not name every requested host. Clients trust the
// CA (Material.CAPool, or the ca.pem file) rather than each server
// certificate, so re-issuing never breaks them.
//
// LoadServerTLS uses operator-supplied certificate and key files instead.
package pki
