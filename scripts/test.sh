#!/usr/bin/env bash
# Runs every keyhaven test: static checks, the unit and end-to-end tests of the
# main module (SQLite and, when reachable, PostgreSQL), the Go compatibility
# suite with the unmodified Azure SDK, and the JavaScript SDK suite.
# Anything a suite needs is installed here, or the suite is skipped with a reason.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
step() { printf '\n==> %s\n' "$*"; }

# PostgreSQL: use the given DSN, else the local server if it answers.
if [ -z "${KEYHAVEN_TEST_POSTGRES_DSN:-}" ]; then
  if command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    export KEYHAVEN_TEST_POSTGRES_DSN="postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
  else
    echo "NOTE: PostgreSQL not reachable on 127.0.0.1:5432 and KEYHAVEN_TEST_POSTGRES_DSN unset: PostgreSQL tests will be skipped."
  fi
fi
[ -n "${KEYHAVEN_TEST_POSTGRES_DSN:-}" ] && echo "PostgreSQL tests use KEYHAVEN_TEST_POSTGRES_DSN"

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go') 2>/dev/null || true)
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi

step "go vet"
go vet ./...
(cd compat && go vet ./...)

step "staticcheck"
sc=$(command -v staticcheck || true)
[ -z "$sc" ] && [ -x "$(go env GOPATH)/bin/staticcheck" ] && sc="$(go env GOPATH)/bin/staticcheck"
if [ -z "$sc" ]; then
  go install honnef.co/go/tools/cmd/staticcheck@v0.8.2 && sc="$(go env GOPATH)/bin/staticcheck"
fi
"$sc" ./...
(cd compat && "$sc" ./...)

step "build"
mkdir -p bin
go build -o bin/keyhaven ./cmd/keyhaven
export KEYHAVEN_BIN="$root/bin/keyhaven"

step "headless Chromium (the portal's browser test, e2e/portal_test.go)"
have_chromium() {
  [ -n "${KEYHAVEN_CHROMIUM:-}" ] && return 0
  for c in chromium chromium-browser google-chrome google-chrome-stable headless-shell; do
    command -v "$c" >/dev/null 2>&1 && return 0
  done
  return 1
}
if have_chromium; then
  echo "Chromium found"
else
  asroot=""
  [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && asroot="sudo -n"
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || [ -n "$asroot" ]; }; then
    echo "installing chromium with apt-get (log: /tmp/keyhaven-chromium-install.log)"
    { DEBIAN_FRONTEND=noninteractive $asroot apt-get install -y -q chromium ||
      { $asroot apt-get update -q && DEBIAN_FRONTEND=noninteractive $asroot apt-get install -y -q chromium; }; } \
      >/tmp/keyhaven-chromium-install.log 2>&1 || true
  fi
  have_chromium || echo "SKIP: no Chromium binary (chromium, chromium-browser, google-chrome or headless-shell; or KEYHAVEN_CHROMIUM) and it could not be installed (needs apt-get as root): TestPortalBrowser will be skipped."
fi

step "unit and end-to-end tests (main module)"
go test -count=1 -timeout 15m ./...

step "compatibility: unmodified Azure SDK for Go (compat/)"
(cd compat && go test -count=1 -timeout 10m ./...)

step "compatibility: unmodified Azure SDK for JavaScript (compat/js)"
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  if [ -f compat/js/package.json ]; then
    # Reinstall when package-lock.json changed since node_modules was made.
    (cd compat/js && { cmp -s package-lock.json node_modules/.keyhaven-lock 2>/dev/null ||
      { npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.keyhaven-lock; }; } && node --test)
  fi
else
  echo "SKIP: node/npm not installed: the JavaScript SDK suite did not run."
fi

step "the Operator Nexus guide, command for command (examples/nexus-walkthrough.sh)"
./examples/nexus-walkthrough.sh > /tmp/keyhaven-nexus-walkthrough.log 2>&1 || { cat /tmp/keyhaven-nexus-walkthrough.log; exit 1; }
grep -E '^(ok|###|[0-9]+ passed)' /tmp/keyhaven-nexus-walkthrough.log

step "all tests passed"
