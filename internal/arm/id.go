package arm

import (
	"net/http"
	"regexp"
	"strings"
	"unicode"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

// Limits on resource IDs. Store keys embed lowercase IDs and are capped at
// store.MaxKeyLen, so IDs stay well below it.
const (
	MaxIDLength      = 800
	maxSegmentLength = 260
	maxProviderDepth = 4 // provider blocks (extension resources nest)
	maxTypeDepth     = 8 // type/name pairs in one block
)

// ProviderSegment is one `/providers/{namespace}/{type}/{name}...` block of a
// resource ID. Names has as many elements as Types (a resource), or one fewer
// (a collection, or an action when the request is a POST).
type ProviderSegment struct {
	Namespace string
	Types     []string
	Names     []string
}

// ResourceID is a parsed ARM resource ID. The zero value is the tenant root
// "/". More than one provider block makes an extension resource: everything
// before the last block is its scope.
type ResourceID struct {
	SubscriptionID string
	ResourceGroup  string
	Providers      []ProviderSegment
}

var (
	guidRe      = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	namespaceRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9]$`)
	typeRe      = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)
)

// IsGUID reports whether s is a GUID in its 8-4-4-4-12 form.
func IsGUID(s string) bool { return guidRe.MatchString(s) }

func invalidID(format string, args ...any) *azerr.Error {
	return azerr.New(http.StatusBadRequest, "InvalidResourceId", format, args...)
}

// validName accepts what ARM accepts in a name segment of a path: anything
// printable except the path separators that would change the ID's structure.
func validName(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > maxSegmentLength {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '/' || r == '?' || r == '#' || r == '\\' || r == unicode.ReplacementChar {
			return false
		}
	}
	return true
}

// ParseResourceID parses an ARM resource ID (or collection/action path):
//
//	/subscriptions/{s}
//	/subscriptions/{s}/resourceGroups/{rg}
//	/subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/{type}/{name}[/{childType}/{childName}...]
//	/subscriptions/{s}/providers/{ns}/{type}/{name}...   (subscription level)
//	/providers/{ns}/{type}/{name}...                     (tenant level)
//	{any of the above}/providers/{ns}/{type}/{name}      (extension resource)
//
// Keywords match case-insensitively; names keep their case. A trailing slash
// is ignored. The subscription ID must be a GUID.
func ParseResourceID(s string) (ResourceID, error) {
	var id ResourceID
	if len(s) > MaxIDLength {
		return id, invalidID("The resource ID is longer than %d characters.", MaxIDLength)
	}
	if !strings.HasPrefix(s, "/") {
		return id, invalidID("The resource ID '%s' must start with '/'.", s)
	}
	s = strings.TrimSuffix(s[1:], "/")
	if s == "" {
		return id, nil
	}
	segs := strings.Split(s, "/")
	for _, seg := range segs {
		if seg == "" {
			return id, invalidID("The resource ID '/%s' has an empty segment.", s)
		}
	}
	i := 0
	if strings.EqualFold(segs[0], "subscriptions") {
		if len(segs) < 2 {
			return id, invalidID("The resource ID '/%s' has no subscription ID.", s)
		}
		if !IsGUID(segs[1]) {
			return id, azerr.New(http.StatusBadRequest, "InvalidSubscriptionId",
				"The provided subscription identifier '%s' is malformed or invalid.", segs[1])
		}
		id.SubscriptionID = segs[1]
		i = 2
		if i < len(segs) && strings.EqualFold(segs[i], "resourceGroups") {
			if i+1 >= len(segs) {
				return id, invalidID("The resource ID '/%s' has no resource group name.", s)
			}
			if !validName(segs[i+1]) {
				return id, invalidID("The resource group name in '/%s' is invalid.", s)
			}
			id.ResourceGroup = segs[i+1]
			i += 2
		}
	}
	for i < len(segs) {
		if !strings.EqualFold(segs[i], "providers") {
			return id, invalidID("The resource ID '/%s' is malformed: expected 'providers' at segment %d.", s, i+1)
		}
		if len(id.Providers) > 0 {
			last := id.Providers[len(id.Providers)-1]
			if len(last.Types) == 0 || len(last.Names) != len(last.Types) {
				return id, invalidID("The resource ID '/%s' is malformed: an extension must follow a complete resource.", s)
			}
		}
		if len(id.Providers) == maxProviderDepth {
			return id, invalidID("The resource ID '/%s' nests too many providers.", s)
		}
		if i+1 >= len(segs) {
			return id, invalidID("The resource ID '/%s' has no provider namespace.", s)
		}
		if !namespaceRe.MatchString(segs[i+1]) || len(segs[i+1]) > maxSegmentLength {
			return id, invalidID("The resource namespace '%s' is invalid.", segs[i+1])
		}
		block := ProviderSegment{Namespace: segs[i+1]}
		i += 2
		for i < len(segs) {
			// A "providers" keyword where a type is expected starts an
			// extension block; in a name position it is just a name.
			if strings.EqualFold(segs[i], "providers") && len(block.Types) > 0 && len(block.Names) == len(block.Types) {
				break
			}
			if len(block.Types) == maxTypeDepth {
				return id, invalidID("The resource ID '/%s' nests too many types.", s)
			}
			if !typeRe.MatchString(segs[i]) || len(segs[i]) > maxSegmentLength {
				return id, invalidID("The resource type '%s' is invalid.", segs[i])
			}
			block.Types = append(block.Types, segs[i])
			i++
			if i < len(segs) {
				if !validName(segs[i]) {
					return id, invalidID("The resource name '%s' is invalid.", segs[i])
				}
				block.Names = append(block.Names, segs[i])
				i++
			}
		}
		id.Providers = append(id.Providers, block)
	}
	return id, nil
}

// SubscriptionResourceID returns the ID of a subscription.
func SubscriptionResourceID(sub string) ResourceID { return ResourceID{SubscriptionID: sub} }

// ResourceGroupResourceID returns the ID of a resource group.
func ResourceGroupResourceID(sub, rg string) ResourceID {
	return ResourceID{SubscriptionID: sub, ResourceGroup: rg}
}

// NewResourceID builds the ID of a provider resource in a resource group (or
// at subscription level when rg is ""); typeNames alternates type and name.
func NewResourceID(sub, rg, namespace string, typeNames ...string) ResourceID {
	id := ResourceID{SubscriptionID: sub, ResourceGroup: rg}
	return id.Extend(namespace, typeNames...)
}

// Extend returns id with a new provider block appended (an extension
// resource, or a first provider block for a scope without one).
func (id ResourceID) Extend(namespace string, typeNames ...string) ResourceID {
	b := ProviderSegment{Namespace: namespace}
	for i, tn := range typeNames {
		if i%2 == 0 {
			b.Types = append(b.Types, tn)
		} else {
			b.Names = append(b.Names, tn)
		}
	}
	out := id.clone()
	out.Providers = append(out.Providers, b)
	return out
}

// Child returns the child resource typ/name of id (same provider block).
func (id ResourceID) Child(typ, name string) ResourceID {
	out := id.clone()
	if len(out.Providers) == 0 {
		return out
	}
	b := &out.Providers[len(out.Providers)-1]
	b.Types = append(b.Types, typ)
	b.Names = append(b.Names, name)
	return out
}

func (id ResourceID) clone() ResourceID {
	out := ResourceID{SubscriptionID: id.SubscriptionID, ResourceGroup: id.ResourceGroup}
	for _, b := range id.Providers {
		out.Providers = append(out.Providers, ProviderSegment{
			Namespace: b.Namespace,
			Types:     append([]string(nil), b.Types...),
			Names:     append([]string(nil), b.Names...),
		})
	}
	return out
}

// String formats the ID with ARM's keyword casing and the names as given.
func (id ResourceID) String() string {
	var sb strings.Builder
	if id.SubscriptionID != "" {
		sb.WriteString("/subscriptions/")
		sb.WriteString(id.SubscriptionID)
		if id.ResourceGroup != "" {
			sb.WriteString("/resourceGroups/")
			sb.WriteString(id.ResourceGroup)
		}
	}
	for _, b := range id.Providers {
		sb.WriteString("/providers/")
		sb.WriteString(b.Namespace)
		for i, t := range b.Types {
			sb.WriteByte('/')
			sb.WriteString(t)
			if i < len(b.Names) {
				sb.WriteByte('/')
				sb.WriteString(b.Names[i])
			}
		}
	}
	if sb.Len() == 0 {
		return "/"
	}
	return sb.String()
}

// Key is the canonical lowercase form, for store keys and comparisons.
func (id ResourceID) Key() string { return strings.ToLower(id.String()) }

// Equal compares two IDs case-insensitively, as ARM does.
func (id ResourceID) Equal(o ResourceID) bool { return strings.EqualFold(id.String(), o.String()) }

// IsRoot reports whether id is the tenant root "/".
func (id ResourceID) IsRoot() bool {
	return id.SubscriptionID == "" && id.ResourceGroup == "" && len(id.Providers) == 0
}

// IsSubscription reports whether id is exactly a subscription.
func (id ResourceID) IsSubscription() bool {
	return id.SubscriptionID != "" && id.ResourceGroup == "" && len(id.Providers) == 0
}

// IsResourceGroup reports whether id is exactly a resource group.
func (id ResourceID) IsResourceGroup() bool {
	return id.ResourceGroup != "" && len(id.Providers) == 0
}

func (id ResourceID) last() *ProviderSegment {
	if len(id.Providers) == 0 {
		return nil
	}
	return &id.Providers[len(id.Providers)-1]
}

// IsCollection reports whether the last provider block ends in a type
// without a name (a collection, an action, or a bare namespace).
func (id ResourceID) IsCollection() bool {
	b := id.last()
	return b != nil && len(b.Names) < len(b.Types) || b != nil && len(b.Types) == 0
}

// Namespace is the namespace of the last provider block ("Microsoft.Resources"
// for subscriptions and resource groups, "" for the root).
func (id ResourceID) Namespace() string {
	if b := id.last(); b != nil {
		return b.Namespace
	}
	if id.SubscriptionID != "" {
		return "Microsoft.Resources"
	}
	return ""
}

// TypePath is the type chain of the last provider block, e.g. "vaults" or
// "vaults/accessPolicies" or "locations/deletedVaults".
func (id ResourceID) TypePath() string {
	if b := id.last(); b != nil {
		return strings.Join(b.Types, "/")
	}
	switch {
	case id.ResourceGroup != "":
		return "resourceGroups"
	case id.SubscriptionID != "":
		return "subscriptions"
	}
	return ""
}

// ResourceType is the full type, e.g. "Microsoft.KeyVault/vaults".
func (id ResourceID) ResourceType() string {
	if id.IsRoot() {
		return ""
	}
	return id.Namespace() + "/" + id.TypePath()
}

// Name is the last name segment ("" for a collection or the root).
func (id ResourceID) Name() string {
	if b := id.last(); b != nil {
		if len(b.Names) == len(b.Types) && len(b.Names) > 0 {
			return b.Names[len(b.Names)-1]
		}
		return ""
	}
	if id.ResourceGroup != "" {
		return id.ResourceGroup
	}
	return id.SubscriptionID
}

// Parent returns the ID one level up: a child's parent resource, a top-level
// resource's scope (resource group, subscription, root, or the scope of an
// extension), a group's subscription, a subscription's root. ok is false for
// the root.
func (id ResourceID) Parent() (ResourceID, bool) {
	out := id.clone()
	if b := out.last(); b != nil {
		switch {
		case len(b.Names) < len(b.Types):
			b.Types = b.Types[:len(b.Types)-1]
			if len(b.Types) == 0 {
				out.Providers = out.Providers[:len(out.Providers)-1]
			}
		case len(b.Types) > 1:
			b.Types = b.Types[:len(b.Types)-1]
			b.Names = b.Names[:len(b.Names)-1]
		default:
			out.Providers = out.Providers[:len(out.Providers)-1]
		}
		return out, true
	}
	switch {
	case out.ResourceGroup != "":
		out.ResourceGroup = ""
		return out, true
	case out.SubscriptionID != "":
		return ResourceID{}, true
	}
	return ResourceID{}, false
}

// Ancestors lists every ancestor of id, nearest first, ending with the root.
func (id ResourceID) Ancestors() []ResourceID {
	var out []ResourceID
	cur := id
	for {
		p, ok := cur.Parent()
		if !ok {
			return out
		}
		out = append(out, p)
		cur = p
	}
}

// Contains reports whether other is id or lies beneath it (case-insensitive,
// on segment boundaries).
func (id ResourceID) Contains(other ResourceID) bool {
	a, b := id.Key(), other.Key()
	if a == "/" || a == b {
		return true
	}
	return strings.HasPrefix(b, a+"/")
}

// ExtensionScope returns the scope an extension resource applies to (the ID
// without its last provider block); ok is false for a non-extension ID.
func (id ResourceID) ExtensionScope() (ResourceID, bool) {
	if len(id.Providers) < 2 {
		return ResourceID{}, false
	}
	out := id.clone()
	out.Providers = out.Providers[:len(out.Providers)-1]
	return out, true
}
