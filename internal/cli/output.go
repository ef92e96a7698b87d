package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	jmespath "github.com/jmespath-community/go-jmespath"
	"gopkg.in/yaml.v3"
)

// print applies --query to v and writes it in the --output format.
func (a *app) print(v any) error {
	return writeResult(a.stdout, v, a.query, a.output)
}

func compileQuery(q string) (jmespath.JMESPath, error) {
	if len(q) > 4096 {
		return nil, fmt.Errorf("query too long")
	}
	return jmespath.Compile(q)
}

// writeResult is the whole output pipeline: normalise to plain JSON values,
// query, format. A nil result prints nothing, as in az.
func writeResult(w io.Writer, v any, query, format string) error {
	data, err := normalize(v)
	if err != nil {
		return err
	}
	if query != "" {
		q, err := compileQuery(query)
		if err != nil {
			return usageErrorf("argument --query: invalid jmespath_type value: %q", query)
		}
		if data, err = q.Search(data); err != nil {
			return fmt.Errorf("--query: %v", err)
		}
		if data, err = normalize(data); err != nil {
			return err
		}
	}
	if data == nil || format == "none" {
		return nil
	}
	var out []byte
	switch format {
	case "json", "":
		out, err = formatJSON(data)
	case "jsonc":
		var b bytes.Buffer
		writeColorJSON(&b, data, "")
		b.WriteByte('\n')
		out = b.Bytes()
	case "table":
		out = formatTable(data)
	case "tsv":
		out = formatTSV(data)
	case "yaml", "yamlc":
		out, err = yaml.Marshal(data)
	default:
		return usageErrorf("argument --output/-o: invalid choice: %q", format)
	}
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}

// normalize turns any Go value (structs, raw JSON) into the generic
// map[string]any / []any / float64 / string / bool / nil tree that JMESPath
// and the formatters work on.
func normalize(v any) (any, error) {
	var raw []byte
	switch t := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		raw = t
	case []byte:
		raw = t
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		raw = b
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("decoding result: %v", err)
	}
	return out, nil
}

func formatJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

const (
	colorKey    = "\x1b[94m"
	colorString = "\x1b[32m"
	colorNumber = "\x1b[33m"
	colorLit    = "\x1b[35m"
	colorReset  = "\x1b[0m"
)

// writeColorJSON writes v like formatJSON, with ANSI colours (az's jsonc).
func writeColorJSON(b *bytes.Buffer, v any, indent string) {
	switch t := v.(type) {
	case map[string]any:
		if len(t) == 0 {
			b.WriteString("{}")
			return
		}
		b.WriteString("{\n")
		keys := sortedKeys(t)
		for i, k := range keys {
			b.WriteString(indent + "  " + colorKey + jsonString(k) + colorReset + ": ")
			writeColorJSON(b, t[k], indent+"  ")
			if i < len(keys)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString(indent + "}")
	case []any:
		if len(t) == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteString("[\n")
		for i, e := range t {
			b.WriteString(indent + "  ")
			writeColorJSON(b, e, indent+"  ")
			if i < len(t)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString(indent + "]")
	case string:
		b.WriteString(colorString + jsonString(t) + colorReset)
	case float64:
		b.WriteString(colorNumber + formatNumber(t) + colorReset)
	case bool:
		b.WriteString(colorLit + strconv.FormatBool(t) + colorReset)
	default:
		b.WriteString(colorLit + "null" + colorReset)
	}
}

func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func formatNumber(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func isScalar(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return false
	}
	return true
}

// scalarText renders a scalar the way az's table and tsv outputs do
// (Python's str: True/False; None is empty).
func scalarText(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case bool:
		if t {
			return "True"
		}
		return "False"
	case float64:
		return formatNumber(t)
	}
	return fmt.Sprint(v)
}

// tableRows turns a result into rows of scalar columns: objects keep their
// scalar fields, scalars become a "Result" column.
func tableRows(v any) []map[string]any {
	var items []any
	if l, ok := v.([]any); ok {
		items = l
	} else {
		items = []any{v}
	}
	rows := make([]map[string]any, 0, len(items))
	for _, it := range items {
		row := map[string]any{}
		if m, ok := it.(map[string]any); ok {
			for k, val := range m {
				if isScalar(val) {
					row[k] = val
				}
			}
		} else if isScalar(it) {
			row["Result"] = it
		}
		rows = append(rows, row)
	}
	return rows
}

// formatTable renders az's table output: capitalised headers, a dashed
// rule, columns separated by two spaces.
func formatTable(v any) []byte {
	rows := tableRows(v)
	seen := map[string]bool{}
	var cols []string
	for _, r := range rows {
		for k := range r {
			if !seen[k] {
				seen[k] = true
				cols = append(cols, k)
			}
		}
	}
	if len(cols) == 0 {
		return nil
	}
	sort.Strings(cols)
	headers := make([]string, len(cols))
	widths := make([]int, len(cols))
	for i, c := range cols {
		headers[i] = capitalizeFirst(c)
		widths[i] = utf8.RuneCountInString(headers[i])
	}
	cells := make([][]string, len(rows))
	for ri, r := range rows {
		cells[ri] = make([]string, len(cols))
		for ci, c := range cols {
			s := strings.ReplaceAll(scalarText(r[c]), "\n", " ")
			cells[ri][ci] = s
			if n := utf8.RuneCountInString(s); n > widths[ci] {
				widths[ci] = n
			}
		}
	}
	var b bytes.Buffer
	writeLine := func(vals []string) {
		var line strings.Builder
		for i, s := range vals {
			if i > 0 {
				line.WriteString("  ")
			}
			line.WriteString(s)
			line.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(s)))
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteByte('\n')
	}
	writeLine(headers)
	dashes := make([]string, len(cols))
	for i, w := range widths {
		dashes[i] = strings.Repeat("-", w)
	}
	writeLine(dashes)
	for _, c := range cells {
		writeLine(c)
	}
	return b.Bytes()
}

func capitalizeFirst(s string) string {
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	return strings.ToUpper(string(r)) + s[n:]
}

// formatTSV renders az's tsv output: one line per item, scalar fields in key
// order separated by tabs; a scalar result is printed bare, which is what
// scripts use (`--query value -o tsv`).
func formatTSV(v any) []byte {
	var b bytes.Buffer
	line := func(it any) string {
		switch t := it.(type) {
		case map[string]any:
			var parts []string
			for _, k := range sortedKeys(t) {
				if isScalar(t[k]) {
					parts = append(parts, scalarText(t[k]))
				}
			}
			return strings.Join(parts, "\t")
		case []any:
			parts := make([]string, 0, len(t))
			for _, e := range t {
				if isScalar(e) {
					parts = append(parts, scalarText(e))
				}
			}
			return strings.Join(parts, "\t")
		}
		return scalarText(it)
	}
	if l, ok := v.([]any); ok {
		for _, it := range l {
			b.WriteString(line(it))
			b.WriteByte('\n')
		}
		return b.Bytes()
	}
	b.WriteString(line(v))
	b.WriteByte('\n')
	return b.Bytes()
}
