package arm

import (
	"errors"
	"strings"
	"testing"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

const sub1 = "11111111-1111-1111-1111-111111111111"

func TestParseResourceID(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		wantStr   string // "" means same as in
		typ       string
		resName   string
		collect   bool
		parent    string
		errCode   string
		namespace string
	}{
		{name: "ok/root", in: "/", typ: "", resName: "", parent: ""},
		{name: "ok/subscription", in: "/subscriptions/" + sub1, typ: "Microsoft.Resources/subscriptions", resName: sub1, parent: "/"},
		{name: "ok/resource group", in: "/subscriptions/" + sub1 + "/resourceGroups/rg-1", typ: "Microsoft.Resources/resourceGroups",
			resName: "rg-1", parent: "/subscriptions/" + sub1},
		{name: "ok/keyword case folded", in: "/SUBSCRIPTIONS/" + sub1 + "/resourcegroups/RG/PROVIDERS/Microsoft.KeyVault/vaults/V1",
			wantStr: "/subscriptions/" + sub1 + "/resourceGroups/RG/providers/Microsoft.KeyVault/vaults/V1",
			typ:     "Microsoft.KeyVault/vaults", resName: "V1", parent: "/subscriptions/" + sub1 + "/resourceGroups/RG"},
		{name: "ok/child resource", in: "/subscriptions/" + sub1 + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v/secrets/s",
			typ: "Microsoft.KeyVault/vaults/secrets", resName: "s",
			parent: "/subscriptions/" + sub1 + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v"},
		{name: "ok/subscription level", in: "/subscriptions/" + sub1 + "/providers/Microsoft.KeyVault/locations/eastus/deletedVaults/v",
			typ: "Microsoft.KeyVault/locations/deletedVaults", resName: "v",
			parent: "/subscriptions/" + sub1 + "/providers/Microsoft.KeyVault/locations/eastus"},
		{name: "ok/tenant level", in: "/providers/Microsoft.Authorization/roleDefinitions/abc", typ: "Microsoft.Authorization/roleDefinitions",
			resName: "abc", parent: "/"},
		{name: "ok/extension", in: "/subscriptions/" + sub1 + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v/providers/Microsoft.Authorization/locks/l",
			typ: "Microsoft.Authorization/locks", resName: "l", namespace: "Microsoft.Authorization",
			parent: "/subscriptions/" + sub1 + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v"},
		{name: "ok/collection", in: "/subscriptions/" + sub1 + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults",
			typ: "Microsoft.KeyVault/vaults", collect: true, parent: "/subscriptions/" + sub1 + "/resourceGroups/rg"},
		{name: "ok/name called providers", in: "/subscriptions/" + sub1 + "/resourceGroups/rg/providers/Microsoft.Web/sites/providers",
			typ: "Microsoft.Web/sites", resName: "providers", parent: "/subscriptions/" + sub1 + "/resourceGroups/rg"},
		{name: "ok/trailing slash", in: "/subscriptions/" + sub1 + "/", wantStr: "/subscriptions/" + sub1,
			typ: "Microsoft.Resources/subscriptions", resName: sub1, parent: "/"},
		{name: "fail/no leading slash", in: "subscriptions/" + sub1, errCode: "InvalidResourceId"},
		{name: "fail/bad subscription", in: "/subscriptions/not-a-guid", errCode: "InvalidSubscriptionId"},
		{name: "fail/empty segment", in: "/subscriptions/" + sub1 + "//resourceGroups/rg", errCode: "InvalidResourceId"},
		{name: "fail/missing group name", in: "/subscriptions/" + sub1 + "/resourceGroups", errCode: "InvalidResourceId"},
		{name: "fail/missing namespace", in: "/subscriptions/" + sub1 + "/providers", errCode: "InvalidResourceId"},
		{name: "fail/bad namespace", in: "/providers/Micro$oft/x/y", errCode: "InvalidResourceId"},
		{name: "fail/junk segment", in: "/subscriptions/" + sub1 + "/junk/x", errCode: "InvalidResourceId"},
		{name: "fail/extension after collection", in: "/providers/A.B/t/providers/C.D/u/n", errCode: "InvalidResourceId"},
		{name: "fail/too long", in: "/providers/A.B/t/" + strings.Repeat("n", MaxIDLength), errCode: "InvalidResourceId"},
		{name: "fail/control char", in: "/providers/A.B/t/a\x01b", errCode: "InvalidResourceId"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := ParseResourceID(tc.in)
			if tc.errCode != "" {
				var e *azerr.Error
				if !errors.As(err, &e) || e.Code != tc.errCode || e.Status != 400 {
					t.Fatalf("err = %v, want code %s", err, tc.errCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			want := tc.wantStr
			if want == "" {
				want = tc.in
			}
			if got := id.String(); got != want {
				t.Errorf("String() = %q, want %q", got, want)
			}
			if id.Key() != strings.ToLower(want) {
				t.Errorf("Key() = %q", id.Key())
			}
			if got := id.ResourceType(); got != tc.typ {
				t.Errorf("ResourceType() = %q, want %q", got, tc.typ)
			}
			if got := id.Name(); got != tc.resName {
				t.Errorf("Name() = %q, want %q", got, tc.resName)
			}
			if got := id.IsCollection(); got != tc.collect {
				t.Errorf("IsCollection() = %v", got)
			}
			if tc.namespace != "" && id.Namespace() != tc.namespace {
				t.Errorf("Namespace() = %q", id.Namespace())
			}
			p, ok := id.Parent()
			if tc.parent == "" {
				if ok {
					t.Errorf("root has parent %q", p)
				}
			} else if !ok || p.String() != tc.parent {
				t.Errorf("Parent() = %q %v, want %q", p, ok, tc.parent)
			}
		})
	}
}

func TestResourceIDRelations(t *testing.T) {
	v := NewResourceID(sub1, "RG", "Microsoft.KeyVault", "vaults", "V1")
	other, _ := ParseResourceID("/subscriptions/" + sub1 + "/resourcegroups/rg/providers/microsoft.keyvault/VAULTS/v1")
	if !v.Equal(other) {
		t.Fatal("IDs differing only in case must be equal")
	}
	anc := v.Ancestors()
	var got []string
	for _, a := range anc {
		got = append(got, a.String())
	}
	want := []string{"/subscriptions/" + sub1 + "/resourceGroups/RG", "/subscriptions/" + sub1, "/"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("Ancestors = %v, want %v", got, want)
	}
	rg := ResourceGroupResourceID(sub1, "rg")
	if !rg.Contains(v) || v.Contains(rg) || !(ResourceID{}).Contains(v) {
		t.Fatal("Contains is wrong")
	}
	if ResourceGroupResourceID(sub1, "r").Contains(v) {
		t.Fatal("prefix of a name must not contain")
	}
	lock := v.Extend("Microsoft.Authorization", "locks", "l1")
	scope, ok := lock.ExtensionScope()
	if !ok || !scope.Equal(v) {
		t.Fatalf("ExtensionScope = %v %v", scope, ok)
	}
	if c := v.Child("secrets", "s"); c.ResourceType() != "Microsoft.KeyVault/vaults/secrets" || v.ResourceType() != "Microsoft.KeyVault/vaults" {
		t.Fatal("Child must not alias its parent")
	}
}

func FuzzParseResourceID(f *testing.F) {
	for _, s := range []string{
		"/", "/subscriptions/" + sub1, "/subscriptions/" + sub1 + "/resourceGroups/rg",
		"/subscriptions/" + sub1 + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v",
		"/subscriptions/" + sub1 + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v/providers/Microsoft.Authorization/locks/l",
		"/providers/Microsoft.Authorization/roleDefinitions/x", "/subscriptions/" + sub1 + "/providers/Microsoft.KeyVault/checkNameAvailability",
		"//", "/providers/", "/subscriptions/x/resourceGroups/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseResourceID(s)
		if err != nil {
			return
		}
		str := id.String()
		again, err := ParseResourceID(str)
		if err != nil {
			t.Fatalf("String() of a parsed ID does not parse: %q -> %q: %v", s, str, err)
		}
		if again.String() != str {
			t.Fatalf("round trip changed the ID: %q -> %q", str, again.String())
		}
		if !again.Equal(id) || again.Key() != strings.ToLower(str) {
			t.Fatalf("round trip not equal for %q", str)
		}
		// Parent chains always end at the root.
		cur, n := id, 0
		for {
			p, ok := cur.Parent()
			if !ok {
				break
			}
			if !p.Contains(cur) {
				t.Fatalf("parent %q does not contain %q", p, cur)
			}
			cur = p
			if n++; n > 100 {
				t.Fatal("parent chain does not terminate")
			}
		}
		if !cur.IsRoot() {
			t.Fatalf("parent chain of %q ends at %q", str, cur)
		}
	})
}
