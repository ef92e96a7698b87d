package edge

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Key vault sync status values (the spec's KeyVaultSyncStatus).
const (
	SyncSynced  = "KeyVaultSynced"
	SyncFailed  = "KeyVaultSyncFailed"
	SyncPending = "KeyVaultSyncPending"
)

// ActivationPath is the server's activation route.
const ActivationPath = "/edge/activate"

// ActivateOptions are the inputs of Activate.
type ActivateOptions struct {
	Server        string // https://host[:port] of keyhaven
	CAFile        string // PEM of the server's CA; "" trusts the system roots
	ActivationKey string
	StateDir      string
	// HTTPClient overrides the client built from Server and CAFile (tests).
	HTTPClient *http.Client
	// Rand is the source of the device key and secrets (default crypto/rand).
	Rand io.Reader
	Now  func() time.Time
}

// Activation is what Activate reports (nothing secret).
type Activation struct {
	DeviceID         string   `json:"deviceId"`
	KeyVaultID       string   `json:"keyVaultId"`
	KeyVaultURI      string   `json:"keyVaultUri"`
	IdentityEndpoint string   `json:"identityEndpoint"`
	DeviceSecrets    []string `json:"deviceSecrets"`
	StateDir         string   `json:"stateDir"`
}

// activationAnswer is the server's answer (databoxedge.ActivationResponse).
type activationAnswer struct {
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

// vaultDomainOf is the DNS suffix of a vault URI (https://{vault}.{domain}),
// "" for the path form (https://host/vaults/{vault}).
func vaultDomainOf(vaultURI string) string {
	u, err := url.Parse(vaultURI)
	if err != nil || strings.HasPrefix(strings.Trim(u.Path, "/"), "vaults/") {
		return ""
	}
	_, dom, ok := strings.Cut(u.Hostname(), ".")
	if !ok {
		return ""
	}
	return dom
}

// Activate redeems the activation key and writes the state directory. The
// device key and secrets are made before the key is redeemed, so a failure
// after it is only a failure to write the directory.
func Activate(ctx context.Context, o ActivateOptions) (*Activation, error) {
	if o.StateDir == "" || o.Server == "" || strings.TrimSpace(o.ActivationKey) == "" {
		return nil, errors.New("edge: --server, --activation-key and --state-dir are required")
	}
	rnd := o.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	server := strings.TrimRight(o.Server, "/")
	var caPEM []byte
	if o.CAFile != "" {
		var err error
		if caPEM, err = os.ReadFile(o.CAFile); err != nil {
			return nil, fmt.Errorf("edge: CA file: %w", err)
		}
	}
	hc := o.HTTPClient
	if hc == nil {
		var err error
		if hc, err = newHTTPClient(server, caPEM, ""); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(o.StateDir, StateFile)); err == nil {
		return nil, fmt.Errorf("edge: %s already holds an activated device; use another --state-dir", o.StateDir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(o.StateDir); err != nil {
		return nil, err
	} else if err := checkPrivate(o.StateDir, fi); err != nil {
		return nil, err
	}
	key := make([]byte, keySize)
	if _, err := io.ReadFull(rnd, key); err != nil {
		return nil, fmt.Errorf("edge: random: %w", err)
	}
	secrets, err := generateSecrets(rnd)
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]string{"activationKey": strings.TrimSpace(o.ActivationKey)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, server+ActivationPath, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	c := &client{hc: hc}
	status, b, err := c.do(req)
	if err != nil {
		return nil, fmt.Errorf("edge: activation request: %w", err)
	}
	if status != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		return nil, &APIError{Op: "activate", Status: status, Code: e.Error.Code, Message: e.Error.Message}
	}
	var ans activationAnswer
	if err := json.Unmarshal(b, &ans); err != nil || ans.DeviceID == "" || ans.IdentityHeader == "" || ans.KeyVaultURI == "" {
		return nil, errors.New("edge: the activation answer is incomplete")
	}
	for name := range secrets {
		if ans.DeviceSecretNames[name] == "" {
			return nil, fmt.Errorf("edge: the server named no vault secret for %s", name)
		}
	}
	s, err := newSealer(key, ans.DeviceID)
	if err != nil {
		return nil, err
	}
	st := &State{Version: stateVersion, Server: server, DeviceID: ans.DeviceID, TenantID: ans.TenantID, ClientID: ans.ClientID,
		PrincipalID: ans.PrincipalID, ResourceManager: ans.ResourceManager, IdentityEndpoint: ans.IdentityEndpoint,
		VaultAudience: ans.VaultAudience, KeyVaultID: ans.KeyVaultID, KeyVaultURI: strings.TrimRight(ans.KeyVaultURI, "/"),
		CIKName: ans.ChannelIntegrityKeyName, SecretNames: ans.DeviceSecretNames, ActivatedAt: now().UTC()}
	if st.Sealed.IdentityHeader, err = s.seal(fieldIdentityHeader, []byte(ans.IdentityHeader)); err != nil {
		return nil, err
	}
	if st.Sealed.DeviceSecrets, err = s.sealJSON(fieldDeviceSecrets, secrets); err != nil {
		return nil, err
	}
	if err := writePrivate(filepath.Join(o.StateDir, KeyFile), key); err != nil {
		return nil, fmt.Errorf("edge: write device key: %w", err)
	}
	if len(caPEM) > 0 {
		if err := writePrivate(filepath.Join(o.StateDir, CAFile), caPEM); err != nil {
			return nil, err
		}
	}
	store := &store{dir: o.StateDir, state: st, seal: s}
	if err := store.save(); err != nil {
		return nil, fmt.Errorf("edge: write device state: %w", err)
	}
	names := make([]string, 0, len(secrets))
	for n := range secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	return &Activation{DeviceID: st.DeviceID, KeyVaultID: st.KeyVaultID, KeyVaultURI: st.KeyVaultURI,
		IdentityEndpoint: st.IdentityEndpoint, DeviceSecrets: names, StateDir: o.StateDir}, nil
}

// Options configure an Agent.
type Options struct {
	// HTTPClient overrides the client built from the state (tests).
	HTTPClient *http.Client
	Logger     *slog.Logger
	Now        func() time.Time
}

// Agent runs a device from its state directory.
type Agent struct {
	st  *store
	c   *client
	log *slog.Logger
	now func() time.Time
}

// Open loads the state directory.
func Open(stateDir string, o Options) (*Agent, error) {
	st, err := openStore(stateDir)
	if err != nil {
		return nil, err
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hc := o.HTTPClient
	if hc == nil {
		ca, err := os.ReadFile(filepath.Join(stateDir, CAFile))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if hc, err = newHTTPClient(st.state.Server, ca, vaultDomainOf(st.state.KeyVaultURI)); err != nil {
			return nil, err
		}
	}
	a := &Agent{st: st, log: log, now: now}
	a.c = &client{hc: hc, endpoint: st.state.IdentityEndpoint, header: st.identityHeader, now: now, tokens: map[string]token{}}
	return a, nil
}

// State is a copy of the agent's state (sealed fields stay sealed).
func (a *Agent) State() State { return *a.st.state }

// Result is the outcome of a pass; it never holds a secret value.
type Result struct {
	// Status is what the pass found or reported: KeyVaultSynced or
	// KeyVaultSyncFailed.
	Status string `json:"status"`
	// ServiceStatus is the keyVaultSyncStatus the service showed before the
	// pass.
	ServiceStatus string   `json:"serviceStatus"`
	Pushed        []string `json:"pushed"`
	Reason        string   `json:"reason,omitempty"`
	KeyVaultURI   string   `json:"keyVaultUri"`
	Reported      bool     `json:"reported"`
}

// extendedInfo is the part of DataBoxEdgeDeviceExtendedInfo the agent reads.
type extendedInfo struct {
	Properties struct {
		ClientSecretStoreID     string `json:"clientSecretStoreId"`
		ClientSecretStoreURL    string `json:"clientSecretStoreUrl"`
		ChannelIntegrityKeyName string `json:"channelIntegrityKeyName"`
		KeyVaultSyncStatus      string `json:"keyVaultSyncStatus"`
		// KeyVaultSyncRequestID names a pending request to push (keyhaven);
		// the agent echoes it with its KeyVaultSynced report.
		KeyVaultSyncRequestID string `json:"keyVaultSyncRequestId"`
	} `json:"properties"`
}

func (a *Agent) armURL(action string) string {
	return strings.TrimRight(a.st.state.ResourceManager, "/") + a.st.state.DeviceID + "/" + action + "?api-version=" + armAPIVersion
}

func (a *Agent) secretURL(name string) string {
	return strings.TrimRight(a.st.state.KeyVaultURI, "/") + "/secrets/" + url.PathEscape(name) + "?api-version=" + vaultAPIVersion
}

// Pass runs one pass (see the package documentation). An error means the
// pass could not reach the service at all (nothing was reported); a sync
// failure is a Result with Status KeyVaultSyncFailed, reported.
func (a *Agent) Pass(ctx context.Context) (*Result, error) {
	st := a.st.state
	var ext extendedInfo
	if err := a.c.call(ctx, "getExtendedInformation", http.MethodPost, a.armURL("getExtendedInformation"), st.ResourceManager, nil, &ext); err != nil {
		return nil, err
	}
	p := ext.Properties
	if p.ClientSecretStoreURL != "" && !strings.EqualFold(strings.TrimRight(p.ClientSecretStoreURL, "/"), st.KeyVaultURI) {
		a.log.Info("edge: the device's key vault changed", "from", st.KeyVaultURI, "to", p.ClientSecretStoreURL)
		st.KeyVaultURI, st.KeyVaultID = strings.TrimRight(p.ClientSecretStoreURL, "/"), p.ClientSecretStoreID
		st.CIKVersion, st.Sealed.ChannelIntegrityKey = "", ""
	}
	if p.ChannelIntegrityKeyName != "" {
		st.CIKName = p.ChannelIntegrityKeyName
	}
	res := &Result{ServiceStatus: p.KeyVaultSyncStatus, KeyVaultURI: st.KeyVaultURI, Pushed: []string{}}
	last := st.LastSync
	push := p.KeyVaultSyncStatus != SyncSynced || last == nil || last.Status != SyncSynced || !strings.EqualFold(last.KeyVaultURI, st.KeyVaultURI)
	var ids map[string]string
	var failure error
	if push {
		ids, failure = a.push(ctx)
		if failure == nil {
			for n := range ids {
				res.Pushed = append(res.Pushed, n)
			}
			sort.Strings(res.Pushed)
		}
	}
	if failure == nil {
		failure = a.readCIK(ctx)
	}
	rec := &SyncRecord{Time: a.now().UTC(), KeyVaultURI: st.KeyVaultURI, SecretIDs: ids}
	if !push && last != nil {
		rec.SecretIDs = last.SecretIDs
	}
	if failure != nil {
		res.Status, res.Reason = SyncFailed, failure.Error()
		rec.Status, rec.Reason = SyncFailed, res.Reason
		a.log.Warn("edge: key vault sync failed", "device", st.DeviceID, "vault", st.KeyVaultURI, "reason", res.Reason)
		st.LastSync = rec
		if err := a.report(ctx, map[string]any{"syncStatus": SyncFailed, "keyVaultSyncError": res.Reason}); err != nil {
			_ = a.st.save()
			return res, fmt.Errorf("report KeyVaultSyncFailed: %w", err)
		}
		res.Reported = true
		return res, a.st.save()
	}
	res.Status, rec.Status = SyncSynced, SyncSynced
	st.LastSync = rec
	if push {
		refs := map[string]any{}
		for n, id := range ids {
			refs[n] = map[string]string{"keyVaultId": id}
		}
		body := map[string]any{"syncStatus": SyncSynced, "deviceSecrets": refs, "keyVaultSyncRequestId": p.KeyVaultSyncRequestID}
		if st.CIKVersion != "" {
			body["channelIntegrityKeyVersion"] = st.CIKVersion
		}
		if err := a.report(ctx, body); err != nil {
			// Not reported: the next pass pushes again.
			rec.Status = SyncFailed
			_ = a.st.save()
			return res, fmt.Errorf("report KeyVaultSynced: %w", err)
		}
		res.Reported = true
		a.log.Info("edge: device secrets pushed", "device", st.DeviceID, "vault", st.KeyVaultURI, "secrets", strings.Join(res.Pushed, ","))
	}
	return res, a.st.save()
}

// push sets every device secret in the vault; it returns their IDs.
func (a *Agent) push(ctx context.Context) (map[string]string, error) {
	secrets, err := a.st.deviceSecrets()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(secrets))
	for n := range secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	ids := map[string]string{}
	for _, n := range names {
		vaultName := a.st.state.SecretNames[n]
		if vaultName == "" {
			return nil, fmt.Errorf("no vault secret name for %s", n)
		}
		body := map[string]any{"value": secrets[n], "contentType": "text/plain",
			"tags": map[string]string{"deviceSecret": n, "device": deviceName(a.st.state.DeviceID)}}
		var out struct {
			ID string `json:"id"`
		}
		if err := a.c.call(ctx, "SecretSet "+n, http.MethodPut, a.secretURL(vaultName), a.st.state.VaultAudience, body, &out); err != nil {
			return nil, err
		}
		ids[n] = out.ID
	}
	return ids, nil
}

// readCIK gets the Channel Integrity Key and keeps it, sealed.
func (a *Agent) readCIK(ctx context.Context) error {
	st := a.st.state
	if st.CIKName == "" {
		return errors.New("the service named no channel integrity key")
	}
	var out struct {
		ID    string `json:"id"`
		Value string `json:"value"`
	}
	if err := a.c.call(ctx, "SecretGet "+st.CIKName, http.MethodGet, a.secretURL(st.CIKName), st.VaultAudience, nil, &out); err != nil {
		return err
	}
	return a.st.setCIK(out.Value, out.ID[strings.LastIndex(out.ID, "/")+1:])
}

func (a *Agent) report(ctx context.Context, body map[string]any) error {
	return a.c.call(ctx, "updateExtendedInformation", http.MethodPost, a.armURL("updateExtendedInformation"), a.st.state.ResourceManager, body, nil)
}

func deviceName(id string) string { return id[strings.LastIndex(id, "/")+1:] }

// Run runs a pass now and then every interval until ctx is done; failed
// passes are logged and retried at the next tick.
func (a *Agent) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return errors.New("edge: the interval must be positive")
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		res, err := a.Pass(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			a.log.Error("edge: pass failed", "err", err)
		case res != nil:
			a.log.Debug("edge: pass", "status", res.Status, "pushed", len(res.Pushed))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
