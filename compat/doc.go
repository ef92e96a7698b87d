// Package compat is keyhaven's compatibility suite: tests (package
// compat_test) that drive a real `keyhaven serve` process with the unmodified
// Azure SDK for Go clients — azsecrets, azidentity, armkeyvault, armmsi and
// armauthorization — configured only through their public options. It is a
// separate module so the product itself takes no Azure SDK dependency.
//
// Run: cd compat && go test -count=1 ./...
package compat
