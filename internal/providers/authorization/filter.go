package authorization

import (
	"regexp"
	"strings"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/azerr"
)

// maxFilterLen caps $filter; real filters are far shorter.
const maxFilterLen = 1024

// filterTerm is one clause of an OData $filter: a function call without
// arguments (atScope()), a function with one string argument
// (assignedTo('x')), or "{field} eq '{value}'".
type filterTerm struct {
	name  string // lower-case field or function name
	value string // unquoted value ("" for atScope())
}

var (
	termFuncRe = regexp.MustCompile(`^(?i)([a-z]+)\(\s*(?:'((?:[^']|'')*)')?\s*\)$`)
	termEqRe   = regexp.MustCompile(`^(?i)([a-z]+)\s+eq\s+'((?:[^']|'')*)'$`)
)

// parseFilter splits f on " and " outside quotes and parses each clause.
// ok is false when a clause has none of the accepted forms.
func parseFilter(f string) (terms []filterTerm, ok bool) {
	f = strings.TrimSpace(f)
	if f == "" {
		return nil, true
	}
	if len(f) > maxFilterLen {
		return nil, false
	}
	for _, clause := range splitAnd(f) {
		clause = strings.TrimSpace(clause)
		if m := termFuncRe.FindStringSubmatch(clause); m != nil {
			terms = append(terms, filterTerm{name: strings.ToLower(m[1]), value: strings.ReplaceAll(m[2], "''", "'")})
			continue
		}
		if m := termEqRe.FindStringSubmatch(clause); m != nil {
			terms = append(terms, filterTerm{name: strings.ToLower(m[1]) + " eq", value: strings.ReplaceAll(m[2], "''", "'")})
			continue
		}
		return nil, false
	}
	return terms, true
}

// splitAnd splits on the keyword "and" (any case, surrounded by spaces)
// outside single-quoted strings, so a role name such as 'Reader and Data
// Access' stays one value.
func splitAnd(f string) []string {
	var out []string
	inQuote := false
	start := 0
	for i := 0; i < len(f); i++ {
		switch {
		case f[i] == '\'':
			inQuote = !inQuote
		case !inQuote && i+5 <= len(f) && f[i] == ' ' && strings.EqualFold(f[i:i+5], " and "):
			out = append(out, f[start:i])
			start = i + 5
			i += 4
		}
	}
	return append(out, f[start:])
}

// queryFilter returns the request's $filter (any casing of the name).
func queryFilter(req *arm.Request) string {
	for k, vs := range req.Query {
		if strings.EqualFold(k, "$filter") && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}

// assignmentFilter is what a role assignment list asks for.
type assignmentFilter struct {
	atScope     bool
	principalID string
}

// unsupportedAssignmentFilter is Azure's answer (message as Azure words it;
// the code "UnsupportedQuery" is keyhaven's, Azure's was not confirmed).
func unsupportedAssignmentFilter(f string) error {
	return azerr.New(400, "UnsupportedQuery",
		"The filter '%s' is not supported. Supported filters are either 'atScope()' or 'principalId eq '{value}'' or assignedTo('{value}').", clip(f, 200))
}

// parseAssignmentFilter accepts atScope(), principalId eq '{id}' and
// assignedTo('{id}'), alone or joined with "and". keyhaven has no groups
// whose membership assignedTo could expand, so it matches like principalId.
func parseAssignmentFilter(f string) (assignmentFilter, error) {
	var out assignmentFilter
	terms, ok := parseFilter(f)
	if !ok {
		return out, unsupportedAssignmentFilter(f)
	}
	for _, t := range terms {
		switch t.name {
		case "atscope":
			if t.value != "" {
				return out, unsupportedAssignmentFilter(f)
			}
			out.atScope = true
		case "principalid eq", "assignedto":
			if !arm.IsGUID(t.value) || out.principalID != "" && !strings.EqualFold(out.principalID, t.value) {
				return out, unsupportedAssignmentFilter(f)
			}
			out.principalID = strings.ToLower(t.value)
		default:
			return out, unsupportedAssignmentFilter(f)
		}
	}
	return out, nil
}

// definitionFilter is what a role definition list asks for.
type definitionFilter struct {
	roleName, roleType string
	atScopeAndBelow    bool
}

func parseDefinitionFilter(f string) (definitionFilter, error) {
	var out definitionFilter
	bad := azerr.New(400, "InvalidFilter",
		"The filter '%s' is not supported. Supported filters are 'roleName eq '{value}'', 'type eq 'BuiltInRole'|'CustomRole'' and 'atScopeAndBelow()'.", clip(f, 200))
	terms, ok := parseFilter(f)
	if !ok {
		return out, bad
	}
	for _, t := range terms {
		switch t.name {
		case "rolename eq":
			out.roleName = t.value
		case "type eq":
			switch {
			case strings.EqualFold(t.value, "BuiltInRole"):
				out.roleType = "BuiltInRole"
			case strings.EqualFold(t.value, "CustomRole"):
				out.roleType = "CustomRole"
			default:
				return out, bad
			}
		case "atscopeandbelow":
			if t.value != "" {
				return out, bad
			}
			out.atScopeAndBelow = true
		default:
			return out, bad
		}
	}
	return out, nil
}

// parseLockFilter accepts "" and atScope().
func parseLockFilter(f string) (atScope bool, err error) {
	terms, ok := parseFilter(f)
	if ok && len(terms) <= 1 && (len(terms) == 0 || terms[0].name == "atscope" && terms[0].value == "") {
		return len(terms) == 1, nil
	}
	return false, azerr.New(400, "InvalidFilter", "The filter '%s' is not supported. Supported filter: 'atScope()'.", clip(f, 200))
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
