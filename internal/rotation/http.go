package rotation

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/principal"
)

// actionClusterRead authorizes reading a cluster's alerts.
const actionClusterRead = "Microsoft.NetworkCloud/clusters/read"

// AlertsHandler serves GET ?clusterId={cluster resource ID}[&includeCleared=true]
// → {"value":[Alert...]} (newest first). The caller must be authenticated
// (the server's middleware puts the principal in the context), hold a token
// for one of Config.AlertsAudiences when those are set, and be allowed
// Microsoft.NetworkCloud/clusters/read on the cluster.
func (e *Service) AlertsHandler(dec authz.Decider) http.Handler {
	auds := map[string]bool{}
	for _, a := range e.cfg.AlertsAudiences {
		auds[strings.ToLower(strings.TrimRight(a, "/"))] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			azerr.Write(w, azerr.New(http.StatusMethodNotAllowed, "MethodNotAllowed", "Only GET is supported."))
			return
		}
		info := principal.InfoFrom(r.Context())
		p := info.Principal
		if p == nil {
			msg := "Authentication is required."
			if info.AuthError != "" {
				msg = info.AuthError
			}
			azerr.Write(w, azerr.New(http.StatusUnauthorized, "AuthenticationFailed", "%s", msg))
			return
		}
		aud := strings.ToLower(strings.TrimRight(strings.TrimSuffix(p.Audience, "/.default"), "/"))
		if len(auds) > 0 && !auds[aud] {
			azerr.Write(w, azerr.New(http.StatusUnauthorized, "InvalidAuthenticationTokenAudience", "The access token has an invalid audience."))
			return
		}
		clusterID := r.URL.Query().Get("clusterId")
		if clusterID == "" || len(clusterID) > maxIDLen {
			azerr.Write(w, azerr.BadParameter("The query parameter clusterId (a cluster resource ID) is required."))
			return
		}
		d, err := dec.Decide(r.Context(), authz.Request{Principal: p, Action: actionClusterRead, Scope: clusterID})
		if err != nil {
			azerr.Write(w, err)
			return
		}
		if !d.Allowed {
			azerr.Write(w, azerr.New(http.StatusForbidden, "AuthorizationFailed",
				"The client '%s' does not have authorization to perform action '%s' over scope '%s'.", p.ObjectID, actionClusterRead, clipStr(clusterID, 300)))
			return
		}
		alerts, err := e.Alerts(r.Context(), clusterID, r.URL.Query().Get("includeCleared") == "true")
		if err != nil {
			azerr.Write(w, azerr.Internal(err))
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]any{"value": alerts})
	})
}
