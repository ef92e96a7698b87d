package databoxedge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/providers/authorization"
	"github.com/keyhaven/keyhaven/internal/providers/insights"
	"github.com/keyhaven/keyhaven/internal/providers/keyvault"
	"github.com/keyhaven/keyhaven/internal/providers/msi"
	"github.com/keyhaven/keyhaven/internal/providers/storage"
	"github.com/keyhaven/keyhaven/internal/store"
)

// dataPlaneAPIVersion is the Key Vault api-version of the CIK write.
const dataPlaneAPIVersion = "7.4"

// secretPermissions is what the device identity is granted on its vault
// (the guide: "restricted only to the Get and Set of the secret").
var secretPermissions = []string{"get", "set"}

var nonVaultChars = regexp.MustCompile(`[^a-zA-Z0-9-]+`)

// needPlatform answers 503 when the providers activation composes are not
// wired.
func (p *Provider) needPlatform() error {
	o := p.opts
	if o.Vaults == nil || o.Locks == nil || o.Accounts == nil || o.Settings == nil || o.DataPlane == nil {
		return azerr.New(http.StatusServiceUnavailable, "KeyVaultIntegrationUnavailable",
			"Key vault integration for Data Box Edge devices is not configured on this server.")
	}
	return nil
}

// authorizeVault requires that the caller may perform action on the vault
// (the guide: activation needs Contributor on the key vault); the platform
// then creates the vault, its lock, storage and diagnostic setting on the
// caller's behalf.
func (p *Provider) authorizeVault(ctx context.Context, req *arm.Request, action, vaultID string) error {
	ok, err := req.Allowed(ctx, action, vaultID)
	if err != nil {
		return azerr.From(err)
	}
	if ok {
		return nil
	}
	oid := ""
	if req.Principal != nil {
		oid = req.Principal.ObjectID
	}
	return azerr.New(http.StatusForbidden, "LinkedAuthorizationFailed",
		"The client with object id '%s' has permission to perform action '%s' on scope '%s'; however, it does not have permission to perform action '%s' on the linked scope '%s' (the device's key vault; Contributor on the key vault is needed).",
		oid, req.Action, req.Target.String(), action, vaultID)
}

// devicePrincipal is the device's system-assigned identity as a caller of
// the vault data plane.
func (p *Provider) devicePrincipal(ctx context.Context, d *deviceRecord) (*principal.Principal, error) {
	blk, err := p.ids.GetResourceIdentity(ctx, d.id().String())
	if err != nil {
		return nil, azerr.From(err)
	}
	if blk == nil || blk.PrincipalID == "" {
		return nil, azerr.Conflict("The device '%s' has no system-assigned identity; give it one (identity.type SystemAssigned).", d.Name)
	}
	obj, err := p.ids.LookupPrincipal(ctx, blk.PrincipalID)
	if err != nil {
		return nil, azerr.From(err)
	}
	return &principal.Principal{TenantID: blk.TenantID, ObjectID: obj.ObjectID, AppID: obj.AppID, Kind: principal.ManagedIdentity,
		MIResourceID: d.id().String(), Audience: "https://" + strings.ToLower(p.opts.VaultDomain)}, nil
}

func policyFor(pr *principal.Principal) authz.AccessPolicy {
	return authz.AccessPolicy{TenantID: pr.TenantID, ObjectID: pr.ObjectID,
		Permissions: authz.Permissions{Secrets: append([]string(nil), secretPermissions...)}}
}

func (p *Provider) random(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(p.opts.Rand, b); err != nil {
		return nil, fmt.Errorf("databoxedge: random: %w", err)
	}
	return b, nil
}

// defaultVaultName derives a vault name from the device name: at most 24
// characters, a letter first, a random suffix.
func (p *Provider) defaultVaultName(device string) (string, error) {
	b, err := p.random(3)
	if err != nil {
		return "", err
	}
	base := strings.Trim(nonVaultChars.ReplaceAllString(device, ""), "-")
	for strings.Contains(base, "--") {
		base = strings.ReplaceAll(base, "--", "-")
	}
	if base == "" || !(base[0] >= 'a' && base[0] <= 'z' || base[0] >= 'A' && base[0] <= 'Z') {
		base = "ase" + base
	}
	if len(base) > 17 {
		base = strings.TrimRight(base[:17], "-")
	}
	return strings.ToLower(base) + "-" + hex.EncodeToString(b), nil
}

// storageName derives the audit-log account name from the vault name.
func (p *Provider) storageName(vaultName string) (string, error) {
	b, err := p.random(4)
	if err != nil {
		return "", err
	}
	base := strings.ToLower(strings.ReplaceAll(vaultName, "-", ""))
	if len(base) > 16 {
		base = base[:16]
	}
	return base + hex.EncodeToString(b), nil
}

func vaultIDOf(d *deviceRecord, name string) arm.ResourceID {
	return arm.NewResourceID(d.SubscriptionID, d.ResourceGroup, "Microsoft.KeyVault", "vaults", name)
}

// cikName is the device's Channel Integrity Key secret name.
func cikName(d *deviceRecord) string {
	return CIKPrefix + uuid.NewSHA1(uuid.NameSpaceURL, []byte(strings.ToLower(d.id().String()))).String()
}

type vaultNameBody struct {
	KeyVaultName *string `json:"keyVaultName"`
}

func decodeVaultName(req *arm.Request) (string, error) {
	var body vaultNameBody
	if len(bytes.TrimSpace(req.Body)) > 0 {
		if err := arm.DecodeJSON(req.Body, &body); err != nil {
			return "", err
		}
	}
	name := deref(body.KeyVaultName)
	if name == "" {
		return "", nil
	}
	if err := keyvault.ValidateVaultName(name); err != nil {
		return "", badProp("keyVaultName", "The key vault name '%s' is invalid: use 3 to 24 letters, digits and hyphens, starting with a letter and ending with a letter or digit, without consecutive hyphens.", clip(name, 40))
	}
	return name, nil
}

// generateActivationKey serves POST .../generateActivationKey (keyhaven
// extension) {"keyVaultName": optional}. The first request creates what
// the guide lists, in the device's resource group; later ones only issue a
// new key: "The key vault is not accessed when you regenerate the
// activation key."
func (p *Provider) generateActivationKey(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	name, err := decodeVaultName(req)
	if err != nil {
		return nil, err
	}
	d, err := p.load(ctx, req.Target)
	if err != nil {
		return nil, err
	}
	created := false
	if d.KeyVault == nil || !d.KeyVault.Configured {
		if d.KeyVault != nil && name != "" && !strings.EqualFold(name, d.KeyVault.Name) {
			return nil, badProp("keyVaultName", "The device's key vault '%s' is being set up; keyVaultName cannot change it.", d.KeyVault.Name)
		}
		if _, err := p.setUpVault(ctx, req, d, name); err != nil {
			return nil, err
		}
		created = true
	} else if name != "" && !strings.EqualFold(name, d.KeyVault.Name) {
		return nil, arm.BadRequest("KeyVaultAlreadyConfigured",
			"The device '%s' already uses the key vault '%s'; regenerating the activation key does not change it.", d.Name, d.KeyVault.Name).WithTarget("keyVaultName")
	}
	secret, err := p.random(32)
	if err != nil {
		return nil, azerr.Internal(err)
	}
	sum := sha256.Sum256(secret)
	exp := req.Now.Add(ActivationKeyTTL)
	d, err = p.update(ctx, req.Target, func(d *deviceRecord) error {
		d.Activation = &activationKey{SecretSHA256: hex.EncodeToString(sum[:]), IssuedAt: req.Now, ExpiresAt: exp}
		return nil
	})
	if err != nil {
		return nil, err
	}
	key := ActivationKeyPrefix + "." + base64.RawURLEncoding.EncodeToString([]byte(d.id().String())) + "." +
		base64.RawURLEncoding.EncodeToString(secret)
	return arm.OK(activationKeyResult{ActivationKey: key, ExpiresOn: exp, KeyVaultName: d.KeyVault.Name,
		KeyVaultID: d.KeyVault.ResourceID, KeyVaultCreated: created}), nil
}

// setUpVault creates the device's vault with its lock, the audit-log
// storage account with its lock (one transaction, with the device's
// record of them), then the diagnostic setting and the CIK. A device whose
// setup was interrupted resumes with its recorded vault.
func (p *Provider) setUpVault(ctx context.Context, req *arm.Request, d *deviceRecord, name string) (*deviceRecord, error) {
	if err := p.needPlatform(); err != nil {
		return nil, err
	}
	dp, err := p.devicePrincipal(ctx, d)
	if err != nil {
		return nil, err
	}
	if d.KeyVault != nil {
		name = d.KeyVault.Name
	}
	if name == "" {
		if name, err = p.defaultVaultName(d.Name); err != nil {
			return nil, azerr.Internal(err)
		}
	}
	vid := vaultIDOf(d, name)
	if err := p.authorizeVault(ctx, req, "Microsoft.KeyVault/vaults/write", vid.String()); err != nil {
		return nil, err
	}
	if d.KeyVault == nil {
		if err := p.checkNameFree(ctx, name); err != nil {
			return nil, err
		}
		acct, err := p.storageName(name)
		if err != nil {
			return nil, azerr.Internal(err)
		}
		d, err = p.createVault(ctx, req, d, name, acct, dp)
		if err != nil {
			return nil, err
		}
	}
	return p.finishSetup(ctx, req, d, dp, true)
}

// checkNameFree refuses a vault name already in use, with an error that
// says why.
func (p *Provider) checkNameFree(ctx context.Context, name string) error {
	st, err := p.opts.Vaults.VaultStatus(ctx, name)
	if isStatus(err, http.StatusNotFound) {
		return nil
	}
	if err != nil {
		return azerr.From(err)
	}
	if st.Deleted {
		return azerr.New(http.StatusConflict, "KeyVaultNameInUse",
			"The key vault name '%s' is held by a soft-deleted vault until it is purged (%s); choose another keyVaultName.",
			name, st.ScheduledPurgeDate.UTC().Format(time.RFC3339)).WithTarget("keyVaultName")
	}
	return azerr.New(http.StatusConflict, "KeyVaultNameInUse",
		"The key vault name '%s' is already in use; a device's key vault cannot be one that is already in use. Choose another keyVaultName.", name).WithTarget("keyVaultName")
}

// createVault writes the vault (access-policy model, the device identity
// granted secrets Get and Set), its lock, the storage account and its lock,
// and the device's record of them, in one transaction.
func (p *Provider) createVault(ctx context.Context, req *arm.Request, d *deviceRecord, name, acct string, dp *principal.Principal) (*deviceRecord, error) {
	id := d.id()
	vid := vaultIDOf(d, name)
	var out *deviceRecord
	err := p.st.Update(ctx, func(tx store.Tx) error {
		cur, ver, err := store.GetJSON[deviceRecord](ctx, tx, keyOf(id))
		if errors.Is(err, store.ErrNotFound) {
			return arm.ResourceNotFound(id)
		}
		if err != nil {
			return err
		}
		if cur.KeyVault != nil {
			return azerr.Conflict("The device's key vault is being set up by another request; retry.")
		}
		vi, err := p.opts.Vaults.CreateVaultTx(ctx, tx, keyvault.VaultSpec{Name: name, SubscriptionID: d.SubscriptionID,
			ResourceGroup: d.ResourceGroup, Location: d.Location, TenantID: dp.TenantID,
			AccessPolicies: []authz.AccessPolicy{policyFor(dp)}, By: req.Principal}, req.Now)
		if err != nil {
			return err
		}
		link := &keyVaultLink{Name: vi.Name, ResourceID: vi.ResourceID, URI: p.opts.Vaults.VaultURI(vi.Name)}
		if err := p.lockTx(ctx, tx, vid, VaultLockName, "Key vault of Data Box Edge device "+id.String(), req.Principal); err != nil {
			return err
		}
		sid, err := p.accountTx(ctx, tx, d, name, acct, req)
		if err != nil {
			return err
		}
		link.StorageAccountID = sid
		cur.KeyVault, cur.SyncStatus = link, SyncPending
		out = cur
		_, err = store.PutJSON(ctx, tx, keyOf(id), cur, ver)
		return err
	})
	if err != nil {
		return nil, storeErr(err)
	}
	return out, nil
}

func (p *Provider) lockTx(ctx context.Context, tx store.Tx, scope arm.ResourceID, name, notes string, by *principal.Principal) error {
	_, _, err := p.opts.Locks.PutLockTx(ctx, tx, scope, name, authorization.LockProperties{Level: authorization.LockCanNotDelete, Notes: clip(notes, 500)}, by)
	return err
}

// accountTx creates the Standard_ZRS audit-log account tagged with the
// vault name, locked CanNotDelete.
func (p *Provider) accountTx(ctx context.Context, tx store.Tx, d *deviceRecord, vaultName, acct string, req *arm.Request) (string, error) {
	sid, err := p.opts.Accounts.CreateAccountTx(ctx, tx, storage.AccountSpec{Name: acct, SubscriptionID: d.SubscriptionID,
		ResourceGroup: d.ResourceGroup, Location: d.Location, SKU: "Standard_ZRS", Kind: "StorageV2",
		Tags: map[string]string{StorageVaultTag: vaultName}, By: req.Principal}, req.Now)
	if err != nil {
		return "", err
	}
	aid, err := arm.ParseResourceID(sid)
	if err != nil {
		return "", err
	}
	return sid, p.lockTx(ctx, tx, aid, StorageLockName, "Audit logs of key vault "+vaultName, req.Principal)
}

// finishSetup puts the diagnostic setting on the vault, writes the CIK when
// the device has none in this vault (or newCIK) and marks the vault
// configured.
func (p *Provider) finishSetup(ctx context.Context, req *arm.Request, d *deviceRecord, dp *principal.Principal, newCIK bool) (*deviceRecord, error) {
	kv := d.KeyVault
	if err := p.opts.Settings.PutSetting(ctx, kv.ResourceID, DiagSettingName, insights.Properties{
		StorageAccountID: kv.StorageAccountID,
		Logs:             []insights.LogSetting{{Category: "AuditEvent", Enabled: true}},
	}, req.Principal); err != nil {
		return nil, azerr.From(err)
	}
	name, version := kv.CIKName, kv.CIKVersion
	if newCIK || name == "" {
		var err error
		name = cikName(d)
		if version, err = p.writeCIK(ctx, kv.Name, name, dp); err != nil {
			return nil, err
		}
	}
	return p.update(ctx, d.id(), func(cur *deviceRecord) error {
		if cur.KeyVault == nil || !strings.EqualFold(cur.KeyVault.Name, kv.Name) {
			return azerr.Conflict("The device's key vault changed during setup; retry.")
		}
		cur.KeyVault.CIKName, cur.KeyVault.CIKVersion, cur.KeyVault.Configured = name, version, true
		if newCIK || cur.SyncStatus == "" || cur.SyncStatus == SyncNotConfigured {
			cur.SyncStatus = SyncSynced
		}
		return nil
	})
}

// writeCIK generates a Channel Integrity Key and sets it as a secret of the
// vault through the data plane, authenticated as the device's identity
// (whose access policy grants Set), so it is sealed and audited like any
// secret. It returns the secret version.
func (p *Provider) writeCIK(ctx context.Context, vaultName, name string, dp *principal.Principal) (string, error) {
	key, err := p.random(CIKBytes)
	if err != nil {
		return "", azerr.Internal(err)
	}
	body, _ := json.Marshal(map[string]any{"value": base64.StdEncoding.EncodeToString(key),
		"contentType": "application/octet-stream", "tags": map[string]string{"purpose": "ChannelIntegrityKey"}})
	status, resp := p.callVault(ctx, dp, http.MethodPut, vaultName, "/secrets/"+name, body)
	if status != http.StatusOK {
		return "", azerr.New(http.StatusConflict, "ChannelIntegrityKeyNotStored",
			"The channel integrity key could not be stored in key vault '%s' (the data plane answered %d: %s).", vaultName, status, clip(string(resp), 300))
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(resp, &out); err != nil {
		return "", azerr.Internal(err)
	}
	return out.ID[strings.LastIndex(out.ID, "/")+1:], nil
}

// callVault sends one in-process data-plane request as pr. The request has
// its own principal.Info, so the ARM request's audit record is untouched.
func (p *Provider) callVault(ctx context.Context, pr *principal.Principal, method, vaultName, path string, body []byte) (int, []byte) {
	base := strings.TrimRight(p.opts.Vaults.VaultURI(vaultName), "/")
	r := httptest.NewRequestWithContext(ctx, method, base+path+"?api-version="+dataPlaneAPIVersion, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	info := &principal.Info{Principal: pr, RequestID: uuid.NewString(), ClientIP: "127.0.0.1", UserAgent: "keyhaven-databoxedge"}
	if pi := principal.InfoFrom(ctx); pi.RequestID != "" {
		info.CorrelationID = pi.RequestID
	}
	r = r.WithContext(principal.WithInfo(ctx, info))
	w := httptest.NewRecorder()
	p.opts.DataPlane.ServeVault(w, r, vaultName, base)
	return w.Code, w.Body.Bytes()
}

// Activation is what redeeming an activation key gives a device agent.
type Activation struct {
	DeviceID   string
	KeyVaultID string
	VaultURI   string
	CIKName    string
	// Workload is the device identity's workload secret for the
	// managed-identity endpoint.
	Workload *msi.WorkloadSecret
}

// ErrInvalidActivationKey is the answer to a key that does not parse, is
// unknown, expired or already used.
var ErrInvalidActivationKey = azerr.New(http.StatusUnauthorized, "InvalidActivationKey",
	"The activation key is invalid, expired or already used; generate a new one.")

// ParseActivationKey splits an activation key into the device resource ID
// and its one-time secret.
func ParseActivationKey(key string) (arm.ResourceID, []byte, error) {
	parts := strings.Split(strings.TrimSpace(key), ".")
	if len(parts) != 3 || parts[0] != ActivationKeyPrefix {
		return arm.ResourceID{}, nil, ErrInvalidActivationKey
	}
	rid, err1 := base64.RawURLEncoding.DecodeString(parts[1])
	secret, err2 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || len(secret) != 32 {
		return arm.ResourceID{}, nil, ErrInvalidActivationKey
	}
	id, err := arm.ParseResourceID(string(rid))
	if err != nil || !strings.EqualFold(id.ResourceType(), DeviceType) {
		return arm.ResourceID{}, nil, ErrInvalidActivationKey
	}
	return id, secret, nil
}

// RedeemActivationKey is the device agent's side of activation (its route
// is a follow-up): a valid, unexpired key is used up, the device becomes
// Online, and the agent gets its identity's workload secret.
func (p *Provider) RedeemActivationKey(ctx context.Context, key string) (*Activation, error) {
	id, secret, err := ParseActivationKey(key)
	if err != nil {
		return nil, err
	}
	if p.opts.Workloads == nil {
		return nil, azerr.New(http.StatusServiceUnavailable, "ManagedIdentityUnavailable", "Workload secrets are not configured on this server.")
	}
	sum := sha256.Sum256(secret)
	now := p.clk.Now()
	d, err := p.update(ctx, id, func(d *deviceRecord) error {
		a := d.Activation
		if a == nil || !now.Before(a.ExpiresAt) || d.KeyVault == nil {
			return ErrInvalidActivationKey
		}
		want, err := hex.DecodeString(a.SecretSHA256)
		if err != nil || subtle.ConstantTimeCompare(want, sum[:]) != 1 {
			return ErrInvalidActivationKey
		}
		d.Activation, d.ActivatedAt = nil, &now
		return nil
	})
	if isStatus(err, http.StatusNotFound) {
		return nil, ErrInvalidActivationKey
	}
	if err != nil {
		return nil, err
	}
	ws, err := p.opts.Workloads.IssueWorkloadSecretFor(ctx, d.id().String())
	if err != nil {
		return nil, azerr.From(err)
	}
	return &Activation{DeviceID: d.id().String(), KeyVaultID: d.KeyVault.ResourceID, VaultURI: d.KeyVault.URI,
		CIKName: d.KeyVault.CIKName, Workload: ws}, nil
}
