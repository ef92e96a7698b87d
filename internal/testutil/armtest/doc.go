// Package armtest is the test environment the ARM resource providers' tests
// share: a real SQLite store in a temporary directory, a fake clock, an
// arm.Server driven in-process through httptest with the caller's principal
// injected as the authentication middleware would, and optionally a real
// identity service. Each provider's tests keep their own paths, bodies and
// fakes; this package holds only what they all repeat.
//
// Test-only: nothing in the product imports it.
package armtest
