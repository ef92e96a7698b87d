package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/audit"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/identity"
	"github.com/keyhaven/keyhaven/internal/providers/authorization"
	"github.com/keyhaven/keyhaven/internal/providers/databoxedge"
	"github.com/keyhaven/keyhaven/internal/providers/insights"
	"github.com/keyhaven/keyhaven/internal/providers/keyvault"
	"github.com/keyhaven/keyhaven/internal/providers/msi"
	"github.com/keyhaven/keyhaven/internal/providers/networkcloud"
	"github.com/keyhaven/keyhaven/internal/providers/storage"
	"github.com/keyhaven/keyhaven/internal/seal"
	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/vault"
)

// bootstrapNS derives stable ids for bootstrap objects, so every start and
// every replica computes the same ones (bootstrap is idempotent).
var bootstrapNS = uuid.MustParse("6f1f8d3e-2b7a-4c1e-9a55-4b8e2c7d9f10")

// AdminCredentials is the file written once on first start.
type AdminCredentials struct {
	TenantID       string `json:"tenantId"`
	Username       string `json:"username"`
	Password       string `json:"password"`
	Server         string `json:"server"`
	CAFile         string `json:"caFile,omitempty"`
	SubscriptionID string `json:"subscriptionId"`
}

// Run builds keyhaven from cfg and serves until ctx is done.
func Run(ctx context.Context, cfg Config, stdout, stderr io.Writer) error {
	log := NewLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	clk := clock.Real{}
	m := newMetrics()

	unlock, err := lockDataDir(cfg.DataDir, false)
	if err != nil {
		return err
	}
	defer unlock()
	raw, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer raw.Close()
	var st store.Store = instrumentedStore{Store: raw, h: m.storeLat}

	root, err := openRoot(cfg, log)
	if err != nil {
		return err
	}
	sealer := seal.NewEnvelope(st, root)

	tlsMat, err := tlsMaterial(cfg, clk)
	if err != nil {
		return fmt.Errorf("TLS: %w", err)
	}

	engine := authz.New(st, clk)
	ids, err := identity.New(st, sealer, clk, identity.Options{BaseURL: cfg.BaseURL()})
	if err != nil {
		return err
	}
	boot, err := ids.Bootstrap(ctx)
	if err != nil {
		return fmt.Errorf("bootstrap identity: %w", err)
	}

	// A Data Box Edge device's own identity may get and update its own
	// device's extended information (databoxedge.SelfDecider); everything
	// else is the engine's.
	armSrv := arm.New(st, databoxedge.SelfDecider(engine), clk, arm.Options{
		BaseURL: cfg.BaseURL(), TenantID: boot.TenantID, MaxBodyBytes: cfg.MaxBodyBytes,
		Locations: append(append([]string{}, cfg.Locations...), arm.DefaultLocations...), Logger: log,
		OperationLeaseTTL: cfg.OperationLeaseTTL,
	})
	kvp := keyvault.New(st, clk, keyvault.Options{VaultDomain: cfg.VaultDomain, VaultPort: cfg.PublicPort})
	armSrv.Register(kvp)
	vaults, err := vault.New(vault.Config{
		Store: st, Sealer: sealer, Directory: kvp, Decider: engine, Clock: clk,
		VaultDomain: cfg.VaultDomain, Port: cfg.PublicPort, AuthorityBase: cfg.BaseURL(),
		Throttle: vault.Throttle{Transactions: cfg.ThrottleTransactions, Creates: cfg.ThrottleCreates},
	})
	if err != nil {
		return err
	}
	kvp.SetDataPurger(vaults)
	miEndpoint := ""
	if cfg.MIListen != "" {
		miEndpoint = "http://" + cfg.MIListen + "/msi/token"
	}
	mp := msi.New(ids, engine, st, clk, msi.Options{MIEndpoint: miEndpoint, Tenants: armSrv})
	armSrv.Register(mp)
	ncp := networkcloud.New(st, clk, ids, kvp, networkcloud.Options{
		VaultDomain: cfg.VaultDomain, VaultPort: cfg.PublicPort, Tenants: armSrv, Logger: log,
	})
	armSrv.Register(ncp)
	stp := storage.New(st, clk, storage.Options{Logger: log, Identities: ids})
	armSrv.Register(stp)
	resourceExists := authorization.ExistsVia(kvp, mp, stp, ncp)
	insp := insights.New(st, clk, insights.Options{
		Storage: stp, Decider: engine, Logger: log,
		ResourceExists: func(ctx context.Context, id string) (bool, error) {
			rid, err := arm.ParseResourceID(id)
			if err != nil {
				return false, nil
			}
			return resourceExists(ctx, rid)
		},
	})
	armSrv.Register(insp)
	authzP := authorization.New(engine, st, clk, authorization.Options{
		ResourceExists: resourceExists,
		PrincipalExists: func(ctx context.Context, objectID string) (bool, error) {
			_, err := ids.LookupPrincipal(ctx, objectID)
			if err == nil {
				return true, nil
			}
			if e := azerr.From(err); e.Status == 404 {
				return false, nil
			}
			return false, err
		},
	})
	armSrv.Register(authzP)
	armSrv.AddWriteGuard(authzP)
	auditKey, err := audit.LoadOrCreateKey(ctx, st, sealer)
	if err != nil {
		return fmt.Errorf("audit key: %w", err)
	}
	auditLog, err := audit.New(st, clk, audit.Options{
		Key: auditKey, FailOpen: cfg.AuditFailOpen, APIAudience: cfg.BaseURL(), Logger: log,
		Sinks: []audit.Sink{insp},
	})
	if err != nil {
		return err
	}
	m.reg.MustRegister(auditLog.Collectors()...)
	// The platform's own data-plane writes (the Channel Integrity Key) are
	// audited like any client's.
	edgeP := databoxedge.New(st, clk, ids, databoxedge.Options{
		Vaults: kvp, Locks: authzP, Accounts: stp, Settings: insp, DataPlane: auditedVaults{vaults, auditLog}, Workloads: mp,
		VaultDomain: cfg.VaultDomain, Logger: log,
	})
	armSrv.Register(edgeP)

	subID, err := bootstrapControlPlane(ctx, armSrv, engine, boot)
	if err != nil {
		return err
	}
	if boot.Created {
		if err := writeAdminCredentials(cfg, tlsMat.CACertFile, boot, subID); err != nil {
			return err
		}
	}
	if cfg.StoreDSN == "" {
		// Only safe with one process: with shared PostgreSQL another replica
		// may own an operation that looks interrupted.
		if _, err := armSrv.FailInterrupted(ctx); err != nil {
			return err
		}
	}
	// Operations whose replica died (its lease lapsed) get a final answer.
	if _, err := armSrv.SweepOperations(ctx); err != nil {
		return err
	}

	rot, err := newRotation(cfg, st, sealer, clk, ids, engine, kvp, boot, tlsMat, log)
	if err != nil {
		return err
	}
	rot.SetResolver(ncp)
	ncp.SetEngine(rot)

	// The portal is a client of this server's own APIs, through the front
	// door like the rotation engine, with the signed-in user's tokens.
	portal, portalKey, err := newPortal(cfg, tlsMat, log)
	if err != nil {
		return err
	}

	s := &Server{
		cfg: cfg, log: log, metrics: m, verifier: ids, defaultTenant: boot.TenantID,
		tlsConfig: tlsMat.ServerConfig(), audit: auditLog, portalKey: portalKey,
		planes: planes{
			audit:    auditLog.Handler(engine),
			rotation: rot.AlertsHandler(engine),
			identity: ids.Handler(),
			graph:    ids.GraphHandler(engine),
			mi:       ids.ManagedIdentityHandler(),
			// A device reaches the managed-identity endpoint through the
			// front door (the loopback listener is local to the server).
			edge: edgeP.ActivationHandler(databoxedge.Endpoints{ResourceManager: cfg.BaseURL(),
				IdentityEndpoint: cfg.BaseURL() + "/msi/token", VaultAudience: cfg.VaultAudience()}),
			arm:    armSrv,
			vault:  vaults,
			portal: portal,
			ready: func() error {
				_, err := raw.Get(ctx, "sys/readiness-probe")
				if errors.Is(err, store.ErrNotFound) {
					return nil
				}
				return err
			},
		},
	}
	s.buildHandlers()

	bg, stopBG := context.WithCancel(ctx)
	defer stopBG()
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		if err := auditLog.RunShipper(bg); err != nil && bg.Err() == nil {
			log.Error("audit shipper stopped", "err", err)
		}
	}()
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		if err := rot.Run(bg); err != nil && bg.Err() == nil {
			log.Error("rotation scheduler stopped", "err", err)
		}
	}()
	s.every(bg, "purged expired deleted vaults", cfg.PurgeInterval, kvp.PurgeExpired)
	s.every(bg, "purged expired deleted secrets", cfg.PurgeInterval, vaults.PurgeExpired)
	s.every(bg, "renewed certificates and rotated keys", cfg.RenewInterval, renewDue(vaults, auditLog, clk, boot))
	s.every(bg, "pruned expired log blobs", time.Hour, func(ctx context.Context) (int, error) {
		return stp.PruneBlobs(ctx, clk.Now())
	})
	s.every(bg, "pruned finished operations", time.Hour, func(ctx context.Context) (int, error) {
		return armSrv.PruneOperations(ctx, 24*time.Hour)
	})
	s.every(bg, "failed interrupted operations", armSrv.OperationLeaseTTL()/2, armSrv.SweepOperations)

	err = s.Serve(ctx, func(addr fmtStringer) {
		fmt.Fprintf(stdout, "keyhaven is serving on %s (listening on %s)\n", cfg.BaseURL(), addr.String())
		caFlag := ""
		if tlsMat.CACertFile != "" {
			fmt.Fprintf(stdout, "  CA certificate for clients: %s\n", tlsMat.CACertFile)
			caFlag = " --ca-file " + tlsMat.CACertFile
		} else {
			fmt.Fprintf(stdout, "  TLS: the certificate of --tls-cert %s (clients trust its issuer; give them --ca-file if it is private)\n", cfg.TLSCert)
		}
		fmt.Fprintf(stdout, "  vaults: https://{vault}.%s/\n", hostPort(cfg.VaultDomain, cfg.PublicPort))
		if cfg.MIListen != "" {
			fmt.Fprintf(stdout, "  managed-identity endpoint: http://%s/msi/token\n", cfg.MIListen)
		}
		fmt.Fprintf(stdout, "  tenant: %s   default subscription: %s\n", boot.TenantID, subID)
		cred := filepath.Join(cfg.DataDir, "admin-credentials.json")
		if boot.Created {
			fmt.Fprintf(stdout, "  bootstrap administrator %s: credential written to %s (mode 0600)\n", boot.AdminUPN, cred)
		} else {
			fmt.Fprintf(stdout, "  bootstrap administrator %s: credential in %s (written on first start)\n", boot.AdminUPN, cred)
		}
		fmt.Fprintf(stdout, "  log in: keyhaven login --server %s%s --username %s\n", cfg.BaseURL(), caFlag, boot.AdminUPN)
	})
	stopBG()
	armSrv.Wait()
	// Every queued audit event belongs to a request that shutdown already
	// waited for; Close refuses stragglers and waits for the last commit.
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if cerr := auditLog.Close(cctx); cerr != nil {
		log.Warn("audit log close", "err", cerr)
	}
	return err
}

// bootstrapControlPlane gives the administrator Owner and Key Vault
// Administrator at the root scope, and creates the default subscription. Both
// are idempotent: names derive from the tenant and principal.
func bootstrapControlPlane(ctx context.Context, armSrv *arm.Server, engine *authz.Engine, boot *identity.BootstrapResult) (string, error) {
	for _, role := range []string{authz.RoleOwner, authz.RoleKeyVaultAdministrator} {
		name := uuid.NewSHA1(bootstrapNS, []byte("admin-role|"+boot.AdminObjectID+"|"+role)).String()
		_, _, err := engine.CreateAssignment(ctx, authz.Assignment{
			Name: name, Scope: "/", RoleDefinitionID: role, PrincipalID: boot.AdminObjectID,
			PrincipalType: "User", Description: "keyhaven bootstrap administrator",
		})
		if err != nil {
			return "", fmt.Errorf("bootstrap role assignment: %w", err)
		}
	}
	subID := uuid.NewSHA1(bootstrapNS, []byte("default-subscription|"+boot.TenantID)).String()
	if _, err := armSrv.CreateSubscription(ctx, subID, "keyhaven default", boot.TenantID); err != nil {
		return "", fmt.Errorf("bootstrap subscription: %w", err)
	}
	return subID, nil
}

func writeAdminCredentials(cfg Config, caFile string, boot *identity.BootstrapResult, subID string) error {
	b, _ := json.MarshalIndent(AdminCredentials{
		TenantID: boot.TenantID, Username: boot.AdminUPN, Password: boot.AdminPassword,
		Server: cfg.BaseURL(), CAFile: caFile, SubscriptionID: subID,
	}, "", "  ")
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(cfg.DataDir, "admin-credentials.json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write admin credentials: %w", err)
	}
	return os.Rename(tmp, path)
}

type fmtStringer interface{ String() string }

// auditedVaults serves in-process data-plane requests of the platform (Stack
// Edge activation) through the audit middleware, so each leaves its event as
// an HTTP request would.
type auditedVaults struct {
	vaults *vault.Service
	log    *audit.Log
}

func (a auditedVaults) ServeVault(w http.ResponseWriter, r *http.Request, vaultName, baseURL string) {
	a.log.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.vaults.ServeVault(w, r, vaultName, baseURL)
	})).ServeHTTP(w, r)
}
