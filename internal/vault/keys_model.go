package vault

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

// Key types, curves and operations as Key Vault names them. keyhaven keeps
// keys in software, so only the software key types of a standard vault are
// created: RSA and EC. The -HSM types and oct (Managed HSM only) are refused.
const (
	ktyRSA = "RSA"
	ktyEC  = "EC"

	maxKeyBodyBytes    = 64 << 10 // create, import, update and crypto bodies
	maxKeyOps          = 16
	maxKeyBackupBlobSz = 8 << 20
)

// keyOpNames are the JWK key_ops Key Vault accepts, in its spelling.
var keyOpNames = []string{"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import", "export"}

// defaultKeyOps are the operations a key gets when its create names none.
var defaultKeyOps = map[string][]string{
	ktyRSA: {"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"},
	ktyEC:  {"sign", "verify"},
}

// allowedKeyOps are the operations a key type can carry.
var allowedKeyOps = map[string][]string{
	ktyRSA: {"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import"},
	ktyEC:  {"sign", "verify", "import"},
}

// keyMeta is a key version's metadata and its public key. None of it is
// secret; the private key is sealed separately (keyVersionRec.Sealed).
type keyMeta struct {
	Name      string            `json:"n"`
	Version   string            `json:"v"`
	Kty       string            `json:"kty"`
	Size      int               `json:"sz,omitempty"`  // RSA modulus bits
	Crv       string            `json:"crv,omitempty"` // EC curve
	Ops       []string          `json:"ops"`
	Enabled   bool              `json:"e"`
	NotBefore *int64            `json:"nbf,omitempty"`
	Expires   *int64            `json:"exp,omitempty"`
	Created   int64             `json:"c"`
	Updated   int64             `json:"u"`
	Tags      map[string]string `json:"t,omitempty"`
	// Managed marks the key backing a certificate.
	Managed bool `json:"m,omitempty"`
	// Public key: RSA modulus and exponent, or EC point coordinates
	// (big-endian, EC coordinates padded to the curve size).
	N []byte `json:"pn,omitempty"`
	E []byte `json:"pe,omitempty"`
	X []byte `json:"px,omitempty"`
	Y []byte `json:"py,omitempty"`
}

// keyVersionRec is one stored key version: metadata plus the sealed PKCS #8
// private key.
type keyVersionRec struct {
	keyMeta
	Sealed []byte `json:"s"`
}

// checkSlot verifies that a record read from (lname, version) belongs there.
func (vr *keyVersionRec) checkSlot(lname, version string) error {
	if err := misplaced("key version record", lname, version, vr.Name, vr.Version); err != nil {
		return errKeyIntegrity(lname, err)
	}
	return nil
}

type keyHeadRec struct {
	Meta keyMeta `json:"m"`
}

type keyDeletedRec struct {
	Meta        keyMeta `json:"m"`
	DeletedDate int64   `json:"dd"`
	PurgeAt     int64   `json:"pa"`
}

// b64u is base64url without padding, as Key Vault writes binary fields.
type b64u []byte

func (b b64u) MarshalJSON() ([]byte, error) {
	return json.Marshal(base64.RawURLEncoding.EncodeToString(b))
}

func (b *b64u) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	v, err := decodeBase64URL(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// jwkWire is JsonWebKey. On output only public members are ever set.
type jwkWire struct {
	Kid    string   `json:"kid,omitempty"`
	Kty    string   `json:"kty,omitempty"`
	KeyOps []string `json:"key_ops,omitempty"`
	N      b64u     `json:"n,omitempty"`
	E      b64u     `json:"e,omitempty"`
	D      b64u     `json:"d,omitempty"`
	DP     b64u     `json:"dp,omitempty"`
	DQ     b64u     `json:"dq,omitempty"`
	QI     b64u     `json:"qi,omitempty"`
	P      b64u     `json:"p,omitempty"`
	Q      b64u     `json:"q,omitempty"`
	K      b64u     `json:"k,omitempty"`
	T      b64u     `json:"key_hsm,omitempty"`
	Crv    string   `json:"crv,omitempty"`
	X      b64u     `json:"x,omitempty"`
	Y      b64u     `json:"y,omitempty"`
}

// keyWire is KeyBundle, KeyItem, DeletedKeyBundle and DeletedKeyItem in
// one: bundles carry key, items carry kid.
type keyWire struct {
	Key          *jwkWire          `json:"key,omitempty"`
	Kid          string            `json:"kid,omitempty"`
	Attributes   attributesWire    `json:"attributes"`
	Tags         map[string]string `json:"tags,omitempty"`
	Managed      *bool             `json:"managed,omitempty"`
	deletionWire                   // set for deleted objects only
}

// keyIn is the body of create (POST .../create), import (PUT) and update
// (PATCH). Fields that do not belong to the operation are refused by the
// parser of that operation.
type keyIn struct {
	Kty            *string            `json:"kty"`
	KeySize        *json.Number       `json:"key_size"`
	PublicExponent *json.Number       `json:"public_exponent"`
	Crv            *string            `json:"crv"`
	KeyOps         []string           `json:"key_ops"`
	Attributes     *keyAttributesIn   `json:"attributes"`
	Tags           map[string]*string `json:"tags"`
	Key            *jwkWire           `json:"key"`
	HSM            *bool              `json:"Hsm"`
	ReleasePolicy  json.RawMessage    `json:"release_policy"`
}

type keyAttributesIn struct {
	attributesIn
	Exportable *bool `json:"exportable"`
}

// keyRequest is a validated create, import or update.
type keyRequest struct {
	Kty  string
	Size int
	Crv  string
	Ops  []string // nil: not sent
	attrsUpdate
	JWK *jwkWire // import only
	// renews is set by automatic rotation: the version being rotated,
	// which must still be the latest when the new one is written.
	renews string
}

type keyKind int

const (
	keyBodyCreate keyKind = iota
	keyBodyImport
	keyBodyUpdate
)

// parseKeyBody parses and validates a create, import or update body. It
// never echoes key material in an error.
func parseKeyBody(body []byte, kind keyKind) (*keyRequest, *azerr.Error) {
	var in keyIn
	if e := decodeJSON(body, &in); e != nil {
		return nil, e
	}
	req := &keyRequest{}
	if len(in.ReleasePolicy) > 0 && string(in.ReleasePolicy) != "null" {
		return nil, errNotExportable()
	}
	switch kind {
	case keyBodyCreate:
		if in.Key != nil || in.HSM != nil {
			return nil, azerr.BadParameter("Properties 'key' and 'Hsm' belong to key import, not create.")
		}
		if e := parseCreateType(&in, req); e != nil {
			return nil, e
		}
	case keyBodyImport:
		if in.Kty != nil || in.KeySize != nil || in.Crv != nil || in.PublicExponent != nil || in.KeyOps != nil {
			return nil, azerr.BadParameter("An import names its key type, curve and operations inside 'key'.")
		}
		if in.Key == nil {
			return nil, azerr.BadParameter("Property 'key' (the JSON web key to import) is required.")
		}
		if in.HSM != nil && *in.HSM {
			return nil, errHSMUnsupported()
		}
		req.JWK = in.Key
		in.KeyOps = in.Key.KeyOps
	case keyBodyUpdate:
		if in.Kty != nil || in.KeySize != nil || in.Crv != nil || in.PublicExponent != nil || in.Key != nil || in.HSM != nil {
			return nil, azerr.BadParameter("Only 'key_ops', 'attributes' and 'tags' of a key can be updated.")
		}
	}
	if in.KeyOps != nil {
		ops, e := parseKeyOps(in.KeyOps)
		if e != nil {
			return nil, e
		}
		req.Ops = ops
	}
	var attrs *attributesIn
	if a := in.Attributes; a != nil {
		if a.Exportable != nil && *a.Exportable {
			return nil, errNotExportable()
		}
		attrs = &a.attributesIn
	}
	if e := req.parse(attrs, in.Tags); e != nil {
		return nil, e
	}
	return req, nil
}

// parseCreateType reads kty, key_size, public_exponent and crv of a create.
func parseCreateType(in *keyIn, req *keyRequest) *azerr.Error {
	if in.Kty == nil || *in.Kty == "" {
		return azerr.BadParameter("Property 'kty' (the key type) is required.")
	}
	kty, e := parseKty(*in.Kty)
	if e != nil {
		return e
	}
	req.Kty = kty
	switch kty {
	case ktyRSA:
		if in.Crv != nil && *in.Crv != "" {
			return azerr.BadParameter("Property 'crv' does not apply to RSA keys.")
		}
		req.Size = 2048
		if in.KeySize != nil {
			n, err := in.KeySize.Int64()
			if err != nil || (n != 2048 && n != 3072 && n != 4096) {
				return azerr.BadParameter("RSA key size must be 2048, 3072 or 4096 bits.")
			}
			req.Size = int(n)
		}
		if in.PublicExponent != nil {
			if n, err := in.PublicExponent.Int64(); err != nil || n != 65537 {
				return azerr.BadParameter("Only the public exponent 65537 is supported.")
			}
		}
	case ktyEC:
		if in.KeySize != nil || in.PublicExponent != nil {
			return azerr.BadParameter("Properties 'key_size' and 'public_exponent' do not apply to EC keys; name the curve with 'crv'.")
		}
		req.Crv = "P-256"
		if in.Crv != nil && *in.Crv != "" {
			crv, e := parseCurve(*in.Crv)
			if e != nil {
				return e
			}
			req.Crv = crv
		}
	}
	return nil
}

// parseKty accepts the software key types and refuses the others with
// the reason.
func parseKty(s string) (string, *azerr.Error) {
	switch s {
	case ktyRSA, ktyEC:
		return s, nil
	case "RSA-HSM", "EC-HSM", "oct-HSM":
		return "", errHSMUnsupported()
	case "oct":
		return "", azerr.BadParameter("Key type 'oct' (symmetric keys) is only supported by Managed HSM, not by vaults.")
	}
	return "", azerr.BadParameter("Key type '%s' is not supported; use RSA or EC.", clip(s, 20))
}

func parseCurve(s string) (string, *azerr.Error) {
	switch s {
	case "P-256", "P-384", "P-521":
		return s, nil
	case "P-256K":
		return "", azerr.BadParameter("Curve P-256K (secp256k1) is not supported by keyhaven; use P-256, P-384 or P-521.")
	}
	return "", azerr.BadParameter("Curve '%s' is not supported; use P-256, P-384 or P-521.", clip(s, 20))
}

// parseKeyOps validates key_ops names (case-sensitive, as in JWK) and drops
// duplicates.
func parseKeyOps(in []string) ([]string, *azerr.Error) {
	if len(in) > maxKeyOps {
		return nil, azerr.BadParameter("At most %d key operations may be listed.", maxKeyOps)
	}
	out := make([]string, 0, len(in))
	for _, op := range in {
		if !slices.Contains(keyOpNames, op) {
			return nil, azerr.BadParameter("Key operation '%s' is invalid; valid operations: %s.", clip(op, 32), strings.Join(keyOpNames, ", "))
		}
		if op == "export" {
			return nil, errNotExportable()
		}
		if !slices.Contains(out, op) {
			out = append(out, op)
		}
	}
	return out, nil
}

// checkOpsFor refuses operations the key type cannot perform.
func checkOpsFor(kty string, ops []string) *azerr.Error {
	for _, op := range ops {
		if !slices.Contains(allowedKeyOps[kty], op) {
			return azerr.BadParameter("Key operation '%s' is not supported for key type %s.", op, kty)
		}
	}
	return nil
}

// applyKeyUpdate applies the attributes, tags and (validated) ops of req.
func applyKeyUpdate(m *keyMeta, req *keyRequest) {
	req.apply(&m.Enabled, &m.NotBefore, &m.Expires, &m.Tags)
	if req.Ops != nil {
		m.Ops = req.Ops
	}
}

// keyOpIn is the body of encrypt, decrypt, wrapKey and unwrapKey
// (KeyOperationsParameters), sign (KeySignParameters) and verify
// (KeyVerifyParameters).
type keyOpIn struct {
	Alg    *string `json:"alg"`
	Value  *b64u   `json:"value"`
	Digest *b64u   `json:"digest"`
	IV     *b64u   `json:"iv"`
	AAD    *b64u   `json:"aad"`
	Tag    *b64u   `json:"tag"`
}

type keyOpResultWire struct {
	Kid   string `json:"kid"`
	Value b64u   `json:"value"`
}

type keyVerifyWire struct {
	Value bool `json:"value"`
}
