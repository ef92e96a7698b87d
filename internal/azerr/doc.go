// Package azerr owns keyhaven's one error type: an error with an Azure error
// code, a public message and an HTTP status, kept apart from the internal
// cause. Every package returns *azerr.Error for anything a client should see;
// the server renders it in Azure's JSON shape with a single function (Write),
// so no handler ever formats an error body by hand.
package azerr
