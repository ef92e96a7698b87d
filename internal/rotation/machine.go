package rotation

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/identity"
	"github.com/keyhaven/keyhaven/internal/rotation/drivers"
	"github.com/keyhaven/keyhaven/internal/store"
)

// Failpoints (tests): after the named point has completed, before the next
// write.
const (
	fpAfterIntent    = "after-intent"     // Pending sealed and persisted; target untouched
	fpAfterTargetSet = "after-target-set" // target changed; not yet verified or recorded
	fpAfterVerified  = "after-verified"   // ArchivePending recorded
	fpAfterArchive   = "after-archive"    // vault accepted the version; not yet recorded
)

// errCrash marks a failpoint abort: the worker stops without another write
// (not even the lease release), as a killed process would.
type errCrash struct{ error }

// maxStepsPerClaim bounds the transitions made under one claim.
const maxStepsPerClaim = 8

// work advances one claimed credential until it rests (done, waiting for a
// retry, or halted), then releases the lease.
func (e *Service) work(ctx context.Context, c *claim) error {
	for range maxStepsPerClaim {
		rec, ver, err := getCred(ctx, e.cfg.Store, c.credID)
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			e.release(c)
			return err
		}
		done, err := e.step(ctx, c, rec, ver)
		var crash errCrash
		if errors.As(err, &crash) {
			return nil // simulated crash: leave the lease to expire
		}
		if errors.Is(err, errLeaseLost) {
			return nil // another replica owns it now
		}
		if err != nil {
			e.release(c)
			return err
		}
		if done {
			break
		}
	}
	e.release(c)
	return nil
}

func (e *Service) fp(point, credID string) error {
	if err := e.hit(point, credID); err != nil {
		return errCrash{err}
	}
	return nil
}

// fail records cond on rec and schedules a retry with backoff.
func (e *Service) fail(ctx context.Context, c *claim, rec *credRecord, ver int64, cond *condition) error {
	prev := rec.NextAt
	now := e.clk.Now().UTC()
	rec.Attempts++
	rec.Code, rec.Message = cond.code, clipStr(cond.msg, maxMessageLen)
	rec.NextAt = now.Add(e.backoff(rec.Attempts))
	e.log.Info("rotation blocked", "cluster", rec.ClusterID, "owner", rec.OwnerID, "kind", rec.Kind,
		"phase", rec.Phase, "code", rec.Code, "attempt", rec.Attempts)
	return e.save(ctx, c, rec, ver, prev)
}

// Owner states (ArchiveResolver.OwnerState) the engine tells apart.
const (
	ownerReady    = "Ready"
	ownerCordoned = "Cordoned"
)

// ownerBlocked reports (and records, as a later NextAt) whether rec's owner
// may not be touched now. A Ready owner is rotated. A cordoned owner never
// is, not even on request. Any other state (Provisioning: a machine not
// deployed yet) blocks periodic rotation only: an explicit request goes
// ahead, because the one such an owner gets is its deployment's (the
// provider refuses rotateCredential before deployment, and requests it
// while the cluster itself is still Deploying), and a rotation already in
// SetIntent finishes rather than leave the target's value in doubt. A
// blocked credential keeps its request and is looked at again after
// CordonRecheck.
func (e *Service) ownerBlocked(ctx context.Context, c *claim, rec *credRecord, ver int64) (bool, error) {
	res := e.getResolver()
	if res == nil {
		return true, e.fail(ctx, c, rec, ver, &condition{CodeArchiveResolverUnavailable, "The cluster's settings cannot be read yet."})
	}
	state, err := res.OwnerState(ctx, rec.OwnerID)
	if err != nil {
		return true, e.fail(ctx, c, rec, ver, &condition{CodeOwnerStateUnavailable,
			fmt.Sprintf("The state of '%s' could not be read.", clipStr(rec.OwnerName, 80))})
	}
	switch {
	case strings.EqualFold(state, ownerReady):
		return false, nil
	case strings.EqualFold(state, ownerCordoned):
	case rec.Requested || rec.Phase == phaseSetIntent:
		return false, nil
	}
	prev := rec.NextAt
	rec.NextAt = e.clk.Now().UTC().Add(e.cfg.CordonRecheck)
	return true, e.save(ctx, c, rec, ver, prev)
}

// step makes one transition of rec. It returns done when the credential
// rests until its NextAt (or forever, when halted).
func (e *Service) step(ctx context.Context, c *claim, rec *credRecord, ver int64) (bool, error) {
	now := e.clk.Now().UTC()
	switch rec.Phase {
	case phaseIdle:
		if rec.NextAt.IsZero() || rec.NextAt.After(now) {
			return true, nil
		}
		if blocked, err := e.ownerBlocked(ctx, c, rec, ver); blocked || err != nil {
			return true, err
		}
		// Write access first: without it the rotation does not start.
		if _, cond := e.preflight(ctx, rec); cond != nil {
			return true, e.fail(ctx, c, rec, ver, cond)
		}
		if rec.Current == nil && rec.Endpoint != "" {
			return true, e.fail(ctx, c, rec, ver, &condition{CodeInitialCredentialMissing,
				fmt.Sprintf("keyhaven holds no credential for %s on '%s' to log in with; supply the current one.", rec.Kind, clipStr(rec.OwnerName, 80))})
		}
		m, err := generate(rec.Kind, "keyhaven-"+sanitize(rec.OwnerName))
		if err != nil {
			return true, err
		}
		sv, err := e.sealValue(ctx, rec.ID, m)
		if err != nil {
			return true, err
		}
		prev := rec.NextAt
		rec.Pending, rec.Phase, rec.Requested, rec.Attempts = sv, phaseSetIntent, false, 0
		rec.Code, rec.Message = "", ""
		rec.SecretName = SecretName(rec.ClusterID, rec.OwnerID, rec.OwnerName, rec.Kind)
		rec.NextAt = now
		if err := e.save(ctx, c, rec, ver, prev); err != nil {
			return true, err
		}
		return false, e.fp(fpAfterIntent, rec.ID)

	case phaseSetIntent:
		if blocked, err := e.ownerBlocked(ctx, c, rec, ver); blocked || err != nil {
			return true, err
		}
		return e.setTarget(ctx, c, rec, ver)

	case phaseArchivePending:
		return true, e.archive(ctx, c, rec, ver)
	}
	return true, nil // halted: only an operator action moves it
}

// setTarget logs in with the current value, sets the pending one and
// verifies it. After a crash the target may hold either: whichever it
// accepts tells where to continue; if it accepts neither, someone changed it
// out of band and the credential halts rather than retry into a lockout.
func (e *Service) setTarget(ctx context.Context, c *claim, rec *credRecord, ver int64) (bool, error) {
	drv, err := e.cfg.Drivers.For(rec.Endpoint)
	if err != nil {
		return true, e.fail(ctx, c, rec, ver, &condition{CodeUnsupportedEndpoint, "The target endpoint names no supported driver."})
	}
	cur, err := e.openValue(ctx, rec.ID, rec.Current)
	if err != nil {
		return true, err
	}
	next, err := e.openValue(ctx, rec.ID, rec.Pending)
	if err != nil {
		return true, err
	}
	curS, nextS := cur.loginSecret(rec.Kind), next.loginSecret(rec.Kind)
	target := fmt.Sprintf("%s on '%s'", rec.Kind, clipStr(rec.OwnerName, 80))
	if err := e.renew(ctx, c); err != nil {
		return true, err
	}
	err = drv.Login(ctx, rec.Endpoint, rec.Username, curS)
	switch {
	case err == nil:
		if err := drv.Set(ctx, rec.Endpoint, rec.Username, curS, nextS); err != nil {
			code := CodeTargetUnreachable
			if errors.Is(err, drivers.ErrRejected) {
				code = CodeTargetSetFailed
			}
			return true, e.fail(ctx, c, rec, ver, &condition{code, "Setting the new credential failed for " + target + "; it will be retried."})
		}
		if err := e.fp(fpAfterTargetSet, rec.ID); err != nil {
			return true, err
		}
		if err := drv.Login(ctx, rec.Endpoint, rec.Username, nextS); err != nil {
			return true, e.fail(ctx, c, rec, ver, &condition{CodeTargetSetFailed, "The new credential could not be verified for " + target + "; it will be probed again."})
		}
	case errors.Is(err, drivers.ErrRejected):
		err2 := drv.Login(ctx, rec.Endpoint, rec.Username, nextS)
		switch {
		case err2 == nil:
			// A previous attempt changed the target before it could record it.
		case errors.Is(err2, drivers.ErrRejected):
			prev := rec.NextAt
			rec.Phase, rec.NextAt = phaseHalted, time.Time{}
			rec.Code = CodeManualChangeDetected
			rec.Message = "The target rejects both the last archived and the pending credential of " + target +
				": it was changed outside keyhaven. Rotation is stopped to avoid locking the machine out; supply the current credential (update the cluster) or restore it and request a rotation."
			e.log.Warn("rotation halted", "cluster", rec.ClusterID, "owner", rec.OwnerID, "kind", rec.Kind, "code", rec.Code)
			return true, e.save(ctx, c, rec, ver, prev)
		default:
			return true, e.fail(ctx, c, rec, ver, &condition{CodeTargetUnreachable, "The target of " + target + " could not be reached."})
		}
	default:
		return true, e.fail(ctx, c, rec, ver, &condition{CodeTargetUnreachable, "The target of " + target + " could not be reached."})
	}
	prev := rec.NextAt
	now := e.clk.Now().UTC()
	rec.Phase, rec.RotatedAt, rec.Attempts, rec.NextAt = phaseArchivePending, now, 0, now
	rec.DeliveryID = fmt.Sprintf("%d-%s", now.Unix(), randHex(4))
	rec.Code, rec.Message = "", ""
	if err := e.save(ctx, c, rec, ver, prev); err != nil {
		return true, err
	}
	return false, e.fp(fpAfterVerified, rec.ID)
}

// archive delivers the pending value as a new secret version through the
// vault data plane, with a token of the archive identity.
func (e *Service) archive(ctx context.Context, c *claim, rec *credRecord, ver int64) error {
	res, cond := e.preflight(ctx, rec)
	if cond != nil {
		return e.fail(ctx, c, rec, ver, cond)
	}
	m, err := e.openValue(ctx, rec.ID, rec.Pending)
	if err != nil {
		return err
	}
	value, cty, err := m.archiveValue(rec.Kind)
	if err != nil {
		return err
	}
	if res.pub != nil {
		if value, err = encryptTo(res.pub, value, cty); err != nil {
			return err
		}
		cty = EnvelopeContentType
	}
	var opts []identity.IssueOption
	if res.arch.Path == PathClusterManager {
		// The cluster manager path is the platform acting as a trusted
		// service: it passes a firewall with bypass AzureServices.
		opts = append(opts, identity.Trusted())
	}
	tok, _, err := e.cfg.Tokens.IssueToken(ctx, res.arch.IdentityObjectID, e.cfg.VaultAudience, opts...)
	if err != nil {
		code := CodeTokenUnavailable
		if is404(err) {
			code = CodeIdentityNotFound
		}
		return e.fail(ctx, c, rec, ver, &condition{code, "No token could be issued for the archive identity."})
	}
	name := SecretName(rec.ClusterID, rec.OwnerID, rec.OwnerName, rec.Kind)
	tags := map[string]string{
		"managedBy":      "keyhaven",
		"clusterId":      clipStr(rec.ClusterID, 256),
		"clusterName":    clipStr(lastSegment(rec.ClusterID), 256),
		"ownerId":        clipStr(rec.OwnerID, 256),
		"ownerName":      clipStr(rec.OwnerName, 256),
		"credentialType": string(rec.Kind),
		"deliveryId":     rec.DeliveryID,
	}
	if rec.Username != "" {
		tags["username"] = clipStr(rec.Username, 256)
	}
	if err := e.renew(ctx, c); err != nil {
		return err
	}
	version, err := e.cfg.VaultClient.SetSecret(ctx, res.vaultURI, name, value, cty, tags, tok)
	if err != nil {
		msg := "Delivery to the secret archive failed"
		var ve *VaultError
		if errors.As(err, &ve) {
			msg += fmt.Sprintf(" (%d %s", ve.Status, ve.Code)
			if ve.Inner != "" {
				msg += "/" + ve.Inner
			}
			msg += ")"
		}
		return e.fail(ctx, c, rec, ver, &condition{deliveryCode(err), msg + "; the credential is kept sealed by keyhaven and delivery is retried."})
	}
	if err := e.fp(fpAfterArchive, rec.ID); err != nil {
		return err
	}
	prev := rec.NextAt
	rotated := rec.RotatedAt
	rec.Current, rec.Pending, rec.Phase, rec.DeliveryID = rec.Pending, nil, phaseIdle, ""
	rec.LastRotation = &rotated
	rec.Ref = &ArchiveReference{KeyVaultID: res.info.ResourceID, KeyVaultURI: res.vaultURI, SecretName: name, SecretVersion: version}
	rec.SecretName = name
	rec.Attempts, rec.Code, rec.Message = 0, "", ""
	rec.NextAt = rotated.Add(rec.periodic())
	if rec.Requested {
		rec.NextAt = e.clk.Now().UTC()
	}
	e.log.Info("credential rotated", "cluster", rec.ClusterID, "owner", rec.OwnerID, "kind", rec.Kind, "secret", name, "version", version)
	return e.save(ctx, c, rec, ver, prev)
}
