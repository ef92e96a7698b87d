package identity

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/store"
)

// workloadRecord binds a workload secret to the resource whose identities
// it may request tokens for.
type workloadRecord struct {
	ResourceID string `json:"resourceId"`
	Hash       string `json:"hash"`
}

const maxIdentityHeader = 256

// IssueWorkloadSecret returns a new secret (for IDENTITY_HEADER) bound to
// resourceID, replacing any previous one. It is stored only as an HMAC and
// cannot be shown again.
func (s *Service) IssueWorkloadSecret(ctx context.Context, resourceID string) (string, error) {
	key, err := normResourceID(resourceID)
	if err != nil {
		return "", err
	}
	secret := randomToken(32)
	h, err := s.secretHash(ctx, secret)
	if err != nil {
		return "", err
	}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		if err := s.revokeWorkloadTx(ctx, tx, key); err != nil {
			return err
		}
		if _, err := store.PutJSON(ctx, tx, kWorkload+h, workloadRecord{ResourceID: resourceID, Hash: h}, store.Absent); err != nil {
			return err
		}
		return putString(ctx, tx, kWorkloadRes+key, h, store.Any)
	})
	if err != nil {
		return "", err
	}
	return secret, nil
}

// RevokeWorkloadSecret invalidates the workload secret of resourceID.
func (s *Service) RevokeWorkloadSecret(ctx context.Context, resourceID string) error {
	key, err := normResourceID(resourceID)
	if err != nil {
		return err
	}
	return s.st.Update(ctx, func(tx store.Tx) error { return s.revokeWorkloadTx(ctx, tx, key) })
}

func (s *Service) revokeWorkloadTx(ctx context.Context, tx store.Tx, key string) error {
	h, err := getString(ctx, tx, kWorkloadRes+key)
	if isNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	if err := tx.Delete(ctx, kWorkload+h, store.Any); err != nil {
		return err
	}
	return tx.Delete(ctx, kWorkloadRes+key, store.Any)
}

// ManagedIdentityHandler serves the App Service managed-identity protocol
// (what azidentity.ManagedIdentityCredential uses with IDENTITY_ENDPOINT and
// IDENTITY_HEADER set):
//
//	GET /msi/token?api-version=2019-08-01&resource=...[&client_id=|&mi_res_id=|&object_id=|&principal_id=]
//	X-IDENTITY-HEADER: <workload secret>
//
// The secret names a resource; only that resource's system-assigned identity
// (the default) or its attached user-assigned identities get tokens.
func (s *Service) ManagedIdentityHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /msi/token", s.serveMSIToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		mux.ServeHTTP(w, r)
	})
}

func msiError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": code, "error_description": msg, "statusCode": status, "message": msg})
}

func (s *Service) serveMSIToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	secret := r.Header.Get("X-IDENTITY-HEADER")
	if secret == "" || len(secret) > maxIdentityHeader {
		msiError(w, http.StatusUnauthorized, "invalid_request", "The X-IDENTITY-HEADER header is missing or invalid.")
		return
	}
	if len(r.URL.RawQuery) > 4096 {
		msiError(w, http.StatusBadRequest, "invalid_request", "The query string is too long.")
		return
	}
	q := r.URL.Query()
	if v := q.Get("api-version"); v == "" {
		msiError(w, http.StatusBadRequest, "invalid_request", "The api-version query parameter is required (2019-08-01).")
		return
	}
	resource := strings.TrimSuffix(q.Get("resource"), "/.default")
	if resource == "" || validAudience(resource) != nil {
		msiError(w, http.StatusBadRequest, "invalid_request", "The resource query parameter is required and must be a valid audience.")
		return
	}
	h, err := s.secretHash(ctx, secret)
	if err != nil {
		s.log.Error("identity: msi token", "err", err)
		msiError(w, http.StatusInternalServerError, "server_error", "A transient error has occurred. Please try again.")
		return
	}
	var wr workloadRecord
	if _, err := store.LoadJSON(ctx, s.st, kWorkload+h, &wr); err != nil || !equalHash(wr.Hash, h) {
		if err != nil && !isNotFound(err) {
			s.log.Error("identity: msi token", "err", err)
		}
		msiError(w, http.StatusUnauthorized, "invalid_request", "The X-IDENTITY-HEADER value is not valid.")
		return
	}
	p, aerr := s.selectWorkloadIdentity(ctx, wr.ResourceID, q)
	if aerr != nil {
		msiError(w, aerr.Status, "invalid_request", aerr.Message)
		return
	}
	tok, exp, err := s.issueAccess(ctx, p, issueParams{audience: resource})
	if err != nil {
		s.log.Error("identity: msi token", "err", err)
		msiError(w, http.StatusInternalServerError, "server_error", "A transient error has occurred. Please try again.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"access_token": tok,
		"expires_on":   strconv.FormatInt(exp.Unix(), 10),
		"resource":     resource,
		"token_type":   "Bearer",
		"client_id":    p.AppID,
	})
}

// selectWorkloadIdentity picks the identity the request names among those
// the resource carries.
func (s *Service) selectWorkloadIdentity(ctx context.Context, resourceID string, q map[string][]string) (*principalRecord, *azerr.Error) {
	key, err := normResourceID(resourceID)
	if err != nil {
		return nil, azerr.From(err)
	}
	sys, uais, err := s.resourceIdentities(ctx, s.st, key)
	if err != nil {
		return nil, azerr.Internal(err)
	}
	var by, want string
	for _, param := range []string{"client_id", "mi_res_id", "msi_res_id", "object_id", "principal_id"} {
		if v := q[param]; len(v) > 0 && v[0] != "" {
			if by != "" {
				return nil, azerr.New(http.StatusBadRequest, "invalid_request", "Only one of client_id, mi_res_id, object_id or principal_id may be given.")
			}
			if len(v) > 1 || len(v[0]) > maxResourceIDLen {
				return nil, azerr.New(http.StatusBadRequest, "invalid_request", "The %s parameter is invalid.", param)
			}
			by, want = param, v[0]
		}
	}
	candidates := uais
	if sys != nil {
		candidates = append([]*principalRecord{sys}, uais...)
	}
	if by == "" {
		if sys == nil {
			return nil, azerr.New(http.StatusBadRequest, "invalid_request",
				"The resource has no system-assigned identity; name a user-assigned identity with client_id, mi_res_id or object_id.")
		}
		return s.usable(sys)
	}
	for _, p := range candidates {
		var match bool
		switch by {
		case "client_id":
			match = strings.EqualFold(p.AppID, want)
		case "mi_res_id", "msi_res_id":
			match = strings.EqualFold(p.MIResourceID, want) && !p.SystemAssigned
		default:
			match = strings.EqualFold(p.ObjectID, want)
		}
		if match {
			return s.usable(p)
		}
	}
	return nil, azerr.New(http.StatusForbidden, "invalid_request",
		"The identity named by %s is not assigned to this workload's resource.", by)
}

func (s *Service) usable(p *principalRecord) (*principalRecord, *azerr.Error) {
	if !p.Enabled {
		return nil, azerr.New(http.StatusForbidden, "invalid_request", "The managed identity is disabled.")
	}
	return p, nil
}
