// Package audit owns keyhaven's audit log: one event per request, in Azure
// Key Vault's AuditEvent shape, hash-chained per stream (one stream per
// resource ID, "global" for requests that name none), written durably before
// the response leaves (fail closed by default), shipped asynchronously to
// sinks (diagnostic settings) from persisted cursors, and served back through
// a small authorized HTTP API: query, verify, insights and HMAC.
//
// It never sees a secret value: events are built from request metadata the
// handlers record in principal.Info, the request line (path and api-version
// only) and the response status. Bodies, headers other than User-Agent, query
// values and tokens never enter an event. Where a value must be identified,
// the middleware hands (*Log).HMAC (the per-deployment audit key) to the
// handler as principal.Info.HMAC; the handler records Info.ValueHMAC
// (SecretSet does) and the event carries it as properties.valueHmac, only if
// it has the form HMAC produces.
//
// Writes are group-committed (commit.go): events of concurrent requests
// share one store transaction, each chained onto its stream in arrival
// order, and each request's response waits for the commit of the
// transaction holding its event; a failed transaction fails every request
// in it (closed, or open when configured). A lone request is written at
// once. Stream heads are written with a version precondition, so replicas
// on one database never fork a chain; a conflicting batch is rebuilt on the
// new heads.
//
// Store layout (prefix audit/, owned here):
//
//	audit/key                          the HMAC key, sealed (scope "sys")
//	audit/heads/{stream}               head of a stream: last seq and hash
//	audit/events/{stream}/{seq:020d}   one event, canonical JSON
//	audit/stime/{stream}/{ns:020d}-{seq:020d}   per-stream time index
//	audit/time/{ns:020d}-{stream}-{seq:020d}    global time index
//	audit/cursors/{sink}/{stream}      last seq a sink received
//	audit/lease/shipper                which replica ships right now
//
// Wiring (server): key := LoadOrCreateKey(ctx, st, sealer); log := New(st,
// clk, Options{Key, Sinks: {insights provider}, APIAudience: base URL});
// chain instrument → authenticate → log.Middleware → route (and the same
// around the managed-identity listener's handler); route the first path
// segment "audit" on the main host to log.Handler(authz engine); register
// log.Collectors(); run log.RunShipper(ctx) in the background; after the
// HTTP servers have shut down and before the store closes, log.Close(ctx)
// (refuses late appends, waits for events still being written; optional for
// correctness, since Shutdown already waits for the requests they belong to).
//
// Stream names are "global" or "r" + 32 hex digits of SHA-256 of the lower-
// cased resource ID, so a key never carries a raw resource ID.
package audit
