package vault

import (
	"net/http"
	"strings"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
)

// Certificate operations number after the key operations.
const (
	opCertCreate opKind = iota + 200
	opCertImport
	opCertGet
	opCertList
	opCertListVersions
	opCertUpdate
	opCertPolicyGet
	opCertPolicyUpdate
	opCertDelete
	opCertGetDeleted
	opCertListDeleted
	opCertRecover
	opCertPurge
	opCertBackup
	opCertRestore
	opCertOpGet
	opCertOpUpdate
	opCertOpDelete
	opCertMerge
)

const certActionPrefix = "Microsoft.KeyVault/vaults/certificates/"

// certOpSpecs: audit names as Key Vault's AuditEvent logs them, the
// certificate data actions the built-in Certificates Officer and Certificate
// User roles grant, and access-policy certificate permissions.
var certOpSpecs = map[opKind]opSpec{
	opCertCreate:       {Name: "CertificateCreate", Action: certActionPrefix + "create/action", Perm: "create", Create: true, Kind: authz.KindCertificates},
	opCertImport:       {Name: "CertificateImport", Action: certActionPrefix + "import/action", Perm: "import", Create: true, Kind: authz.KindCertificates},
	opCertGet:          {Name: "CertificateGet", Action: certActionPrefix + "read", Perm: "get", Kind: authz.KindCertificates},
	opCertList:         {Name: "CertificateList", Action: certActionPrefix + "read", Perm: "list", VaultScope: true, Kind: authz.KindCertificates},
	opCertListVersions: {Name: "CertificateListVersions", Action: certActionPrefix + "read", Perm: "list", Kind: authz.KindCertificates},
	opCertUpdate:       {Name: "CertificateUpdate", Action: certActionPrefix + "update/action", Perm: "update", Kind: authz.KindCertificates},
	opCertPolicyGet:    {Name: "CertificatePolicyGet", Action: certActionPrefix + "read", Perm: "get", Kind: authz.KindCertificates},
	opCertPolicyUpdate: {Name: "CertificatePolicyUpdate", Action: certActionPrefix + "update/action", Perm: "update", Kind: authz.KindCertificates},
	opCertDelete:       {Name: "CertificateDelete", Action: certActionPrefix + "delete", Perm: "delete", Kind: authz.KindCertificates},
	opCertGetDeleted:   {Name: "CertificateGetDeleted", Action: certActionPrefix + "read", Perm: "get", Kind: authz.KindCertificates},
	opCertListDeleted:  {Name: "CertificateListDeleted", Action: certActionPrefix + "read", Perm: "list", VaultScope: true, Kind: authz.KindCertificates},
	opCertRecover:      {Name: "CertificateRecover", Action: certActionPrefix + "recover/action", Perm: "recover", Kind: authz.KindCertificates},
	opCertPurge:        {Name: "CertificatePurge", Action: certActionPrefix + "purge/action", Perm: "purge", Kind: authz.KindCertificates},
	opCertBackup:       {Name: "CertificateBackup", Action: certActionPrefix + "backup/action", Perm: "backup", Kind: authz.KindCertificates},
	// Restore names its certificate only inside the blob: authorized at the vault.
	opCertRestore:  {Name: "CertificateRestore", Action: certActionPrefix + "restore/action", Perm: "restore", VaultScope: true, Create: true, Kind: authz.KindCertificates},
	opCertOpGet:    {Name: "CertificatePendingGet", Action: certActionPrefix + "read", Perm: "get", Kind: authz.KindCertificates},
	opCertOpUpdate: {Name: "CertificatePendingUpdate", Action: certActionPrefix + "update/action", Perm: "update", Kind: authz.KindCertificates},
	opCertOpDelete: {Name: "CertificatePendingDelete", Action: certActionPrefix + "update/action", Perm: "update", Kind: authz.KindCertificates},
	opCertMerge:    {Name: "CertificatePendingMerge", Action: certActionPrefix + "create/action", Perm: "create", Kind: authz.KindCertificates},
}

func isCertOp(op opKind) bool { _, ok := certOpSpecs[op]; return ok }

// isCertPath reports whether the path names the certificate collections.
func isCertPath(path string) bool {
	return firstSegmentIn(path, "certificates", "deletedcertificates")
}

func errCertNotFound(nameOrID string) *azerr.Error {
	return errObjectNotFound("CertificateNotFound", "certificate", nameOrID)
}

func errDeletedCertNotFound(name string) *azerr.Error {
	return errDeletedObjectNotFound("CertificateNotFound", "certificate", name)
}

func errCertOpNotFound(name string) *azerr.Error {
	return azerr.NotFound("PendingCertificateNotFound", "Pending certificate not found: %s", name)
}

func errCertDeletedConflict(name string) *azerr.Error {
	return errObjectDeletedConflict("certificate", name)
}

func errCertIssuersUnsupported() *azerr.Error {
	return azerr.BadParameter("Certificate issuers are not supported: keyhaven has no certificate authority integration. Use the issuer 'Self' or 'Unknown' in the certificate policy.")
}

func errCertContactsUnsupported() *azerr.Error {
	return azerr.BadParameter("Certificate contacts are not supported: keyhaven sends no e-mail notifications.")
}

// parseCertPath routes /certificates/... and /deletedcertificates/... .
func parseCertPath(method, path string) (route, *azerr.Error) {
	segs, _ := splitPath(path)
	if hasEmptySegment(segs) {
		return route{}, errRouteNotFound(method, path)
	}
	collection := strings.ToLower(segs[0])
	rest := segs[1:]
	rt := pathRouter{method: method, path: path, notFound: errCertNotFound}
	switch collection {
	case "certificates":
		if len(rest) > 0 {
			switch strings.ToLower(rest[0]) {
			case "issuers":
				return route{}, errCertIssuersUnsupported()
			case "contacts":
				return route{}, errCertContactsUnsupported()
			}
		}
		switch len(rest) {
		case 0:
			op, err := rt.pick(map[string]opKind{http.MethodGet: opCertList})
			return route{Op: op}, err
		case 1:
			if strings.EqualFold(rest[0], "restore") && method == http.MethodPost {
				return route{Op: opCertRestore}, nil
			}
			return rt.named(map[string]opKind{http.MethodGet: opCertGet, http.MethodDelete: opCertDelete, http.MethodPatch: opCertUpdate}, rest[0], "")
		case 2:
			switch strings.ToLower(rest[1]) {
			case "create":
				return rt.named(map[string]opKind{http.MethodPost: opCertCreate}, rest[0], "")
			case "import":
				return rt.named(map[string]opKind{http.MethodPost: opCertImport}, rest[0], "")
			case "versions":
				return rt.named(map[string]opKind{http.MethodGet: opCertListVersions}, rest[0], "")
			case "backup":
				return rt.named(map[string]opKind{http.MethodPost: opCertBackup}, rest[0], "")
			case "policy":
				return rt.named(map[string]opKind{http.MethodGet: opCertPolicyGet, http.MethodPatch: opCertPolicyUpdate}, rest[0], "")
			case "pending":
				return rt.named(map[string]opKind{http.MethodGet: opCertOpGet, http.MethodPatch: opCertOpUpdate, http.MethodDelete: opCertOpDelete}, rest[0], "")
			}
			return rt.named(map[string]opKind{http.MethodGet: opCertGet, http.MethodPatch: opCertUpdate}, rest[0], rest[1])
		case 3:
			if strings.EqualFold(rest[1], "pending") && strings.EqualFold(rest[2], "merge") {
				return rt.named(map[string]opKind{http.MethodPost: opCertMerge}, rest[0], "")
			}
		}
	case "deletedcertificates":
		switch len(rest) {
		case 0:
			op, err := rt.pick(map[string]opKind{http.MethodGet: opCertListDeleted})
			return route{Op: op}, err
		case 1:
			return rt.named(map[string]opKind{http.MethodGet: opCertGetDeleted, http.MethodDelete: opCertPurge}, rest[0], "")
		case 2:
			if strings.EqualFold(rest[1], "recover") {
				return rt.named(map[string]opKind{http.MethodPost: opCertRecover}, rest[0], "")
			}
		}
	}
	return route{}, errRouteNotFound(method, path)
}
