package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteConfigPermissions(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(dir string)
	}{
		{"ok/new-directory", func(string) {}},
		{"ok/loose-directory-tightened", func(dir string) { _ = os.MkdirAll(dir, 0o755); _ = os.Chmod(dir, 0o755) }},
		{"ok/replaces-loose-file", func(dir string) {
			_ = os.MkdirAll(dir, 0o700)
			_ = os.WriteFile(filepath.Join(dir, configFileName), []byte("{}"), 0o644)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "kh")
			tc.prepare(dir)
			cfg := &Config{Server: "https://localhost:8443", RefreshToken: "rt-secret", LoginKind: loginUser}
			if err := writeConfig(dir, cfg); err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(dir)
			if err != nil || st.Mode().Perm() != 0o700 {
				t.Fatalf("dir mode %v, err %v; want 0700", st.Mode().Perm(), err)
			}
			fst, err := os.Stat(filepath.Join(dir, configFileName))
			if err != nil || fst.Mode().Perm() != 0o600 {
				t.Fatalf("file mode %v, err %v; want 0600", fst.Mode().Perm(), err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Fatalf("leftover files: %v", entries)
			}
			got, err := readConfig(filepath.Join(dir, configFileName))
			if err != nil || got.RefreshToken != "rt-secret" || got.Server != cfg.Server {
				t.Fatalf("round trip: %+v, %v", got, err)
			}
		})
	}
}

func TestReadConfig(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content *string
		wantErr bool
	}{
		{"ok/missing-is-empty", nil, false},
		{"fail/not-json", ptr("{nope"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, "/", "-")+".json")
			if tc.content != nil {
				_ = os.WriteFile(p, []byte(*tc.content), 0o600)
			}
			cfg, err := readConfig(p)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && cfg.Server != "" {
				t.Fatalf("want empty config, got %+v", cfg)
			}
		})
	}
}

func ptr(s string) *string { return &s }
