package networkcloud

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/rotation"
)

var (
	macRe      = regexp.MustCompile(`^([0-9A-Fa-f]{2}[:-]){5}([0-9A-Fa-f]{2})$`)
	zoneRe     = regexp.MustCompile(`^[a-zA-Z0-9]{1,10}$`)
	nonAlnumRe = regexp.MustCompile(`[^a-zA-Z0-9]`)
	nonNameRe  = regexp.MustCompile(`[^a-zA-Z0-9_-]`)
)

// pendingTarget is a credential found in a request: its password is the
// write-only value handed to the rotation engine, never stored.
type pendingTarget struct {
	target   rotation.Target
	password []byte
}

// endpoint schemes: BMCs speak Redfish; a storage appliance's administrator
// may also be a PostgreSQL role.
var (
	bmcSchemes       = []string{"redfish+https", "redfish+http"}
	applianceSchemes = []string{"redfish+https", "redfish+http", "postgres", "postgresql"}
)

// checkEndpoint validates a keyhaven endpoint extension. Credentials in the
// URL are refused (and the value is then not echoed: it may hold one).
func checkEndpoint(target, v string, schemes []string) error {
	if v == "" {
		return nil
	}
	if len(v) > MaxEndpointLength {
		return badProp(target, "The endpoint is longer than %d characters.", MaxEndpointLength)
	}
	u, err := url.Parse(v)
	if err != nil {
		return badProp(target, "The endpoint is not a valid URL.")
	}
	if u.User != nil {
		return badProp(target, "The endpoint must not contain credentials; give them in the credentials object.")
	}
	ok := false
	for _, s := range schemes {
		ok = ok || strings.EqualFold(u.Scheme, s)
	}
	if !ok {
		return badProp(target, "The endpoint '%s' must use one of the schemes %s (e.g. redfish+https://127.0.0.1:9443).",
			clip(v, 200), strings.Join(schemes, ", "))
	}
	if u.Host == "" || u.Fragment != "" {
		return badProp(target, "The endpoint '%s' must name a host and have no fragment.", clip(v, 200))
	}
	return nil
}

func checkCredentials(target string, c *adminCredentials) error {
	if c == nil {
		return badProp(target, "The property '%s' is required.", target)
	}
	if c.Username == "" || len(c.Username) > MaxUsernameLength || strings.ContainsFunc(c.Username, isCtl) {
		return badProp(target+".username", "The username must be 1 to %d printable characters.", MaxUsernameLength)
	}
	if c.Password == "" {
		return badProp(target+".password", "The property '%s.password' is required.", target)
	}
	if len(c.Password) > MaxPasswordLength {
		return badProp(target+".password", "The password is longer than %d characters.", MaxPasswordLength)
	}
	return nil
}

func isCtl(r rune) bool { return r < 0x20 || r == 0x7f }

func checkText(target, v string, max int) error {
	if len(v) > max || strings.ContainsFunc(v, isCtl) {
		return badProp(target, "The property '%s' must be at most %d printable characters.", target, max)
	}
	return nil
}

// validateRacks checks the rack definitions, names unnamed machines and
// appliances (stable, derived from the cluster name and rack position),
// collects their write-only passwords as pending rotation targets and blanks
// them in place.
func validateRacks(c *clusterRecord) ([]pendingTarget, error) {
	if len(c.ComputeRacks) > MaxRacks-1 {
		return nil, badProp("properties.computeRackDefinitions", "At most %d compute racks may be defined.", MaxRacks-1)
	}
	var out []pendingTarget
	machines, appliances := map[string]bool{}, map[string]bool{}
	base := nonAlnumRe.ReplaceAllString(c.Name, "")
	if len(base) > 40 {
		base = base[:40]
	}
	saBase := nonNameRe.ReplaceAllString(c.Name, "")
	if len(saBase) > 18 {
		saBase = saBase[:18]
	}
	for ri := range len(c.ComputeRacks) + 1 {
		r := &c.AggregatorOrSingleRack
		t := "properties.aggregatorOrSingleRackDefinition"
		if ri > 0 {
			r = &c.ComputeRacks[ri-1]
			t = fmt.Sprintf("properties.computeRackDefinitions[%d]", ri-1)
		}
		if r.NetworkRackID == "" {
			return nil, badProp(t+".networkRackId", "The property '%s.networkRackId' is required.", t)
		}
		if err := checkResourceID(t+".networkRackId", r.NetworkRackID, ""); err != nil {
			return nil, err
		}
		if r.RackSkuID == "" {
			return nil, badProp(t+".rackSkuId", "The property '%s.rackSkuId' is required.", t)
		}
		if err := checkResourceID(t+".rackSkuId", r.RackSkuID, ""); err != nil {
			return nil, err
		}
		if r.RackSerialNumber == "" || len(r.RackSerialNumber) > 64 || strings.ContainsFunc(r.RackSerialNumber, isCtl) {
			return nil, badProp(t+".rackSerialNumber", "The property '%s.rackSerialNumber' must be 1 to 64 characters.", t)
		}
		if r.AvailabilityZone != "" && !zoneRe.MatchString(r.AvailabilityZone) {
			return nil, badProp(t+".availabilityZone", "The availability zone must match ^[a-zA-Z0-9]{1,10}$.")
		}
		if err := checkText(t+".rackLocation", r.RackLocation, MaxFreeTextLength); err != nil {
			return nil, err
		}
		if len(r.BareMetalMachineConfigurationData) > MaxMachinesPerRack {
			return nil, badProp(t+".bareMetalMachineConfigurationData", "At most %d machines may be defined per rack.", MaxMachinesPerRack)
		}
		if len(r.StorageApplianceConfigurationData) > MaxAppliancesPerRack {
			return nil, badProp(t+".storageApplianceConfigurationData", "At most %d storage appliances may be defined per rack.", MaxAppliancesPerRack)
		}
		for mi := range r.BareMetalMachineConfigurationData {
			m := &r.BareMetalMachineConfigurationData[mi]
			mt := fmt.Sprintf("%s.bareMetalMachineConfigurationData[%d]", t, mi)
			if m.BMCEndpoint != "" {
				if m.BMCConnectionString != "" && m.BMCConnectionString != m.BMCEndpoint {
					return nil, badProp(mt+".bmcEndpoint", "Give the BMC endpoint once: bmcConnectionString and its alias bmcEndpoint differ.")
				}
				m.BMCConnectionString, m.BMCEndpoint = m.BMCEndpoint, ""
			}
			if err := checkEndpoint(mt+".bmcConnectionString", m.BMCConnectionString, bmcSchemes); err != nil {
				return nil, err
			}
			if err := checkCredentials(mt+".bmcCredentials", m.BMCCredentials); err != nil {
				return nil, err
			}
			if !macRe.MatchString(m.BMCMacAddress) {
				return nil, badProp(mt+".bmcMacAddress", "The property '%s.bmcMacAddress' must be a MAC address (AA:BB:CC:DD:EE:FF).", mt)
			}
			if !macRe.MatchString(m.BootMacAddress) {
				return nil, badProp(mt+".bootMacAddress", "The property '%s.bootMacAddress' must be a MAC address (AA:BB:CC:DD:EE:FF).", mt)
			}
			if m.RackSlot < 1 || m.RackSlot > 256 {
				return nil, badProp(mt+".rackSlot", "The rack slot must be between 1 and 256.")
			}
			if m.SerialNumber == "" || len(m.SerialNumber) > 64 || strings.ContainsFunc(m.SerialNumber, isCtl) {
				return nil, badProp(mt+".serialNumber", "The serial number must be 1 to 64 characters.")
			}
			if err := checkText(mt+".machineDetails", m.MachineDetails, MaxFreeTextLength); err != nil {
				return nil, err
			}
			if m.MachineName == "" {
				m.MachineName = fmt.Sprintf("%sr%ds%d", base, ri, m.RackSlot)
			}
			if !machineNameRe.MatchString(m.MachineName) {
				return nil, badProp(mt+".machineName", "The machine name '%s' must match ^([a-zA-Z0-9][a-zA-Z0-9]{0,62}[a-zA-Z0-9])$.", clip(m.MachineName, 80))
			}
			if machines[strings.ToLower(m.MachineName)] {
				return nil, badProp(mt+".machineName", "The machine name '%s' is used twice in the cluster.", m.MachineName)
			}
			machines[strings.ToLower(m.MachineName)] = true
			id := arm.NewResourceID(c.SubscriptionID, c.ResourceGroup, Namespace, typeMachines, m.MachineName).String()
			out = append(out, pendingTarget{
				target: rotation.Target{ClusterID: c.id().String(), OwnerID: id, OwnerName: m.MachineName, Kind: rotation.KindBMC,
					Endpoint: m.BMCConnectionString, Username: m.BMCCredentials.Username},
				password: []byte(m.BMCCredentials.Password)})
			m.BMCCredentials.Password = ""
		}
		for ai := range r.StorageApplianceConfigurationData {
			a := &r.StorageApplianceConfigurationData[ai]
			at := fmt.Sprintf("%s.storageApplianceConfigurationData[%d]", t, ai)
			if err := checkEndpoint(at+".adminEndpoint", a.AdminEndpoint, applianceSchemes); err != nil {
				return nil, err
			}
			if err := checkCredentials(at+".adminCredentials", a.AdminCredentials); err != nil {
				return nil, err
			}
			if a.RackSlot < 1 || a.RackSlot > 256 {
				return nil, badProp(at+".rackSlot", "The rack slot must be between 1 and 256.")
			}
			if a.SerialNumber == "" || len(a.SerialNumber) > 64 || strings.ContainsFunc(a.SerialNumber, isCtl) {
				return nil, badProp(at+".serialNumber", "The serial number must be 1 to 64 characters.")
			}
			if a.StorageApplianceName == "" {
				a.StorageApplianceName = fmt.Sprintf("%s-sa%d-%d", saBase, ri, a.RackSlot)
			}
			if !nameRe.MatchString(a.StorageApplianceName) {
				return nil, badProp(at+".storageApplianceName", "The storage appliance name '%s' must match ^([a-zA-Z0-9][a-zA-Z0-9-_]{0,28}[a-zA-Z0-9])$.", clip(a.StorageApplianceName, 80))
			}
			if appliances[strings.ToLower(a.StorageApplianceName)] {
				return nil, badProp(at+".storageApplianceName", "The storage appliance name '%s' is used twice in the cluster.", a.StorageApplianceName)
			}
			appliances[strings.ToLower(a.StorageApplianceName)] = true
			id := arm.NewResourceID(c.SubscriptionID, c.ResourceGroup, Namespace, typeAppliances, a.StorageApplianceName).String()
			out = append(out, pendingTarget{
				target: rotation.Target{ClusterID: c.id().String(), OwnerID: id, OwnerName: a.StorageApplianceName, Kind: rotation.KindStorageAdmin,
					Endpoint: a.AdminEndpoint, Username: a.AdminCredentials.Username},
				password: []byte(a.AdminCredentials.Password)})
			a.AdminCredentials.Password = ""
		}
	}
	return out, nil
}

// parseSecretArchive reads a secretArchive object (PUT: whole; PATCH:
// merged into cur). useKeyVault is the spec's string enum; JSON booleans
// are accepted too.
func parseSecretArchive(raw json.RawMessage, cur *secretArchive) (*secretArchive, error) {
	const t = "properties.secretArchive"
	var in struct {
		KeyVaultID  *string         `json:"keyVaultId"`
		UseKeyVault json.RawMessage `json:"useKeyVault"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, arm.InvalidRequestContent("The property '%s' must be an object {keyVaultId, useKeyVault}.", t).WithTarget(t)
	}
	out := secretArchive{UseKeyVault: useKeyVaultFalse}
	if cur != nil {
		out = *cur
	}
	if in.KeyVaultID != nil {
		out.KeyVaultID = *in.KeyVaultID
	}
	if len(in.UseKeyVault) > 0 && string(in.UseKeyVault) != "null" {
		var s string
		var b bool
		switch {
		case json.Unmarshal(in.UseKeyVault, &s) == nil:
		case json.Unmarshal(in.UseKeyVault, &b) == nil:
			s = fmt.Sprint(b)
		default:
			s = "?"
		}
		switch strings.ToLower(s) {
		case "true":
			out.UseKeyVault = useKeyVaultTrue
		case "false":
			out.UseKeyVault = useKeyVaultFalse
		default:
			return nil, badProp(t+".useKeyVault", "The property '%s.useKeyVault' must be \"True\" or \"False\"; got '%s'.", t, clip(s, 40))
		}
	}
	if out.KeyVaultID == "" {
		return nil, badProp(t+".keyVaultId", "The property '%s.keyVaultId' is required.", t)
	}
	if err := checkResourceID(t+".keyVaultId", out.KeyVaultID, "Microsoft.KeyVault/vaults"); err != nil {
		return nil, err
	}
	return &out, nil
}

// checkVaultExists makes sure a keyVaultId names an existing vault.
func (p *Provider) checkVaultExists(ctx context.Context, vaultID string) error {
	const t = "properties.secretArchive.keyVaultId"
	id, _ := arm.ParseResourceID(vaultID)
	notFound := arm.BadRequest("KeyVaultNotFound",
		"The key vault '%s' named by secretArchive.keyVaultId does not exist.", clip(vaultID, 300)).WithTarget(t)
	if p.kv == nil {
		return notFound
	}
	vi, err := p.kv.LookupVault(ctx, id.Name())
	if err != nil {
		if e := azerr.From(err); e.Status == http.StatusNotFound {
			return notFound
		}
		return azerr.From(err)
	}
	if !strings.EqualFold(strings.TrimRight(vi.ResourceID, "/"), id.String()) {
		return notFound
	}
	return nil
}

// parseSettings reads a secretArchiveSettings object (replaced whole).
func parseSettings(raw json.RawMessage) (*secretArchiveSettings, error) {
	const t = "properties.secretArchiveSettings"
	var s secretArchiveSettings
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, arm.InvalidRequestContent("The property '%s' must be an object {vaultUri, associatedIdentity}.", t).WithTarget(t)
	}
	if s.VaultURI == "" {
		return nil, badProp(t+".vaultUri", "The property '%s.vaultUri' is required.", t)
	}
	u, err := url.Parse(s.VaultURI)
	if err != nil || len(s.VaultURI) > MaxEndpointLength || !strings.EqualFold(u.Scheme, "https") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, badProp(t+".vaultUri", "The vault URI '%s' must use the https:// scheme and name only the vault (e.g. https://myvault.vault.localhost:8443/).",
			clip(s.VaultURI, 200))
	}
	if s.AssociatedIdentity == nil || s.AssociatedIdentity.IdentityType == "" {
		return nil, badProp(t+".associatedIdentity.identityType",
			"The property '%s.associatedIdentity.identityType' is required: SystemAssignedIdentity or UserAssignedIdentity.", t)
	}
	ai := s.AssociatedIdentity
	switch strings.ToLower(ai.IdentityType) {
	case strings.ToLower(identitySystemSelector):
		ai.IdentityType = identitySystemSelector
	case strings.ToLower(identityUserSelector):
		ai.IdentityType = identityUserSelector
	default:
		return nil, badProp(t+".associatedIdentity.identityType",
			"The identity type '%s' is not supported: use SystemAssignedIdentity or UserAssignedIdentity.", clip(ai.IdentityType, 64))
	}
	if s.EncryptionPublicKey != "" {
		if err := checkPublicKey(t+".encryptionPublicKey", s.EncryptionPublicKey); err != nil {
			return nil, err
		}
	}
	return &s, nil
}

// checkSettingsIdentity checks secretArchiveSettings against the identity
// set the cluster will carry.
func checkSettingsIdentity(s *secretArchiveSettings, pl identityPlan) error {
	const t = "properties.secretArchiveSettings.associatedIdentity"
	ai := s.AssociatedIdentity
	switch ai.IdentityType {
	case identitySystemSelector:
		if ai.UserAssignedIdentityResourceID != "" {
			return badProp(t+".userAssignedIdentityResourceId",
				"The identity type SystemAssignedIdentity must not name a user-assigned identity; remove userAssignedIdentityResourceId or use UserAssignedIdentity.")
		}
		if !pl.system {
			return badProp(t+".identityType",
				"The identity type SystemAssignedIdentity requires the cluster to have a system-assigned identity (identity.type SystemAssigned).")
		}
	case identityUserSelector:
		if ai.UserAssignedIdentityResourceID == "" {
			return badProp(t+".userAssignedIdentityResourceId",
				"The identity type UserAssignedIdentity requires userAssignedIdentityResourceId.")
		}
		if err := checkResourceID(t+".userAssignedIdentityResourceId", ai.UserAssignedIdentityResourceID,
			"Microsoft.ManagedIdentity/userAssignedIdentities"); err != nil {
			return err
		}
		if _, ok := pl.user[strings.ToLower(ai.UserAssignedIdentityResourceID)]; !ok {
			return badProp(t+".userAssignedIdentityResourceId",
				"The user-assigned identity '%s' is not assigned to the cluster; add it to the cluster's identity.userAssignedIdentities first.",
				clip(ai.UserAssignedIdentityResourceID, 300))
		}
	}
	return nil
}

// checkPublicKey accepts a PEM RSA public key (PKIX or PKCS#1) of at least
// MinEncryptionKeyBits.
func checkPublicKey(target, s string) error {
	if len(s) > MaxPublicKeyPEMLength {
		return badProp(target, "The encryption public key is longer than %d bytes.", MaxPublicKeyPEMLength)
	}
	blk, _ := pem.Decode([]byte(s))
	if blk == nil {
		return badProp(target, "The encryption public key must be a PEM-encoded RSA public key.")
	}
	var pub any
	var err error
	switch blk.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(blk.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(blk.Bytes)
	default:
		return badProp(target, "The encryption public key PEM block must be 'PUBLIC KEY' or 'RSA PUBLIC KEY', not '%s'.", clip(blk.Type, 40))
	}
	if err != nil {
		return badProp(target, "The encryption public key could not be parsed.")
	}
	rk, ok := pub.(*rsa.PublicKey)
	if !ok {
		return badProp(target, "The encryption public key must be an RSA key.")
	}
	if bits := rk.N.BitLen(); bits < MinEncryptionKeyBits || bits > MaxEncryptionKeyBits {
		return badProp(target, "The encryption public key has %d bits; RSA keys of %d to %d bits are accepted.", bits, MinEncryptionKeyBits, MaxEncryptionKeyBits)
	}
	return nil
}
