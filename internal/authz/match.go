package authz

import (
	"strings"
)

// Action pattern matching, as Azure RBAC does it:
//
//   - case-insensitive;
//   - '*' may appear anywhere and matches any run of characters, '/'
//     included ("*/read" matches "Microsoft.KeyVault/vaults/read");
//   - a "/*/" in the middle of a pattern also matches a single "/", i.e. the
//     wildcard may stand for zero path segments. Azure documents no such rule
//     in words, but its own built-in roles depend on it: Managed Identity
//     Operator grants "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"
//     (the permission the Operator Nexus guide assigns it for) only through
//     the pattern "userAssignedIdentities/*/assign/action", and the Key Vault
//     data roles show the vault in the portal only through "vaults/*/read".
//
// Patterns are compiled once (lower-cased and split at '*') and cached with
// the role, so the hot path is a handful of prefix/suffix comparisons.

// maxPatternVariants bounds the expansion of "/*/" alternatives; validation
// keeps custom patterns far below it (maxStarsPerPattern).
const maxPatternVariants = 64

type pattern struct {
	any      bool       // the pattern is "*"
	variants [][]string // each variant split at '*'
}

func compilePattern(p string) pattern {
	p = strings.ToLower(strings.TrimSpace(p))
	if p == "*" {
		return pattern{any: true}
	}
	var cp pattern
	for _, v := range expandZeroSegment(p) {
		cp.variants = append(cp.variants, strings.Split(v, "*"))
	}
	return cp
}

// expandZeroSegment returns p plus every form of p in which some "/*/" is
// replaced by "/", deduplicated and capped at maxPatternVariants.
func expandZeroSegment(p string) []string {
	seen := map[string]bool{}
	var out []string
	var walk func(s string, from int)
	walk = func(s string, from int) {
		if len(out) >= maxPatternVariants {
			return
		}
		i := strings.Index(s[from:], "/*/")
		if i < 0 {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
			return
		}
		j := from + i
		walk(s, j+1)               // keep this wildcard
		walk(s[:j]+"/"+s[j+3:], j) // let it match zero segments
	}
	walk(p, 0)
	return out
}

// match reports whether the lower-cased action s matches the pattern.
func (p *pattern) match(s string) bool {
	if p.any {
		return true
	}
	for _, parts := range p.variants {
		if globMatch(parts, s) {
			return true
		}
	}
	return false
}

// globMatch matches s against literal parts separated by '*'. Taking the
// leftmost occurrence of each middle part is enough for '*'-only globs.
func globMatch(parts []string, s string) bool {
	if len(parts) == 1 {
		return s == parts[0]
	}
	first, last := parts[0], parts[len(parts)-1]
	if !strings.HasPrefix(s, first) {
		return false
	}
	s = s[len(first):]
	if !strings.HasSuffix(s, last) {
		return false
	}
	s = s[:len(s)-len(last)]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return true
}

// ActionMatches reports whether action matches the Azure action pattern.
func ActionMatches(pattern, action string) bool {
	p := compilePattern(pattern)
	return p.match(strings.ToLower(action))
}

type compiledBlock struct {
	actions, notActions, dataActions, notDataActions []pattern
}

type compiledRole struct {
	def    RoleDefinition
	blocks []compiledBlock
}

func compileList(in []string) []pattern {
	out := make([]pattern, 0, len(in))
	for _, s := range in {
		out = append(out, compilePattern(s))
	}
	return out
}

func compileRole(d *RoleDefinition) *compiledRole {
	cr := &compiledRole{def: d.clone()}
	for _, p := range d.Permissions {
		cr.blocks = append(cr.blocks, compiledBlock{
			actions:        compileList(p.Actions),
			notActions:     compileList(p.NotActions),
			dataActions:    compileList(p.DataActions),
			notDataActions: compileList(p.NotDataActions),
		})
	}
	return cr
}

func anyMatch(ps []pattern, s string) bool {
	for i := range ps {
		if ps[i].match(s) {
			return true
		}
	}
	return false
}

// allows evaluates the lower-cased action. A block's not-lists only subtract
// from that same block: another block may still grant what one excludes.
func (r *compiledRole) allows(action string, data bool) bool {
	for i := range r.blocks {
		b := &r.blocks[i]
		if data {
			if anyMatch(b.dataActions, action) && !anyMatch(b.notDataActions, action) {
				return true
			}
			continue
		}
		if anyMatch(b.actions, action) && !anyMatch(b.notActions, action) {
			return true
		}
	}
	return false
}
