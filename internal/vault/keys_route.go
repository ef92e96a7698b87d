package vault

import (
	"net/http"
	"strings"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
)

// Key operations. They number after the secret operations so one opKind
// names any data-plane operation.
const (
	opKeyCreate opKind = iota + 100
	opKeyImport
	opKeyGet
	opKeyList
	opKeyListVersions
	opKeyUpdate
	opKeyDelete
	opKeyGetDeleted
	opKeyListDeleted
	opKeyRecover
	opKeyPurge
	opKeyBackup
	opKeyRestore
	opKeyEncrypt
	opKeyDecrypt
	opKeySign
	opKeyVerify
	opKeyWrap
	opKeyUnwrap
	opKeyRotate
	opKeyRotationPolicyGet
	opKeyRotationPolicyUpdate
)

const keyActionPrefix = "Microsoft.KeyVault/vaults/keys/"

// keyOpSpecs: audit names as Key Vault's AuditEvent logs them, RBAC data
// actions as the built-in Crypto roles grant them (reads are keys/read;
// wrap and unwrap are keys/wrap/action and keys/unwrap/action), and
// access-policy key permissions.
var keyOpSpecs = map[opKind]opSpec{
	opKeyCreate:       {Name: "KeyCreate", Action: keyActionPrefix + "create/action", Perm: "create", Create: true, Kind: authz.KindKeys},
	opKeyImport:       {Name: "KeyImport", Action: keyActionPrefix + "import/action", Perm: "import", Create: true, Kind: authz.KindKeys},
	opKeyGet:          {Name: "KeyGet", Action: keyActionPrefix + "read", Perm: "get", Kind: authz.KindKeys},
	opKeyList:         {Name: "KeyList", Action: keyActionPrefix + "read", Perm: "list", VaultScope: true, Kind: authz.KindKeys},
	opKeyListVersions: {Name: "KeyListVersions", Action: keyActionPrefix + "read", Perm: "list", Kind: authz.KindKeys},
	opKeyUpdate:       {Name: "KeyUpdate", Action: keyActionPrefix + "update/action", Perm: "update", Kind: authz.KindKeys},
	opKeyDelete:       {Name: "KeyDelete", Action: keyActionPrefix + "delete", Perm: "delete", Kind: authz.KindKeys},
	opKeyGetDeleted:   {Name: "KeyGetDeleted", Action: keyActionPrefix + "read", Perm: "get", Kind: authz.KindKeys},
	opKeyListDeleted:  {Name: "KeyListDeleted", Action: keyActionPrefix + "read", Perm: "list", VaultScope: true, Kind: authz.KindKeys},
	opKeyRecover:      {Name: "KeyRecover", Action: keyActionPrefix + "recover/action", Perm: "recover", Kind: authz.KindKeys},
	opKeyPurge:        {Name: "KeyPurge", Action: keyActionPrefix + "purge/action", Perm: "purge", Kind: authz.KindKeys},
	opKeyBackup:       {Name: "KeyBackup", Action: keyActionPrefix + "backup/action", Perm: "backup", Kind: authz.KindKeys},
	// Restore names its key only inside the blob: authorized at the vault.
	opKeyRestore: {Name: "KeyRestore", Action: keyActionPrefix + "restore/action", Perm: "restore", VaultScope: true, Create: true, Kind: authz.KindKeys},
	opKeyEncrypt: {Name: "KeyEncrypt", Action: keyActionPrefix + "encrypt/action", Perm: "encrypt", Kind: authz.KindKeys},
	opKeyDecrypt: {Name: "KeyDecrypt", Action: keyActionPrefix + "decrypt/action", Perm: "decrypt", Kind: authz.KindKeys},
	opKeySign:    {Name: "KeySign", Action: keyActionPrefix + "sign/action", Perm: "sign", Kind: authz.KindKeys},
	opKeyVerify:  {Name: "KeyVerify", Action: keyActionPrefix + "verify/action", Perm: "verify", Kind: authz.KindKeys},
	opKeyWrap:    {Name: "KeyWrap", Action: keyActionPrefix + "wrap/action", Perm: "wrapKey", Kind: authz.KindKeys},
	opKeyUnwrap:  {Name: "KeyUnwrap", Action: keyActionPrefix + "unwrap/action", Perm: "unwrapKey", Kind: authz.KindKeys},
	opKeyRotate:  {Name: "KeyRotate", Action: keyActionPrefix + "rotate/action", Perm: "rotate", Create: true, Kind: authz.KindKeys},
	opKeyRotationPolicyGet: {Name: "KeyRotationPolicyGet", Action: "Microsoft.KeyVault/vaults/keyrotationpolicies/read",
		Perm: "getrotationpolicy", Kind: authz.KindKeys},
	opKeyRotationPolicyUpdate: {Name: "KeyRotationPolicyUpdate", Action: "Microsoft.KeyVault/vaults/keyrotationpolicies/write",
		Perm: "setrotationpolicy", Kind: authz.KindKeys},
}

// specOf is the spec of any operation, secret or key.
func specOf(op opKind) opSpec {
	if s, ok := keyOpSpecs[op]; ok {
		return s
	}
	if s, ok := certOpSpecs[op]; ok {
		return s
	}
	return opSpecs[op]
}

func isKeyOp(op opKind) bool { _, ok := keyOpSpecs[op]; return ok }

// cryptoOps maps the last path segment of a crypto operation
// (/keys/{name}/{version}/{op}; the version may be empty for the latest) to
// the operation and the key_ops entry it needs.
var cryptoOps = map[string]struct {
	op    opKind
	keyOp string
}{
	"encrypt":   {opKeyEncrypt, "encrypt"},
	"decrypt":   {opKeyDecrypt, "decrypt"},
	"sign":      {opKeySign, "sign"},
	"verify":    {opKeyVerify, "verify"},
	"wrapkey":   {opKeyWrap, "wrapKey"},
	"unwrapkey": {opKeyUnwrap, "unwrapKey"},
}

// parseKeyPath routes /keys/... and /deletedkeys/... . The SDKs send an
// empty version for the latest one: /keys/{name}/ and /keys/{name}//sign.
func parseKeyPath(method, path string) (route, *azerr.Error) {
	segs, _ := splitPath(path)
	for i, s := range segs {
		// Only the version of a crypto operation may be empty.
		if s == "" && (i != 2 || len(segs) != 4) {
			return route{}, errRouteNotFound(method, path)
		}
	}
	collection := strings.ToLower(segs[0])
	rest := segs[1:]
	rt := pathRouter{method: method, path: path, notFound: errKeyNotFound}
	switch collection {
	case "keys":
		switch len(rest) {
		case 0:
			op, err := rt.pick(map[string]opKind{http.MethodGet: opKeyList})
			return route{Op: op}, err
		case 1:
			if strings.EqualFold(rest[0], "restore") && method == http.MethodPost {
				return route{Op: opKeyRestore}, nil
			}
			return rt.named(map[string]opKind{
				http.MethodPut: opKeyImport, http.MethodGet: opKeyGet, http.MethodDelete: opKeyDelete, http.MethodPatch: opKeyUpdate,
			}, rest[0], "")
		case 2:
			switch strings.ToLower(rest[1]) {
			case "versions":
				return rt.named(map[string]opKind{http.MethodGet: opKeyListVersions}, rest[0], "")
			case "create":
				return rt.named(map[string]opKind{http.MethodPost: opKeyCreate}, rest[0], "")
			case "backup":
				return rt.named(map[string]opKind{http.MethodPost: opKeyBackup}, rest[0], "")
			case "rotate":
				return rt.named(map[string]opKind{http.MethodPost: opKeyRotate}, rest[0], "")
			case "rotationpolicy":
				return rt.named(map[string]opKind{http.MethodGet: opKeyRotationPolicyGet, http.MethodPut: opKeyRotationPolicyUpdate}, rest[0], "")
			}
			// The Go SDK joins an empty version away: /keys/{name}/sign is
			// the latest version's sign (a version is never an operation name).
			if c, ok := cryptoOps[strings.ToLower(rest[1])]; ok && method == http.MethodPost {
				return rt.name(c.op, rest[0], "")
			}
			switch strings.ToLower(rest[1]) {
			case "release":
				return route{}, errNotExportable()
			case "attestation":
				return route{}, errHSMUnsupported()
			}
			return rt.named(map[string]opKind{http.MethodGet: opKeyGet, http.MethodPatch: opKeyUpdate}, rest[0], rest[1])
		case 3:
			last := strings.ToLower(rest[2])
			if c, ok := cryptoOps[last]; ok {
				if method != http.MethodPost {
					return route{}, errMethodNotAllowed(method, path)
				}
				return rt.name(c.op, rest[0], rest[1])
			}
			if last == "release" || last == "export" {
				return route{}, errNotExportable()
			}
			if last == "attestation" {
				return route{}, errHSMUnsupported()
			}
		}
	case "deletedkeys":
		switch len(rest) {
		case 0:
			op, err := rt.pick(map[string]opKind{http.MethodGet: opKeyListDeleted})
			return route{Op: op}, err
		case 1:
			return rt.named(map[string]opKind{http.MethodGet: opKeyGetDeleted, http.MethodDelete: opKeyPurge}, rest[0], "")
		case 2:
			if strings.EqualFold(rest[1], "recover") {
				return rt.named(map[string]opKind{http.MethodPost: opKeyRecover}, rest[0], "")
			}
		}
	}
	return route{}, errRouteNotFound(method, path)
}

// isKeyPath reports whether the path names the keys collections.
func isKeyPath(path string) bool { return firstSegmentIn(path, "keys", "deletedkeys") }
