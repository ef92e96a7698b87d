package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Category is the only diagnostic-log category Key Vault has.
const Category = "AuditEvent"

// GlobalStream holds events of requests that name no resource.
const GlobalStream = "global"

// TimeFormat is Azure's resource-log time format (UTC, 7 fractional digits).
const TimeFormat = "2006-01-02T15:04:05.0000000Z"

// Event is one audit record in Azure Key Vault's AuditEvent shape, plus the
// chain fields seq, prevHash and hash. Field order is the canonical order:
// the hash covers the JSON encoding of the event without hash.
type Event struct {
	Time              string     `json:"time"`
	ResourceID        string     `json:"resourceId"`
	OperationName     string     `json:"operationName"`
	OperationVersion  string     `json:"operationVersion"`
	Category          string     `json:"category"`
	ResultType        string     `json:"resultType"`
	ResultSignature   string     `json:"resultSignature"`
	ResultDescription string     `json:"resultDescription"`
	DurationMs        int64      `json:"durationMs"`
	CallerIPAddress   string     `json:"callerIpAddress"`
	CorrelationID     string     `json:"correlationId"`
	Identity          *Identity  `json:"identity,omitempty"`
	Properties        Properties `json:"properties"`
	Seq               int64      `json:"seq"`
	PrevHash          string     `json:"prevHash"`
	Hash              string     `json:"hash,omitempty"`
}

// Identity is the caller as read from the token; absent for anonymous calls.
type Identity struct {
	Claim Claim `json:"claim"`
}

// Claim carries the token claims Key Vault logs.
type Claim struct {
	OID      string `json:"oid,omitempty"`
	AppID    string `json:"appid,omitempty"`
	UPN      string `json:"upn,omitempty"`
	TID      string `json:"tid,omitempty"`
	XMSMIRID string `json:"xms_mirid,omitempty"`
}

// Properties are Key Vault's per-request details.
type Properties struct {
	ID                  string `json:"id,omitempty"`
	RequestURI          string `json:"requestUri"`
	HTTPStatusCode      int    `json:"httpStatusCode"`
	ClientInfo          string `json:"clientInfo"`
	IsAccessPolicyMatch bool   `json:"isAccessPolicyMatch"`
	IsRBACAuthorized    bool   `json:"isRbacAuthorized"`
	TLSVersion          string `json:"tlsVersion,omitempty"`
	RequestID           string `json:"requestId,omitempty"` // keyhaven: x-ms-request-id
	// ValueHMAC identifies the value a request stored (SecretSet), as
	// (*Log).HMAC computes it; compare with `keyhaven audit hash --value`.
	ValueHMAC string `json:"valueHmac,omitempty"`
}

// At parses the event time (zero when malformed).
func (e *Event) At() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, e.Time)
	return t
}

// StreamOf names the stream of a resource ID: "global" for none, else "r"
// plus 32 hex digits of the SHA-256 of the lower-cased id (case-insensitive,
// as ARM ids are, and safe in a store key whatever the id holds).
func StreamOf(resourceID string) string {
	if resourceID == "" {
		return GlobalStream
	}
	sum := sha256.Sum256([]byte(strings.ToLower(resourceID)))
	return "r" + hex.EncodeToString(sum[:16])
}

// validStream accepts only names StreamOf produces.
func validStream(s string) bool {
	if s == GlobalStream {
		return true
	}
	if len(s) != 33 || s[0] != 'r' {
		return false
	}
	_, err := hex.DecodeString(s[1:])
	return err == nil && strings.ToLower(s) == s
}

// hashPrefix separates audit hashes from any other SHA-256 use.
const hashPrefix = "keyhaven-audit-v1\n"

// encode returns the stored bytes of e (with its hash set) and the hash.
// e.Hash is ignored on input.
func encode(e Event) (raw []byte, hash string, err error) {
	e.Hash = ""
	body, err := json.Marshal(e)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(append([]byte(hashPrefix), body...))
	e.Hash = hex.EncodeToString(sum[:])
	raw, err = json.Marshal(e)
	return raw, e.Hash, err
}

var errNotCanonical = errors.New("audit: stored event is not in canonical form")

// decode parses stored bytes strictly: unknown fields or any byte that
// differs from the canonical encoding (added whitespace, reordered or extra
// fields) is an edit. It reports whether the stored hash matches the content.
func decode(raw []byte) (e Event, hashOK bool, err error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&e); err != nil {
		return Event{}, false, fmt.Errorf("%w: %v", errNotCanonical, err)
	}
	again, hash, err := encode(e)
	if err != nil {
		return Event{}, false, err
	}
	if hash != e.Hash {
		return e, false, nil
	}
	if !bytes.Equal(again, raw) {
		return e, false, errNotCanonical
	}
	return e, true, nil
}
