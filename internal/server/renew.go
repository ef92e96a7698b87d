package server

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"github.com/keyhaven/keyhaven/internal/audit"
	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/identity"
	"github.com/keyhaven/keyhaven/internal/vault"
)

// renewDue is the background pass that renews certificates whose
// AutoRenew lifetime action, and rotates keys whose rotation policy's Rotate
// action, fell due. Each is recorded in the vault's audit stream as a
// CertificateCreate or KeyRotate by the platform (there is no request behind
// it), so a vault's log still shows every version and who made it.
func renewDue(vaults *vault.Service, log *audit.Log, clk clock.Clock, boot *identity.BootstrapResult) func(context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		renewed, err := vaults.RenewDue(ctx)
		for _, r := range renewed {
			op, why := "CertificateCreate", "Automatic renewal: the certificate policy's AutoRenew lifetime action fell due."
			if r.Kind == vault.RenewedKey {
				op, why = "KeyRotate", "Automatic rotation: the key rotation policy's Rotate lifetime action fell due."
			}
			ev := audit.Event{
				Time: clk.Now().UTC().Format(audit.TimeFormat), ResourceID: r.Vault.ResourceID,
				OperationName: op, Category: audit.Category,
				ResultType: "Success", ResultSignature: "OK",
				ResultDescription: why,
				CorrelationID:     uuid.NewString(),
				Identity:          &audit.Identity{Claim: audit.Claim{OID: boot.PlatformObjectID, AppID: boot.PlatformAppID, TID: r.Vault.TenantID}},
				Properties:        audit.Properties{ID: r.ID, RequestURI: r.ID, HTTPStatusCode: 200, ClientInfo: "keyhaven certificate renewal"},
			}
			if _, aerr := log.Append(ctx, ev); aerr != nil {
				err = errors.Join(err, aerr)
			}
		}
		return len(renewed), err
	}
}
