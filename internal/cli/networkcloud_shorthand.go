package cli

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// az's object arguments (the networkcloud commands use many) accept three
// spellings, all handled here:
//
//	--flag key=value key2=value2          space-separated pairs (nargs '+')
//	--flag "{key:value,key2:[a,b]}"       shorthand syntax; JSON is a subset
//	--flag @file.json                     the value read from a file
//
// Keys match case-insensitively, with or without '-' and '_', against the
// CLI name (key-vault-id) or the JSON name (keyVaultId). `--flag ??` prints
// the argument's syntax help, as az does.

// Limits on shorthand input.
const (
	maxShorthandLen   = 1 << 20
	maxShorthandDepth = 16
	maxShorthandItems = 4096
)

// shorthand value kinds.
const (
	shString = iota
	shInt
	shEnum
	shObject
	shList
)

// shField is one key of an object argument.
type shField struct {
	name   string // CLI key, e.g. "key-vault-id"
	json   string // JSON property path, dotted for flattened ones ("associatedIdentity.identityType")
	help   string
	kind   int
	enum   []string
	fields []shField // shObject, or the element object of shList
	// file lets a string value be "@path" (e.g. a PEM key).
	file bool
}

// shArg describes an object (or list) argument.
type shArg struct {
	flag    string
	help    string
	list    bool // the value is a list of objects
	fields  []shField
	example string
	// pairs: the argument is usually given as key=value pairs.
	pairs bool
}

// shParser parses az shorthand syntax into maps, slices and strings.
type shParser struct {
	s     string
	i     int
	items int
}

func parseShorthand(s string) (any, error) {
	if len(s) > maxShorthandLen {
		return nil, fmt.Errorf("value is longer than %d bytes", maxShorthandLen)
	}
	p := &shParser{s: s}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("unexpected %q at offset %d", p.s[p.i], p.i)
	}
	return v, nil
}

func (p *shParser) ws() {
	for p.i < len(p.s) && strings.ContainsRune(" \t\r\n", rune(p.s[p.i])) {
		p.i++
	}
}

func (p *shParser) value(depth int) (any, error) {
	if depth > maxShorthandDepth {
		return nil, fmt.Errorf("value nests deeper than %d levels", maxShorthandDepth)
	}
	p.items++
	if p.items > maxShorthandItems {
		return nil, fmt.Errorf("value has more than %d items", maxShorthandItems)
	}
	p.ws()
	if p.i >= len(p.s) {
		return "", nil
	}
	switch p.s[p.i] {
	case '{':
		return p.object(depth)
	case '[':
		return p.list(depth)
	}
	return p.scalar(",}]")
}

func (p *shParser) object(depth int) (any, error) {
	p.i++ // {
	m := map[string]any{}
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return m, nil
	}
	for {
		p.ws()
		k, err := p.scalar(":,}]")
		if err != nil {
			return nil, err
		}
		key, _ := k.(string)
		key = strings.TrimSpace(key)
		if key == "" {
			return nil, fmt.Errorf("empty key at offset %d", p.i)
		}
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, fmt.Errorf("expected ':' after key %q", clipText(key, 40))
		}
		p.i++
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		if _, dup := m[key]; dup {
			return nil, fmt.Errorf("key %q given twice", clipText(key, 40))
		}
		m[key] = v
		p.ws()
		if p.i >= len(p.s) {
			return nil, fmt.Errorf("missing '}'")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return m, nil
		default:
			return nil, fmt.Errorf("expected ',' or '}' at offset %d", p.i)
		}
	}
}

func (p *shParser) list(depth int) (any, error) {
	p.i++ // [
	out := []any{}
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return out, nil
	}
	for {
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		p.ws()
		if p.i >= len(p.s) {
			return nil, fmt.Errorf("missing ']'")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return out, nil
		default:
			return nil, fmt.Errorf("expected ',' or ']' at offset %d", p.i)
		}
	}
}

// scalar reads a quoted string ('...' with ” or \' escapes, or a JSON
// "..." string) or a bare word ending at one of stops.
func (p *shParser) scalar(stops string) (any, error) {
	if p.i < len(p.s) && p.s[p.i] == '"' {
		j := p.i + 1
		for j < len(p.s) && p.s[j] != '"' {
			if p.s[j] == '\\' {
				j++
			}
			j++
		}
		if j >= len(p.s) {
			return nil, fmt.Errorf("unterminated string")
		}
		s, err := strconv.Unquote(p.s[p.i : j+1])
		if err != nil {
			return nil, fmt.Errorf("invalid string at offset %d", p.i)
		}
		p.i = j + 1
		return s, nil
	}
	if p.i < len(p.s) && p.s[p.i] == '\'' {
		var b strings.Builder
		j := p.i + 1
		for {
			if j >= len(p.s) {
				return nil, fmt.Errorf("unterminated string")
			}
			c := p.s[j]
			switch {
			case c == '\\' && j+1 < len(p.s) && (p.s[j+1] == '\'' || p.s[j+1] == '\\'):
				b.WriteByte(p.s[j+1])
				j += 2
				continue
			case c == '\'' && j+1 < len(p.s) && p.s[j+1] == '\'':
				b.WriteByte('\'')
				j += 2
				continue
			case c == '\'':
				p.i = j + 1
				return b.String(), nil
			}
			b.WriteByte(c)
			j++
		}
	}
	start := p.i
	for p.i < len(p.s) && !strings.ContainsRune(stops, rune(p.s[p.i])) {
		p.i++
	}
	return strings.TrimSpace(p.s[start:p.i]), nil
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func normKey(k string) string {
	return strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(k))
}

func findField(fields []shField, key string) *shField {
	n := normKey(key)
	for i := range fields {
		if normKey(fields[i].name) == n || normKey(fields[i].json) == n {
			return &fields[i]
		}
	}
	return nil
}

func fieldNames(fields []shField) string {
	s := make([]string, len(fields))
	for i, f := range fields {
		s[i] = f.name
	}
	return strings.Join(s, ", ")
}

// setPath sets a dotted JSON path in m.
func setPath(m map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, _ := m[p].(map[string]any)
		if next == nil {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
}

// convertObject maps a parsed object onto fields, producing the JSON body.
func convertObject(flag string, fields []shField, v any) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, usageErrorf("argument %s: expected an object {key:value,...}", flag)
	}
	out := map[string]any{}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	seen := map[string]bool{}
	for _, k := range keys {
		f := findField(fields, k)
		if f == nil {
			return nil, usageErrorf("argument %s: unknown key %q (expected one of: %s)", flag, clipText(k, 40), fieldNames(fields))
		}
		if seen[f.json] {
			return nil, usageErrorf("argument %s: key %s given twice", flag, f.name)
		}
		seen[f.json] = true
		cv, err := convertValue(flag+"."+f.name, f, m[k])
		if err != nil {
			return nil, err
		}
		setPath(out, f.json, cv)
	}
	return out, nil
}

func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

func convertValue(flag string, f *shField, v any) (any, error) {
	switch f.kind {
	case shObject:
		return convertObject(flag, f.fields, v)
	case shList:
		items, ok := v.([]any)
		if !ok {
			return nil, usageErrorf("argument %s: expected a list [...]", flag)
		}
		out := make([]any, 0, len(items))
		for i, it := range items {
			o, err := convertObject(fmt.Sprintf("%s[%d]", flag, i), f.fields, it)
			if err != nil {
				return nil, err
			}
			out = append(out, o)
		}
		return out, nil
	}
	s, ok := scalarString(v)
	if !ok {
		return nil, usageErrorf("argument %s: expected a single value", flag)
	}
	switch f.kind {
	case shInt:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, usageErrorf("argument %s: %q is not an integer", flag, clipText(s, 40))
		}
		return n, nil
	case shEnum:
		for _, e := range f.enum {
			if strings.EqualFold(e, s) {
				return e, nil
			}
		}
		return nil, usageErrorf("argument %s: invalid choice %q (choose from %s)", flag, clipText(s, 40), strings.Join(f.enum, ", "))
	}
	if f.file && strings.HasPrefix(s, "@") {
		b, err := readFileLimited(s[1:], maxShorthandLen)
		if err != nil {
			return nil, usageErrorf("argument %s: %v", flag, err)
		}
		return string(b), nil
	}
	return s, nil
}

// parseObjectArg turns an object argument's tokens into its JSON value
// (a map, or a list for list arguments). help reports that `??` asked for
// the syntax help instead.
func parseObjectArg(a shArg, tokens []string) (v any, help bool, err error) {
	if len(tokens) == 1 && strings.TrimSpace(tokens[0]) == "??" {
		return nil, true, nil
	}
	if len(tokens) == 0 {
		return nil, false, usageErrorf("argument %s: expected a value", a.flag)
	}
	first := strings.TrimSpace(tokens[0])
	if len(tokens) == 1 && (strings.HasPrefix(first, "{") || strings.HasPrefix(first, "[") || strings.HasPrefix(first, "@") || isFileArg(first)) {
		raw := first
		if strings.HasPrefix(first, "@") || isFileArg(first) {
			b, err := readFileLimited(strings.TrimPrefix(first, "@"), maxShorthandLen)
			if err != nil {
				return nil, false, usageErrorf("argument %s: %v", a.flag, err)
			}
			raw = string(b)
		}
		parsed, err := parseShorthand(raw)
		if err != nil {
			return nil, false, usageErrorf("argument %s: invalid shorthand or JSON value: %v (run with '??' for the syntax)", a.flag, err)
		}
		return convertTop(a, parsed)
	}
	if a.list {
		return nil, false, usageErrorf("argument %s: expected a list: \"[{...},{...}]\", JSON or @file", a.flag)
	}
	// key=value pairs; a value may itself be shorthand.
	m := map[string]any{}
	for _, t := range tokens {
		k, val, ok := strings.Cut(t, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, false, usageErrorf("argument %s: expected KEY=VALUE, got %q (keys: %s)", a.flag, clipText(t, 60), fieldNames(a.fields))
		}
		k = strings.TrimSpace(k)
		var pv any = val
		if tv := strings.TrimSpace(val); strings.HasPrefix(tv, "{") || strings.HasPrefix(tv, "[") {
			parsed, err := parseShorthand(tv)
			if err != nil {
				return nil, false, usageErrorf("argument %s: invalid value for %s: %v", a.flag, clipText(k, 40), err)
			}
			pv = parsed
		}
		if _, dup := m[k]; dup {
			return nil, false, usageErrorf("argument %s: key %q given twice", a.flag, clipText(k, 40))
		}
		m[k] = pv
	}
	return convertTop(a, m)
}

func isFileArg(s string) bool {
	if strings.ContainsAny(s, "={}[]") || !(strings.HasSuffix(s, ".json") || strings.HasSuffix(s, ".yaml")) {
		return false
	}
	st, err := os.Stat(s)
	return err == nil && st.Mode().IsRegular()
}

func convertTop(a shArg, parsed any) (any, bool, error) {
	if a.list {
		items, ok := parsed.([]any)
		if !ok {
			return nil, false, usageErrorf("argument %s: expected a list [...]", a.flag)
		}
		out := make([]any, 0, len(items))
		for i, it := range items {
			o, err := convertObject(fmt.Sprintf("%s[%d]", a.flag, i), a.fields, it)
			if err != nil {
				return nil, false, err
			}
			out = append(out, o)
		}
		return out, false, nil
	}
	o, err := convertObject(a.flag, a.fields, parsed)
	return o, false, err
}

// printShorthandHelp prints the syntax help `--flag ??` asks for.
func printShorthandHelp(w io.Writer, a shArg) {
	fmt.Fprintf(w, "%s\n    %s\n\n", a.flag, a.help)
	var usage []string
	for _, f := range a.fields {
		usage = append(usage, f.name+"=XX")
	}
	switch {
	case a.list:
		short := make([]string, len(a.fields))
		for i, f := range a.fields {
			short[i] = f.name + ":XX"
		}
		fmt.Fprintf(w, "Usage (a list of objects):\n    %s \"[{%s},...]\"\n\n", a.flag, strings.Join(short, ","))
	case a.pairs:
		fmt.Fprintf(w, "Usage:\n    %s %s\n\n", a.flag, strings.Join(usage, " "))
	default:
		short := make([]string, len(a.fields))
		for i, f := range a.fields {
			short[i] = f.name + ":XX"
		}
		fmt.Fprintf(w, "Usage:\n    %s \"{%s}\"\n\n", a.flag, strings.Join(short, ","))
	}
	fmt.Fprintln(w, "Keys:")
	printFields(w, a.fields, "    ")
	fmt.Fprintf(w, "\nExample:\n    %s\n\n", a.example)
	fmt.Fprintf(w, "The value may be given as space-separated KEY=VALUE pairs, in shorthand syntax\n"+
		"\"{key:value,key2:[a,b]}\" (quote values containing ',' ':' '{' '}' with '...'), as JSON, or as @FILE.\n"+
		"Keys are case-insensitive; the JSON property names (e.g. %s) are accepted too.\n", jsonNameExample(a.fields))
}

func jsonNameExample(fields []shField) string {
	if len(fields) == 0 {
		return ""
	}
	j := fields[0].json
	if i := strings.LastIndexByte(j, '.'); i >= 0 {
		j = j[i+1:]
	}
	return j
}

func printFields(w io.Writer, fields []shField, indent string) {
	width := 0
	for _, f := range fields {
		width = max(width, len(f.name))
	}
	for _, f := range fields {
		line := f.help
		if f.kind == shEnum {
			line += " Allowed values: " + strings.Join(f.enum, ", ") + "."
		}
		if f.kind == shInt {
			line += " (integer)"
		}
		fmt.Fprintf(w, "%s%-*s : %s\n", indent, width, f.name, line)
		if len(f.fields) > 0 {
			printFields(w, f.fields, indent+"    ")
		}
	}
}
