package vault

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

// Limits, as Key Vault documents them.
const (
	MaxValueBytes       = 25600 // 25 KB per secret value
	MaxTags             = 15
	MaxTagNameLen       = 512
	MaxTagValueLen      = 256
	MaxContentTypeLen   = 255
	MaxResultsLimit     = 25
	maxSetBodyBytes     = 256 << 10
	maxRestoreBodyBytes = 32 << 20
	// maxUnixTime is 9999-12-31T23:59:59Z, the last instant Azure accepts.
	maxUnixTime = 253402300799
)

// meta is a version's metadata: everything but the value. It is stored in
// plaintext (only the value is secret).
type meta struct {
	Name        string            `json:"n"` // as cased when set
	Version     string            `json:"v"`
	Enabled     bool              `json:"e"`
	NotBefore   *int64            `json:"nbf,omitempty"`
	Expires     *int64            `json:"exp,omitempty"`
	Created     int64             `json:"c"`
	Updated     int64             `json:"u"`
	ContentType string            `json:"ct,omitempty"`
	Tags        map[string]string `json:"t,omitempty"`
	// Managed and Kid are set for secrets backing certificates.
	Managed bool   `json:"m,omitempty"`
	Kid     string `json:"k,omitempty"`
	// Prev is, for a certificate's secret, the certificate version this one
	// followed (previousVersion on the wire).
	Prev string `json:"pv,omitempty"`
}

// versionRec is one stored version.
type versionRec struct {
	meta
	Sealed []byte `json:"s"`
}

// checkSlot verifies that a version record read from the slot (lname,
// version) belongs there. A record copied or moved onto another slot would
// otherwise present its metadata, and with an aad taken from the record its
// value, under the wrong name.
func (vr *versionRec) checkSlot(lname, version string) error {
	if err := misplaced("version record", lname, version, vr.Name, vr.Version); err != nil {
		return errIntegrity(lname, err)
	}
	return nil
}

// misplaced describes a record of the kind what, read from the slot
// (lname, version), that names another slot (name, recVersion); nil when it
// names its own.
func misplaced(what, lname, version, name, recVersion string) error {
	if strings.ToLower(name) != lname || recVersion != version {
		return fmt.Errorf("integrity: %s stored at %s/%s names %s/%s", what, lname, version, name, recVersion)
	}
	return nil
}

// headRec names a secret's latest version and keeps a copy of its metadata,
// so listing reads one record per secret.
type headRec struct {
	Meta meta `json:"m"`
}

// deletedRec is a soft-deleted secret: its former head plus the deletion
// facts.
type deletedRec struct {
	Meta        meta  `json:"m"`
	DeletedDate int64 `json:"dd"`
	PurgeAt     int64 `json:"pa"`
}

// attributesWire is SecretAttributes, KeyAttributes and
// CertificateAttributes on the wire (integer Unix seconds).
type attributesWire struct {
	Enabled         *bool  `json:"enabled,omitempty"`
	NotBefore       *int64 `json:"nbf,omitempty"`
	Expires         *int64 `json:"exp,omitempty"`
	Created         *int64 `json:"created,omitempty"`
	Updated         *int64 `json:"updated,omitempty"`
	RecoveryLevel   string `json:"recoveryLevel,omitempty"`
	RecoverableDays *int   `json:"recoverableDays,omitempty"`
}

// secretWire is SecretBundle, SecretItem, DeletedSecretBundle and
// DeletedSecretItem in one: the optional fields are omitted when unset.
type secretWire struct {
	Value       *string           `json:"value,omitempty"`
	ID          string            `json:"id"`
	ContentType string            `json:"contentType,omitempty"`
	Attributes  attributesWire    `json:"attributes"`
	Tags        map[string]string `json:"tags,omitempty"`
	Kid         string            `json:"kid,omitempty"`
	Managed     *bool             `json:"managed,omitempty"`
	// PreviousVersion is the certificate version a certificate's secret
	// version followed (certificates only).
	PreviousVersion string `json:"previousVersion,omitempty"`
	deletionWire           // set for deleted objects only
}

// deletionWire is what a deleted secret, key or certificate adds to its
// wire shape.
type deletionWire struct {
	RecoveryID         string `json:"recoveryId,omitempty"`
	DeletedDate        *int64 `json:"deletedDate,omitempty"`
	ScheduledPurgeDate *int64 `json:"scheduledPurgeDate,omitempty"`
}

// listWire is a page of secrets, keys or certificates.
type listWire[W any] struct {
	Value    []W     `json:"value"`
	NextLink *string `json:"nextLink"`
}

type backupWire struct {
	Value string `json:"value"`
}

// attributesIn is SecretAttributes as a client sends it. Read-only fields
// (created, updated, recoveryLevel, recoverableDays) are ignored, as Azure
// does.
type attributesIn struct {
	Enabled   *bool        `json:"enabled"`
	NotBefore *json.Number `json:"nbf"`
	Expires   *json.Number `json:"exp"`
}

// secretIn is the body of set (PUT) and update (PATCH).
type secretIn struct {
	Value       *string            `json:"value"`
	ContentType *string            `json:"contentType"`
	Attributes  *attributesIn      `json:"attributes"`
	Tags        map[string]*string `json:"tags"`
}

// setRequest is a validated set or update.
type setRequest struct {
	Value       *string
	ContentType *string
	attrsUpdate
}

// attrsUpdate is what a validated body of a secret or key says of a
// version's attributes and tags.
type attrsUpdate struct {
	Enabled   *bool
	NotBefore *int64
	Expires   *int64
	// NotBeforeSet/ExpiresSet: the attribute was sent (null counts as absent).
	NotBeforeSet bool
	ExpiresSet   bool
	Tags         map[string]string
	TagsSet      bool
}

// parse validates the attributes (nil: not sent) and tags (nil: not sent)
// of a body.
func (u *attrsUpdate) parse(a *attributesIn, tags map[string]*string) *azerr.Error {
	if a != nil {
		u.Enabled = a.Enabled
		var e *azerr.Error
		if u.NotBefore, u.NotBeforeSet, e = parseUnix("nbf", a.NotBefore); e != nil {
			return e
		}
		if u.Expires, u.ExpiresSet, e = parseUnix("exp", a.Expires); e != nil {
			return e
		}
	}
	if tags != nil {
		t, e := parseTags(tags)
		if e != nil {
			return e
		}
		u.Tags, u.TagsSet = t, true
	}
	return nil
}

// parseTags validates the tags of a secret, key or certificate body.
func parseTags(in map[string]*string) (map[string]string, *azerr.Error) {
	if len(in) > MaxTags {
		return nil, azerr.BadParameter("The number of tags (%d) exceeds the maximum of %d.", len(in), MaxTags)
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		if k == "" || utf8.RuneCountInString(k) > MaxTagNameLen {
			return nil, azerr.BadParameter("Tag names must be 1 to %d characters long.", MaxTagNameLen)
		}
		val := ""
		if v != nil {
			val = *v
		}
		if utf8.RuneCountInString(val) > MaxTagValueLen {
			return nil, azerr.BadParameter("The value of tag '%s' exceeds the maximum length of %d characters.", clip(k, 64), MaxTagValueLen)
		}
		out[k] = val
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// apply sets on a version what the body sent of its attributes and tags.
func (u *attrsUpdate) apply(enabled *bool, nbf, exp **int64, tags *map[string]string) {
	if u.Enabled != nil {
		*enabled = *u.Enabled
	}
	if u.NotBeforeSet {
		*nbf = u.NotBefore
	}
	if u.ExpiresSet {
		*exp = u.Expires
	}
	if u.TagsSet {
		*tags = u.Tags
	}
}

// decodeJSON decodes exactly one JSON value from body, which the caller has
// already bounded.
func decodeJSON(body []byte, v any) *azerr.Error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return azerr.BadParameter("The request body is missing.")
		}
		return azerr.BadParameter("The request body is not valid JSON for this operation.")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return azerr.BadParameter("The request body is not valid JSON for this operation.")
	}
	return nil
}

// parseSecretBody parses and validates a set (requireValue) or update body.
// It never echoes the value in an error.
func parseSecretBody(body []byte, requireValue bool) (*setRequest, *azerr.Error) {
	var in secretIn
	if e := decodeJSON(body, &in); e != nil {
		return nil, e
	}
	req := &setRequest{ContentType: in.ContentType}
	if requireValue {
		if in.Value == nil {
			return nil, azerr.BadParameter("Property 'value' is required and must be a string.")
		}
		if len(*in.Value) > MaxValueBytes {
			return nil, azerr.BadParameter("Secret is beyond the maximum permitted length of %d characters.", MaxValueBytes)
		}
		req.Value = in.Value
	}
	if in.ContentType != nil {
		if utf8.RuneCountInString(*in.ContentType) > MaxContentTypeLen {
			return nil, azerr.BadParameter("Property 'contentType' exceeds the maximum length of %d characters.", MaxContentTypeLen)
		}
	}
	if e := req.parse(in.Attributes, in.Tags); e != nil {
		return nil, e
	}
	return req, nil
}

// parseUnix reads an nbf/exp attribute: integer Unix seconds (a fractional
// number is truncated, as some clients send milliseconds-free floats).
func parseUnix(field string, n *json.Number) (*int64, bool, *azerr.Error) {
	if n == nil {
		return nil, false, nil
	}
	s := n.String()
	if i, err := n.Int64(); err == nil {
		if i < 0 || i > maxUnixTime {
			return nil, false, azerr.BadParameter("Attribute '%s' is out of range.", field)
		}
		return &i, true, nil
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > maxUnixTime || strings.ContainsAny(s, "\"") {
		return nil, false, azerr.BadParameter("Attribute '%s' must be a number of seconds since 1970-01-01T00:00:00Z.", field)
	}
	i := int64(f)
	return &i, true, nil
}

// errIntegrity is the answer when stored data fails its integrity check
// (tampered, or moved between slots). It is a server fault, said plainly.
func errIntegrity(name string, cause error) *azerr.Error {
	return azerr.New(500, "InternalError",
		"The stored data of secret '%s' failed its integrity check (it was altered or moved in storage) and cannot be served.", name).WithCause(cause)
}
