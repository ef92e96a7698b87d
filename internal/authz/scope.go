package authz

import (
	"strings"

	"github.com/google/uuid"
	"github.com/keyhaven/keyhaven/internal/azerr"
)

// Scope limits.
const (
	MaxScopeLen        = 512
	maxScopeSegmentLen = 260
)

// NormalizeScope gives a scope its canonical form for storage: a leading
// "/", no trailing "/", original case kept. It does not validate.
func NormalizeScope(scope string) string {
	s := strings.TrimSpace(scope)
	if s == "" || s == "/" {
		return "/"
	}
	if !strings.HasPrefix(s, "/") {
		s = "/" + s
	}
	for len(s) > 1 && strings.HasSuffix(s, "/") {
		s = s[:len(s)-1]
	}
	return s
}

// ValidateScope checks that scope (already normalized) is a well-formed ARM
// scope: "/", "/subscriptions/{s}", "/subscriptions/{s}/resourceGroups/{rg}",
// a resource ID below either ("…/providers/{ns}/{type}/{name}[/{type}/{name}…]",
// which covers child scopes such as ".../vaults/{v}/secrets/{name}"), or a
// management group "/providers/Microsoft.Management/managementGroups/{g}".
func ValidateScope(scope string) error {
	bad := func(why string) error {
		return azerr.New(400, "InvalidScope", "The scope '%s' is not valid: %s.", truncate(scope, 600), why)
	}
	if scope == "/" {
		return nil
	}
	if len(scope) > MaxScopeLen {
		return bad("it is too long")
	}
	if !strings.HasPrefix(scope, "/") || strings.HasSuffix(scope, "/") {
		return bad("it must start with '/' and not end with '/'")
	}
	segs := strings.Split(scope[1:], "/")
	for _, s := range segs {
		if s == "" {
			return bad("it has an empty segment")
		}
		if len(s) > maxScopeSegmentLen {
			return bad("a segment is too long")
		}
		if !validSegment(s) {
			return bad("it contains characters that are not allowed")
		}
	}
	rest := segs
	switch {
	case strings.EqualFold(rest[0], "subscriptions"):
		if len(rest) < 2 {
			return bad("the subscription is missing")
		}
		rest = rest[2:]
		if len(rest) > 0 && strings.EqualFold(rest[0], "resourceGroups") {
			if len(rest) < 2 {
				return bad("the resource group name is missing")
			}
			rest = rest[2:]
		}
		if len(rest) == 0 {
			return nil
		}
	case strings.EqualFold(rest[0], "providers"):
		// tenant-level resources such as management groups
	default:
		return bad("it must start with /subscriptions or /providers")
	}
	if !strings.EqualFold(rest[0], "providers") || len(rest) < 2 {
		return bad("expected 'providers/{namespace}'")
	}
	rest = rest[2:]
	if len(rest) < 2 || len(rest)%2 != 0 {
		return bad("a resource type must be followed by a resource name")
	}
	return nil
}

// validSegment allows the characters ARM resource names use in practice.
// Non-ASCII names are refused (keyhaven's own resources never need them),
// and so are '%', '?', '#', '|', whitespace and control characters, which
// would make scopes ambiguous in URLs and store keys.
func validSegment(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-_.()~:@!$&'+,;=", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// ScopeCovers reports whether an assignment at parent applies at child:
// child equals parent or lies below it, compared case-insensitively and
// segment by segment ("/subscriptions/a" does not cover "/subscriptions/ab").
func ScopeCovers(parent, child string) bool {
	return scopeCoversLower(strings.ToLower(NormalizeScope(parent)), strings.ToLower(NormalizeScope(child)))
}

// scopeCoversLower is ScopeCovers for already-normalized lower-case scopes.
func scopeCoversLower(parent, child string) bool {
	if parent == "/" {
		return true
	}
	if len(child) < len(parent) || child[:len(parent)] != parent {
		return false
	}
	return len(child) == len(parent) || child[len(parent)] == '/'
}

// scopeAncestors returns the normalized scope and every segment prefix above
// it, up to and including "/", in original case.
func scopeAncestors(scope string) []string {
	out := []string{scope}
	for s := scope; s != "/"; {
		i := strings.LastIndexByte(s, '/')
		if i <= 0 {
			s = "/"
		} else {
			s = s[:i]
		}
		out = append(out, s)
	}
	return out
}

// subscriptionOf returns the subscription ID in scope, or "".
func subscriptionOf(scope string) string {
	segs := strings.Split(strings.TrimPrefix(scope, "/"), "/")
	if len(segs) >= 2 && strings.EqualFold(segs[0], "subscriptions") {
		return segs[1]
	}
	return ""
}

// isGUID accepts only the canonical 36-character form.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
