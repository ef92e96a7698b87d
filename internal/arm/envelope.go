package arm

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/principal"
)

// Resource is ARM's envelope of every resource. Properties, SKU and Identity
// are provider-specific values rendered as JSON.
type Resource struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location,omitempty"`
	Tags       map[string]string `json:"tags"`
	SKU        any               `json:"sku,omitempty"`
	Identity   any               `json:"identity,omitempty"`
	ManagedBy  string            `json:"managedBy,omitempty"`
	SystemData *SystemData       `json:"systemData,omitempty"`
	Properties any               `json:"properties,omitempty"`
}

// GenericResource is the short form used by generic resource lists.
type GenericResource struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Type     string            `json:"type"`
	Location string            `json:"location,omitempty"`
	Tags     map[string]string `json:"tags"`
}

// SystemData records who created and last modified a resource, and when.
type SystemData struct {
	CreatedBy          string    `json:"createdBy,omitempty"`
	CreatedByType      string    `json:"createdByType,omitempty"`
	CreatedAt          time.Time `json:"createdAt"`
	LastModifiedBy     string    `json:"lastModifiedBy,omitempty"`
	LastModifiedByType string    `json:"lastModifiedByType,omitempty"`
	LastModifiedAt     time.Time `json:"lastModifiedAt"`
}

// actor names a principal as systemData does: the UPN of a user, the
// application (client) id of an application or managed identity.
func actor(p *principal.Principal) (by, typ string) {
	if p == nil {
		return "", ""
	}
	switch p.Kind {
	case principal.User:
		by, typ = p.UPN, "User"
	case principal.ManagedIdentity:
		by, typ = p.AppID, "ManagedIdentity"
	default:
		by, typ = p.AppID, "Application"
	}
	if by == "" {
		by = p.ObjectID
	}
	return by, typ
}

// NewSystemData returns systemData for a resource created now by p.
func NewSystemData(p *principal.Principal, now time.Time) *SystemData {
	by, typ := actor(p)
	now = now.UTC()
	return &SystemData{CreatedBy: by, CreatedByType: typ, CreatedAt: now,
		LastModifiedBy: by, LastModifiedByType: typ, LastModifiedAt: now}
}

// Touched returns a copy of sd marked as modified now by p (a nil sd starts
// fresh).
func (sd *SystemData) Touched(p *principal.Principal, now time.Time) *SystemData {
	if sd == nil {
		return NewSystemData(p, now)
	}
	out := *sd
	out.LastModifiedBy, out.LastModifiedByType = actor(p)
	out.LastModifiedAt = now.UTC()
	return &out
}

// Tag limits, as Azure enforces them.
const (
	MaxTags           = 50
	MaxTagNameLength  = 512
	MaxTagValueLength = 256
)

// ValidateTags enforces Azure's tag count, length and character rules.
func ValidateTags(tags map[string]string) error {
	if len(tags) > MaxTags {
		return azerr.New(http.StatusBadRequest, "InvalidTagCount",
			"The resource has %d tags; at most %d tags are allowed.", len(tags), MaxTags).WithTarget("tags")
	}
	for k, v := range tags {
		if k == "" || utf8.RuneCountInString(k) > MaxTagNameLength {
			return azerr.New(http.StatusBadRequest, "InvalidTagNameLength",
				"The tag name must be 1 to %d characters long.", MaxTagNameLength).WithTarget("tags")
		}
		if strings.ContainsAny(k, "<>%&\\?/") || strings.ContainsFunc(k, isControl) {
			return azerr.New(http.StatusBadRequest, "InvalidTagNameCharacters",
				"The tag name '%s' has invalid characters '<,>,%%,&,\\,?,/' or control characters.", trunc(k, 64)).WithTarget("tags")
		}
		if utf8.RuneCountInString(v) > MaxTagValueLength {
			return azerr.New(http.StatusBadRequest, "InvalidTagValueLength",
				"The value of tag '%s' is longer than %d characters.", trunc(k, 64), MaxTagValueLength).WithTarget("tags")
		}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// NormalizeLocation folds a location the way ARM does: "East US" and
// "eastus" are the same region.
func NormalizeLocation(loc string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(loc), " ", ""))
}

// DecodeJSON decodes a request body into v, answering InvalidRequestContent
// for an empty or malformed body. Unknown fields are ignored, as ARM does.
func DecodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return InvalidRequestContent("The request content was invalid and could not be deserialized: the request body is empty.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		msg := err.Error()
		if te, ok := err.(*json.UnmarshalTypeError); ok {
			msg = "the value at '" + te.Field + "' has the wrong type (expected " + te.Type.String() + ")"
		}
		return InvalidRequestContent("The request content was invalid and could not be deserialized: %s.", trunc(msg, 200))
	}
	if dec.More() {
		return InvalidRequestContent("The request content was invalid and could not be deserialized: trailing data after the JSON value.")
	}
	return nil
}
