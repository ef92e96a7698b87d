package server

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestConfigFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{name: "defaults", check: func(t *testing.T, c Config) {
			if c.RotationRetryInitial != 30*time.Second || c.RotationRetryMax != time.Hour {
				t.Errorf("retry backoff %v..%v, want 30s..1h", c.RotationRetryInitial, c.RotationRetryMax)
			}
		}},
		{name: "retry backoff set", args: []string{"--rotation-retry-initial", "2s", "--rotation-retry-max", "1m"}, check: func(t *testing.T, c Config) {
			if c.RotationRetryInitial != 2*time.Second || c.RotationRetryMax != time.Minute {
				t.Errorf("retry backoff %v..%v, want 2s..1m", c.RotationRetryInitial, c.RotationRetryMax)
			}
		}},
		{name: "retry initial too small", args: []string{"--rotation-retry-initial", "10ms"}, wantErr: "--rotation-retry-initial must be at least 100ms"},
		{name: "retry max below initial", args: []string{"--rotation-retry-initial", "2m", "--rotation-retry-max", "1m"}, wantErr: "--rotation-retry-max must not be less than"},
		{name: "listen port 0", args: []string{"--listen", "127.0.0.1:0"}, wantErr: "an explicit port"},
		{name: "bad log format", args: []string{"--log-format", "xml"}, wantErr: `--log-format "xml"`},
		{name: "tls cert without key", args: []string{"--tls-cert", "c.pem"}, wantErr: "--tls-cert and --tls-key go together"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			c.BindFlags(fs)
			if err := fs.Parse(append([]string{"--data-dir", t.TempDir()}, tc.args...)); err != nil {
				t.Fatal(err)
			}
			err := c.Validate()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Validate() = %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			tc.check(t, c)
		})
	}
}
