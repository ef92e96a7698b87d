package databoxedge

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/principal"
)

// The device side: the activation route a device agent redeems its key at,
// the device identity's narrow permission on its own device, and the
// operator's "Sync device secrets".

// Device secret names (the spec's DeviceSecretName values) the agent keeps
// in the vault.
const (
	SecretBitLockerRecoveryKey = "SystemVolumeBitLockerRecoveryKey"
	SecretBMCPassword          = "BMCDefaultUserPassword"
	// SecretChannelIntegrityKey is the deviceSecrets entry of the CIK
	// (keyhaven; the CIK is also channelIntegrityKeyName).
	SecretChannelIntegrityKey = "ChannelIntegrityKey"
)

// deviceSecretNames are the spec's DeviceSecretName values a device may
// report a vault reference for.
var deviceSecretNames = []string{
	SecretBMCPassword, "HcsDataVolumeBitLockerExternalKey", "HcsInternalVolumeBitLockerExternalKey",
	"RotateKeyForDataVolumeBitlocker", "RotateKeysForSedDrivesSerialized", "SEDEncryptionExternalKey",
	"SEDEncryptionExternalKeyId", SecretBitLockerRecoveryKey,
}

// agentSecrets are the device secrets the keyhaven agent holds, with the
// prefix of their vault secret names.
var agentSecrets = map[string]string{SecretBitLockerRecoveryKey: "ase-bitlocker-", SecretBMCPassword: "ase-bmc-"}

// ActionSyncDeviceSecrets is the operator's "Sync device secrets"
// (keyhaven extension): keyVaultSyncStatus becomes KeyVaultSyncPending and
// the device agent pushes every device secret on its next pass.
const ActionSyncDeviceSecrets = "syncDeviceSecrets"

// OperationActivate names a redemption in the audit log.
const OperationActivate = "DataBoxEdgeDeviceActivate"

// ActivationPath is the route of the activation exchange on the server.
const ActivationPath = "/edge/activate"

// Limits of the activation route.
const (
	maxActivationBody = 4 << 10
	activationBurst   = 10
	activationRefill  = 6 * time.Second // one more attempt per client every 6s
	maxLimiterClients = 4096
)

// deviceSecretName is the vault secret name of a device secret.
func deviceSecretName(d *deviceRecord, secret string) string {
	return agentSecrets[secret] + uuid.NewSHA1(uuid.NameSpaceURL, []byte(strings.ToLower(d.id().String()))).String()
}

// selfActions are what a device's own system-assigned identity may do on
// its own device without a role assignment.
var selfActions = []string{
	DeviceType + "/" + ActionGetExtendedInfo + "/action",
	DeviceType + "/" + ActionUpdateExtendedInfo + "/action",
}

// SelfDecider wraps next with one narrow rule: a device's own
// system-assigned identity may get and update its own device's extended
// information (the device agent reads keyVaultSyncStatus and reports its
// sync). The token's identity must be a managed identity whose resource is
// exactly the device (a user-assigned identity's resource is the identity
// itself, so it never matches); every other request goes to next.
func SelfDecider(next authz.Decider) authz.Decider { return selfDecider{next} }

type selfDecider struct{ next authz.Decider }

func (s selfDecider) Decide(ctx context.Context, req authz.Request) (authz.Decision, error) {
	if p := req.Principal; p != nil && !req.DataAction && p.Kind == principal.ManagedIdentity && p.MIResourceID != "" &&
		strings.EqualFold(p.MIResourceID, req.Scope) {
		for _, a := range selfActions {
			if strings.EqualFold(req.Action, a) {
				if id, err := arm.ParseResourceID(req.Scope); err == nil && strings.EqualFold(id.ResourceType(), DeviceType) {
					return authz.Decision{Allowed: true, Reason: "a device's own system-assigned identity may get and update its extended information"}, nil
				}
			}
		}
	}
	return s.next.Decide(ctx, req)
}

// syncDeviceSecrets serves POST .../syncDeviceSecrets: the portal's "Sync
// device secrets". The device agent pushes its secrets on its next pass.
func (p *Provider) syncDeviceSecrets(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	d, err := p.update(ctx, req.Target, func(d *deviceRecord) error {
		if d.KeyVault == nil {
			return azerr.New(http.StatusConflict, "KeyVaultNotConfigured",
				"The device '%s' has no key vault yet; generate an activation key to create it.", d.Name)
		}
		if d.ActivatedAt == nil {
			return azerr.New(http.StatusConflict, "DeviceNotActivated",
				"The device '%s' is not activated: there is no device agent to push its secrets yet.", d.Name)
		}
		requestSync(d)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p.extendedResponse(ctx, d)
}

// requestSync asks the device agent to push its secrets: status
// KeyVaultSyncPending under a new request id. The agent echoes the id it
// saw with its KeyVaultSynced report, so a report of a push that began
// before this request does not clear it.
func requestSync(d *deviceRecord) {
	d.SyncStatus, d.SyncError, d.SyncRequest = SyncPending, "", uuid.NewString()
}

// Endpoints are what a device agent is told on activation besides its
// secret: where to get tokens and for which audiences.
type Endpoints struct {
	// ResourceManager is the ARM base URL (the audience of the token for
	// getExtendedInformation / updateExtendedInformation).
	ResourceManager string
	// IdentityEndpoint is the managed-identity endpoint a device reaches
	// (the HTTPS front door's /msi/token); "" uses the workload secret's.
	IdentityEndpoint string
	// VaultAudience is the data plane's token audience.
	VaultAudience string
}

// ActivationResponse is the answer of the activation route: everything the
// device agent needs, shown once. IdentityHeader is the device identity's
// workload secret (the App Service protocol's IDENTITY_HEADER).
type ActivationResponse struct {
	DeviceID                string            `json:"deviceId"`
	TenantID                string            `json:"tenantId"`
	ClientID                string            `json:"clientId"`
	PrincipalID             string            `json:"principalId"`
	ResourceManager         string            `json:"resourceManager"`
	IdentityEndpoint        string            `json:"identityEndpoint"`
	IdentityHeader          string            `json:"identityHeader"`
	VaultAudience           string            `json:"vaultAudience"`
	KeyVaultID              string            `json:"keyVaultId"`
	KeyVaultURI             string            `json:"keyVaultUri"`
	ChannelIntegrityKeyName string            `json:"channelIntegrityKeyName"`
	DeviceSecretNames       map[string]string `json:"deviceSecretNames"`
}

// ActivationHandler serves POST /edge/activate {"activationKey": "..."}:
// the device presents its activation key once (no bearer token: the key is
// the credential) and gets its ActivationResponse. Bodies are limited to
// 4 KiB and each client address to 10 attempts, then one every 6 seconds
// (429 with Retry-After). The request is audited by the server's audit
// middleware as one DataBoxEdgeDeviceActivate event naming the device (on
// success, with the device identity as the caller); neither the key nor the
// workload secret is recorded: the event holds metadata only.
func (p *Provider) ActivationHandler(ep Endpoints) http.Handler {
	lim := newAttemptLimiter(p.clk.Now)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := principal.InfoFrom(r.Context())
		info.OperationName = OperationActivate
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		fail := func(e *azerr.Error) {
			info.ResultDescription = e.Message
			azerr.Write(w, e)
		}
		if r.URL.Path != ActivationPath {
			fail(azerr.NotFound("NotFound", "No handler for path %s.", clip(r.URL.Path, 100)))
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			fail(azerr.New(http.StatusMethodNotAllowed, "MethodNotAllowed", "Only POST is served at %s.", ActivationPath))
			return
		}
		ip := info.ClientIP
		if ip == "" {
			ip, _, _ = net.SplitHostPort(r.RemoteAddr)
		}
		if wait, ok := lim.allow(ip); !ok {
			e := azerr.New(http.StatusTooManyRequests, "TooManyRequests", "Too many activation attempts from this address; retry later.")
			e.RetryAfterMS = wait.Milliseconds()
			fail(e)
			return
		}
		if r.ContentLength > maxActivationBody {
			fail(azerr.New(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "The request content size exceeds the maximum of %d bytes.", maxActivationBody))
			return
		}
		b, err := io.ReadAll(io.LimitReader(r.Body, maxActivationBody+1))
		if err != nil || len(b) > maxActivationBody {
			fail(azerr.New(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "The request content size exceeds the maximum of %d bytes.", maxActivationBody))
			return
		}
		var body struct {
			ActivationKey string `json:"activationKey"`
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil || dec.More() || body.ActivationKey == "" {
			fail(arm.BadRequest("InvalidRequestContent", "The request body must be {\"activationKey\": \"...\"}."))
			return
		}
		out, err := p.activate(r.Context(), body.ActivationKey, ep, info)
		if err != nil {
			fail(azerr.From(err))
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_ = json.NewEncoder(w).Encode(out)
	})
}

// activate redeems key and composes the answer; it names the device (and
// its identity as the caller) in info for the audit event.
func (p *Provider) activate(ctx context.Context, key string, ep Endpoints, info *principal.Info) (*ActivationResponse, error) {
	if len(key) > 1024 {
		return nil, ErrInvalidActivationKey
	}
	a, err := p.RedeemActivationKey(ctx, key)
	if err != nil {
		return nil, err
	}
	id, err := arm.ParseResourceID(a.DeviceID)
	if err != nil {
		return nil, azerr.Internal(err)
	}
	info.ResourceID, info.ObjectID = a.DeviceID, a.DeviceID
	d, err := p.load(ctx, id)
	if err != nil {
		return nil, err
	}
	dp, err := p.devicePrincipal(ctx, d)
	if err != nil {
		return nil, err
	}
	dp.Audience = ""
	info.Principal = dp
	names := map[string]string{}
	for s := range agentSecrets {
		names[s] = deviceSecretName(d, s)
	}
	endpoint := ep.IdentityEndpoint
	if endpoint == "" {
		endpoint = a.Workload.IdentityEndpoint
	}
	if endpoint == "" {
		return nil, azerr.New(http.StatusServiceUnavailable, "ManagedIdentityUnavailable", "The managed-identity endpoint is not configured on this server.")
	}
	aud := ep.VaultAudience
	if aud == "" {
		aud = "https://" + strings.ToLower(p.opts.VaultDomain)
	}
	return &ActivationResponse{DeviceID: a.DeviceID, TenantID: dp.TenantID, ClientID: a.Workload.ClientID,
		PrincipalID: a.Workload.PrincipalID, ResourceManager: strings.TrimRight(ep.ResourceManager, "/"),
		IdentityEndpoint: endpoint, IdentityHeader: a.Workload.IdentityHeader, VaultAudience: aud,
		KeyVaultID: a.KeyVaultID, KeyVaultURI: strings.TrimRight(a.VaultURI, "/"), ChannelIntegrityKeyName: a.CIKName,
		DeviceSecretNames: names}, nil
}

// attemptLimiter is a token bucket per client address, bounded in size.
type attemptLimiter struct {
	now     func() time.Time
	mu      sync.Mutex
	clients map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newAttemptLimiter(now func() time.Time) *attemptLimiter {
	return &attemptLimiter{now: now, clients: map[string]*bucket{}}
}

// allow takes one attempt for ip, or says how long to wait.
func (l *attemptLimiter) allow(ip string) (time.Duration, bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.clients[ip]
	if b == nil {
		if len(l.clients) >= maxLimiterClients {
			// Forget the clients whose bucket is full again; if none, refuse
			// newcomers rather than grow without bound.
			for k, c := range l.clients {
				if now.Sub(c.at) >= activationRefill*activationBurst {
					delete(l.clients, k)
				}
			}
			if len(l.clients) >= maxLimiterClients {
				return activationRefill, false
			}
		}
		b = &bucket{tokens: activationBurst, at: now}
		l.clients[ip] = b
	}
	b.tokens = min(activationBurst, b.tokens+float64(now.Sub(b.at))/float64(activationRefill))
	b.at = now
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) * float64(activationRefill)), false
	}
	b.tokens--
	return 0, true
}

// deviceSecretsPatch is the keyhaven extension of
// DataBoxEdgeDeviceExtendedInfoPatch: the device reports where it stored
// its secrets ({name: {"keyVaultId": secret id}}); values are refused.
type deviceSecretPatch struct {
	KeyVaultID      *string         `json:"keyVaultId"`
	EncryptedSecret json.RawMessage `json:"encryptedSecret"`
}

// checkDeviceSecrets validates reported references against the device's
// vault: known names, secret IDs inside the vault, never a value.
func checkDeviceSecrets(kv *keyVaultLink, in map[string]deviceSecretPatch) (map[string]string, error) {
	if len(in) > len(deviceSecretNames) {
		return nil, badProp("deviceSecrets", "At most %d device secrets can be reported.", len(deviceSecretNames))
	}
	if kv == nil {
		return nil, azerr.Conflict("The device has no key vault yet; generate an activation key first.")
	}
	prefix := strings.ToLower(strings.TrimRight(kv.URI, "/")) + "/secrets/"
	out := map[string]string{}
	for name, s := range in {
		canon, err := pick(deviceSecretNames, name, "deviceSecrets")
		if err != nil {
			return nil, err
		}
		if len(s.EncryptedSecret) > 0 && string(s.EncryptedSecret) != "null" {
			return nil, badProp("deviceSecrets."+canon+".encryptedSecret", "Device secret values are kept in the key vault only; report the secret's keyVaultId.")
		}
		ref := deref(s.KeyVaultID)
		var segs []string
		if len(ref) <= 512 && strings.HasPrefix(strings.ToLower(ref), prefix) {
			segs = strings.Split(ref[len(prefix):], "/")
		}
		if len(segs) != 2 || !objectNameRe.MatchString(segs[0]) || !versionRe.MatchString(segs[1]) {
			return nil, badProp("deviceSecrets."+canon+".keyVaultId", "The keyVaultId must be a secret version of the device's key vault: %s{name}/{version}.", prefix)
		}
		out[canon] = strings.TrimRight(kv.URI, "/") + "/secrets/" + segs[0] + "/" + segs[1]
	}
	return out, nil
}

// syncErrorText keeps a device's failure reason short and printable.
func syncErrorText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return clip(strings.TrimSpace(s), 500)
}

var (
	objectNameRe = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
	versionRe    = regexp.MustCompile(`^[0-9a-zA-Z]{1,64}$`)
)
