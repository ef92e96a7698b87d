package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// The device agent's commands refuse what they cannot run with; the
// commands themselves run end to end in e2e (TestEdgeDeviceAgentGuide) and
// their work is internal/edge's.
func TestEdgeAgentCommands(t *testing.T) {
	h := newHarness(t)
	missing := filepath.Join(t.TempDir(), "none")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"fail/activate-no-flags", []string{"edge", "activate"}, 2, "--server, --activation-key, --state-dir"},
		{"fail/activate-no-key", []string{"edge", "activate", "--server", "https://localhost:8443", "--state-dir", missing}, 2, "--activation-key"},
		{"fail/activate-http", []string{"edge", "activate", "--server", "http://localhost:8443", "--activation-key", "k", "--state-dir", missing}, 1, "https://"},
		{"fail/activate-bad-ca", []string{"edge", "activate", "--server", "https://localhost:8443", "--ca-file", missing, "--activation-key", "k", "--state-dir", missing}, 1, "CA file"},
		{"fail/agent-no-dir", []string{"edge", "agent", "--once"}, 2, "--state-dir"},
		{"fail/agent-not-activated", []string{"edge", "agent", "--once", "--state-dir", missing}, 1, "activate the device first"},
		{"fail/agent-interval", []string{"edge", "agent", "--state-dir", missing, "--interval", "0s"}, 2, "--interval"},
		{"fail/unknown-verb", []string{"edge", "deactivate"}, 2, "not recognized"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := h.run(tc.args...)
			if code != tc.wantCode || !strings.Contains(errOut, tc.wantErr) {
				t.Fatalf("exit %d, want %d; stderr %q, want %q", code, tc.wantCode, errOut, tc.wantErr)
			}
		})
	}
}
