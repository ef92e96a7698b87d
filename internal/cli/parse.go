package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Azure's tag limits.
const (
	maxTags        = 50
	maxTagNameLen  = 512
	maxTagValueLen = 256
)

// parseTags parses az's space-separated `key[=value]` tag list. A single
// empty string clears the tags (`--tags ""`), as in az.
func parseTags(items []string) (map[string]string, error) {
	tags := map[string]string{}
	for _, it := range items {
		if it == "" {
			continue
		}
		k, v, _ := strings.Cut(it, "=")
		if err := checkTag(k, v); err != nil {
			return nil, err
		}
		tags[k] = v
		if len(tags) > maxTags {
			return nil, usageErrorf("argument --tags: at most %d tags are allowed", maxTags)
		}
	}
	return tags, nil
}

func checkTag(k, v string) error {
	switch {
	case k == "":
		return usageErrorf("argument --tags: tag name must not be empty (use KEY=VALUE)")
	case len(k) > maxTagNameLen:
		return usageErrorf("argument --tags: tag name longer than %d characters", maxTagNameLen)
	case len(v) > maxTagValueLen:
		return usageErrorf("argument --tags: tag value longer than %d characters", maxTagValueLen)
	case !utf8.ValidString(k) || !utf8.ValidString(v):
		return usageErrorf("argument --tags: tags must be valid UTF-8")
	case strings.ContainsAny(k, "<>%&\\?/"):
		return usageErrorf("argument --tags: tag name %q contains a character Azure does not allow (<>%%&\\?/)", k)
	}
	return nil
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

func newGUID() string { return uuid.NewString() }

// readJSONArg reads az's "JSON string or @file" argument.
func readJSONArg(flag, s string) (map[string]any, error) {
	const maxLen = 1 << 20
	raw := []byte(s)
	if strings.HasPrefix(s, "@") {
		b, err := readFileLimited(s[1:], maxLen)
		if err != nil {
			return nil, usageErrorf("argument %s: %v", flag, err)
		}
		raw = b
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, usageErrorf("argument %s: expected a JSON object or @file: %v", flag, err)
	}
	return m, nil
}

func readFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("file %s is larger than %d bytes", path, limit)
	}
	b := make([]byte, 0, st.Size())
	buf := make([]byte, 32<<10)
	for {
		n, err := f.Read(buf)
		b = append(b, buf[:n]...)
		if int64(len(b)) > limit {
			return nil, fmt.Errorf("file %s is larger than %d bytes", path, limit)
		}
		if err != nil {
			break
		}
	}
	return b, nil
}

// parseTime accepts az's datetime formats (ISO 8601, UTC when no zone) and
// returns unix seconds, Key Vault's wire format.
func parseTime(flag, s string) (int64, error) {
	layouts := []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02"}
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.Unix(), nil
		}
	}
	return 0, usageErrorf("argument %s: invalid datetime value %q (use YYYY-MM-DDTHH:MM:SSZ)", flag, s)
}

// parseBool accepts az's three-state flag values.
func parseBool(flag, s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "yes", "1", "enabled":
		return true, nil
	case "false", "no", "0", "disabled":
		return false, nil
	}
	return false, usageErrorf("argument %s: invalid choice %q (choose from 'false', 'true')", flag, s)
}

// triBool is az's three-state flag: unset, `--flag` (true) or
// `--flag true|false`.
type triBool struct {
	set bool
	val bool
}

func (t *triBool) String() string {
	if !t.set {
		return ""
	}
	if t.val {
		return "true"
	}
	return "false"
}

func (t *triBool) Set(s string) error {
	b, err := parseBool("", s)
	if err != nil {
		return fmt.Errorf("invalid choice %q (choose from 'false', 'true')", s)
	}
	t.set, t.val = true, b
	return nil
}

func (t *triBool) Type() string { return "bool" }
