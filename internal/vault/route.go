package vault

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

// supportedAPIVersions are the secrets api-versions this plane answers: every
// stable and preview version from 7.0 up to 2026-04-01 (the azsecrets v1.5.1
// default). The wire shapes of these versions are compatible for secrets;
// apiFamily tells the few differences apart.
var supportedAPIVersions = []string{
	"7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6",
	"7.2-preview", "7.3-preview", "7.4-preview.1", "7.5-preview.1", "7.6-preview.1", "7.6-preview.2",
	"2025-06-01-preview", "2025-07-01", "2026-01-01-preview", "2026-03-01-preview", "2026-04-01",
}

const latestAPIVersion = "2026-04-01"

var apiVersionSet = func() map[string]bool {
	m := make(map[string]bool, len(supportedAPIVersions))
	for _, v := range supportedAPIVersions {
		m[v] = true
	}
	return m
}()

// checkAPIVersion validates the api-version query parameter.
func checkAPIVersion(v string) *azerr.Error {
	list := strings.Join(supportedAPIVersions, ", ")
	if v == "" {
		return azerr.BadParameter("The 'api-version' query parameter is missing. Supported versions: %s.", list)
	}
	if !apiVersionSet[v] {
		return azerr.BadParameter("The specified version (%s) is not recognized. Consider using the latest supported version (%s). Supported versions: %s.",
			clip(v, 40), latestAPIVersion, list)
	}
	return nil
}

// hasRecoverableDays: recoverableDays appeared in the attributes with 7.1.
func hasRecoverableDays(apiVersion string) bool { return apiVersion != "7.0" }

type opKind int

const (
	opInvalid opKind = iota
	opSet
	opGet
	opList
	opListVersions
	opUpdate
	opDelete
	opGetDeleted
	opListDeleted
	opRecover
	opPurge
	opBackup
	opRestore
)

// opSpec is the static description of an operation: its audit name, RBAC
// data action, access-policy permission and authorization scope.
type opSpec struct {
	Name       string // audit OperationName
	Action     string // RBAC data action
	Perm       string // access-policy permission
	VaultScope bool   // authorize at the vault, not the secret
	Create     bool   // counts against the create budget
	// Kind is the access-policy kind and the collection of the authorized
	// scope ({vault}/{Kind}/{name}); "" is secrets.
	Kind string
}

// kind is the spec's access-policy kind and scope collection.
func (s opSpec) kind() string {
	if s.Kind == "" {
		return "secrets"
	}
	return s.Kind
}

const actionPrefix = "Microsoft.KeyVault/vaults/secrets/"

var opSpecs = map[opKind]opSpec{
	opSet:          {Name: "SecretSet", Action: actionPrefix + "setSecret/action", Perm: "set", Create: true},
	opGet:          {Name: "SecretGet", Action: actionPrefix + "getSecret/action", Perm: "get"},
	opList:         {Name: "SecretList", Action: actionPrefix + "readMetadata/action", Perm: "list", VaultScope: true},
	opListVersions: {Name: "SecretListVersions", Action: actionPrefix + "readMetadata/action", Perm: "list"},
	opUpdate:       {Name: "SecretUpdate", Action: actionPrefix + "update/action", Perm: "set"},
	opDelete:       {Name: "SecretDelete", Action: actionPrefix + "delete", Perm: "delete"},
	opGetDeleted:   {Name: "SecretGetDeleted", Action: actionPrefix + "readMetadata/action", Perm: "list"},
	opListDeleted:  {Name: "SecretListDeleted", Action: actionPrefix + "readMetadata/action", Perm: "list", VaultScope: true},
	opRecover:      {Name: "SecretRecover", Action: actionPrefix + "recover/action", Perm: "recover"},
	opPurge:        {Name: "SecretPurge", Action: actionPrefix + "purge/action", Perm: "purge"},
	opBackup:       {Name: "SecretBackup", Action: actionPrefix + "backup/action", Perm: "backup"},
	// Restore names its secret only inside the blob, so it is authorized at
	// the vault before the body is read.
	opRestore: {Name: "SecretRestore", Action: actionPrefix + "restore/action", Perm: "restore", VaultScope: true, Create: true},
}

// route is a parsed request path.
type route struct {
	Op      opKind
	Name    string // as sent; validated
	Version string // lower-case 32 hex digits, or "" for latest
}

const maxPathLen = 1024

var (
	nameRE    = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
	versionRE = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)
)

func validName(name string) bool { return nameRE.MatchString(name) }

// parsePath maps a method and (escaped) path, relative to the vault, to an
// operation. A version that is not 32 hex digits cannot exist, so it is
// reported as not found rather than as malformed, like Key Vault.
func parsePath(method, path string) (route, *azerr.Error) {
	if len(path) > maxPathLen {
		return route{}, azerr.BadParameter("The request URI is too long.")
	}
	if isKeyPath(path) {
		return parseKeyPath(method, path)
	}
	if isCertPath(path) {
		return parseCertPath(method, path)
	}
	segs, trailing := splitPath(path)
	if hasEmptySegment(segs) {
		return route{}, errRouteNotFound(method, path)
	}
	collection := strings.ToLower(segs[0])
	rest := segs[1:]
	rt := pathRouter{method: method, path: path, notFound: errSecretNotFound}
	switch collection {
	case "secrets":
		switch len(rest) {
		case 0:
			op, err := rt.pick(map[string]opKind{http.MethodGet: opList})
			return route{Op: op}, err
		case 1:
			if method == http.MethodPost && strings.EqualFold(rest[0], "restore") {
				return route{Op: opRestore}, nil
			}
			op, err := rt.pick(map[string]opKind{
				http.MethodPut: opSet, http.MethodGet: opGet, http.MethodDelete: opDelete, http.MethodPatch: opUpdate,
			})
			if err != nil {
				return route{}, err
			}
			if op == opSet && trailing {
				// PUT /secrets/{name}/ would read as a version-less update of a
				// slot; Key Vault only sets at /secrets/{name}.
				return route{}, errRouteNotFound(method, path)
			}
			return rt.name(op, rest[0], "")
		case 2:
			switch {
			case strings.EqualFold(rest[1], "versions"):
				return rt.named(map[string]opKind{http.MethodGet: opListVersions}, rest[0], "")
			case strings.EqualFold(rest[1], "backup"):
				return rt.named(map[string]opKind{http.MethodPost: opBackup}, rest[0], "")
			}
			return rt.named(map[string]opKind{http.MethodGet: opGet, http.MethodPatch: opUpdate}, rest[0], rest[1])
		}
	case "deletedsecrets":
		switch len(rest) {
		case 0:
			op, err := rt.pick(map[string]opKind{http.MethodGet: opListDeleted})
			return route{Op: op}, err
		case 1:
			return rt.named(map[string]opKind{http.MethodGet: opGetDeleted, http.MethodDelete: opPurge}, rest[0], "")
		case 2:
			if strings.EqualFold(rest[1], "recover") {
				return rt.named(map[string]opKind{http.MethodPost: opRecover}, rest[0], "")
			}
		}
	}
	return route{}, errRouteNotFound(method, path)
}

// splitPath splits a path relative to the vault into its segments; a
// single trailing slash is tolerated on every route (the SDKs send
// "/secrets/{name}/" for the latest version) and reported as trailing.
func splitPath(path string) (segs []string, trailing bool) {
	segs = strings.Split(strings.TrimPrefix(path, "/"), "/")
	trailing = len(segs) > 1 && segs[len(segs)-1] == ""
	if trailing {
		segs = segs[:len(segs)-1]
	}
	return segs, trailing
}

func hasEmptySegment(segs []string) bool {
	for _, s := range segs {
		if s == "" {
			return true
		}
	}
	return false
}

// firstSegmentIn reports whether the path's first segment is one of the
// (lower-case) collections.
func firstSegmentIn(path string, collections ...string) bool {
	first, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	first = strings.ToLower(first)
	for _, c := range collections {
		if first == c {
			return true
		}
	}
	return false
}

// pathRouter holds the steps every collection's parser shares.
type pathRouter struct {
	method, path string
	// notFound reports a version that is not 32 hex digits: it cannot
	// exist, so it is not found rather than malformed, like Key Vault.
	notFound func(nameOrID string) *azerr.Error
}

// pick is the operation the method selects among m.
func (p pathRouter) pick(m map[string]opKind) (opKind, *azerr.Error) {
	if op, ok := m[p.method]; ok {
		return op, nil
	}
	return opInvalid, errMethodNotAllowed(p.method, p.path)
}

// name is op on the object name (and version, "" for the latest), checked.
func (p pathRouter) name(op opKind, name, version string) (route, *azerr.Error) {
	if !validName(name) {
		return route{}, errInvalidName(name)
	}
	if version != "" && !versionRE.MatchString(version) {
		return route{}, p.notFound(name + "/" + version)
	}
	return route{Op: op, Name: name, Version: strings.ToLower(version)}, nil
}

// named is the operation the method selects among m, on name and version.
func (p pathRouter) named(m map[string]opKind, name, version string) (route, *azerr.Error) {
	op, err := p.pick(m)
	if err != nil {
		return route{}, err
	}
	return p.name(op, name, version)
}
