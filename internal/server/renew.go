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

// renewCertificates is the background pass that renews certificates whose
// AutoRenew lifetime action fell due. Each renewal is recorded in the
// vault's audit stream as a CertificateCreate by the platform (there is no
// request behind it), so a vault's log still shows every version and who
// made it.
func renewCertificates(vaults *vault.Service, log *audit.Log, clk clock.Clock, boot *identity.BootstrapResult) func(context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		renewed, err := vaults.RenewDue(ctx)
		for _, r := range renewed {
			ev := audit.Event{
				Time: clk.Now().UTC().Format(audit.TimeFormat), ResourceID: r.Vault.ResourceID,
				OperationName: "CertificateCreate", Category: audit.Category,
				ResultType: "Success", ResultSignature: "OK",
				ResultDescription: "Automatic renewal: the certificate policy's AutoRenew lifetime action fell due.",
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
