// Package server owns the keyhaven process: configuration, listeners, TLS,
// the middleware chain every request passes (request id, limits, recovery,
// logging, metrics, bearer-token authentication) and the top-level dispatch
// to the planes (identity, ARM control plane, vault data plane). It wires the
// domain packages together and runs the background loops, but knows nothing
// of resource semantics itself.
package server
