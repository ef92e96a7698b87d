package arm

import (
	"strings"
	"testing"
)

// Every authorized request records, for its audit event, the resource it
// acts on as the object (properties.id), allowed or refused.
func TestAuditObjectID(t *testing.T) {
	e := newEnv(t, Options{})
	e.srv.Register(newWidgets())
	e.must("PUT", rgP+rgV, map[string]any{"location": "eastus"}, 201)
	tests := []struct {
		name, method, path, action, wantID string
		body                               any
		deny                               bool
		status                             int
	}{
		{name: "ok/group-read", method: "GET", path: rgP + rgV, action: "Microsoft.Resources/subscriptions/resourceGroups/read", wantID: rgP, status: 200},
		{name: "ok/provider-write", method: "PUT", path: widgP + wV, action: "Test.Widgets/widgets/write", wantID: widgP,
			body: map[string]any{"location": "eastus"}, status: 201},
		{name: "ok/provider-list", method: "GET", path: rgP + "/providers/Test.Widgets/widgets" + wV, action: "Test.Widgets/widgets/read",
			wantID: rgP + "/providers/Test.Widgets/widgets", status: 200},
		{name: "fail/provider-read-refused", method: "GET", path: widgP + wV, action: "Test.Widgets/widgets/read", wantID: widgP, deny: true, status: 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.deny {
				e.dec.deny = map[string]bool{tc.action: true}
				defer func() { e.dec.deny = map[string]bool{} }()
			}
			r := e.do(tc.method, tc.path, tc.body)
			if r.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Code, tc.status, r.Body.String())
			}
			if !strings.EqualFold(r.info.ObjectID, tc.wantID) || r.info.ResourceID != r.info.ObjectID {
				t.Fatalf("info.ObjectID %q (resourceId %q), want %q", r.info.ObjectID, r.info.ResourceID, tc.wantID)
			}
		})
	}
}
