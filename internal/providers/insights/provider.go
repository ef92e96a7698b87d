package insights

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/store"
)

// BlobStore is what diagnostic settings need of the storage provider
// (*storage.Provider implements it).
type BlobStore interface {
	// Exists reports whether accountID names an existing storage account.
	Exists(ctx context.Context, accountID string) (bool, error)
	// AppendBlob appends data to an append blob, creating it as needed.
	AppendBlob(ctx context.Context, accountID, container, blobPath string, data []byte) error
	// SetRetention sets (days > 0) or removes (0) a retention rule.
	SetRetention(ctx context.Context, accountID, container, prefix string, days int) error
}

// Options configures the provider.
type Options struct {
	// Storage is the storage provider (required).
	Storage BlobStore
	// Decider, when set, enforces linked authorization: the caller of a PUT
	// must be allowed Microsoft.Storage/storageAccounts/listKeys/action on
	// the destination storage account.
	Decider authz.Decider
	// ResourceTypes are the types settings may be put on, with their
	// categories, keyed by lower-case full type (default
	// DefaultResourceTypes).
	ResourceTypes map[string]LogCategories
	// ResourceExists, when set, makes a PUT on a resource that does not
	// exist a 404, as in Azure.
	ResourceExists func(ctx context.Context, resourceID string) (bool, error)
	Logger         *slog.Logger
}

// Provider is the Microsoft.Insights resource provider (diagnostic
// settings).
type Provider struct {
	st   store.Store
	clk  clock.Clock
	opts Options
}

var _ arm.Provider = (*Provider)(nil)

// New returns the provider over st.
func New(st store.Store, clk clock.Clock, opts Options) *Provider {
	if opts.ResourceTypes == nil {
		opts.ResourceTypes = DefaultResourceTypes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if clk == nil {
		clk = clock.Real{}
	}
	return &Provider{st: st, clk: clk, opts: opts}
}

// Namespace is "Microsoft.Insights".
func (p *Provider) Namespace() string { return Namespace }

// ResourceTypes lists the types served.
func (p *Provider) ResourceTypes() []arm.ResourceType {
	return []arm.ResourceType{{Name: "diagnosticSettings", APIVersions: APIVersions, Handler: arm.HandlerFunc(p.serveSettings)}}
}

// SinkName names the audit log's shipping cursor for this sink.
func (p *Provider) SinkName() string { return "insights" }

func (p *Provider) serveSettings(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	scope, ok := req.ID.ExtensionScope()
	if !ok || len(scope.Providers) == 0 || scope.IsCollection() {
		return nil, azerr.NotFound("NotFound", "Diagnostic settings are extension resources of a resource: {resourceId}/providers/Microsoft.Insights/diagnosticSettings/{name}.")
	}
	rid := scope.String()
	if req.Kind == arm.KindCollection {
		if req.Method != http.MethodGet {
			return nil, arm.MethodNotAllowed(req.Method)
		}
		recs, err := p.list(ctx, p.st, rid)
		if err != nil {
			return nil, azerr.Internal(err)
		}
		out := make([]setting, 0, len(recs))
		for _, r := range recs {
			out = append(out, render(r))
		}
		return arm.OK(arm.Page[setting]{Value: out}), nil
	}
	if req.Kind != arm.KindResource {
		return nil, arm.MethodNotAllowed(req.Method)
	}
	name := req.ID.Name()
	switch req.Method {
	case http.MethodGet:
		r, _, err := p.get(ctx, p.st, rid, name)
		if errors.Is(err, store.ErrNotFound) {
			return nil, settingNotFound(name)
		}
		if err != nil {
			return nil, azerr.Internal(err)
		}
		return arm.OK(render(r)), nil
	case http.MethodPut:
		return p.putSetting(ctx, req, scope, name)
	case http.MethodDelete:
		return p.deleteSetting(ctx, rid, name)
	}
	return nil, arm.MethodNotAllowed(req.Method)
}

func settingNotFound(name string) error {
	return azerr.NotFound("ResourceNotFound", "The diagnostic setting '%s' doesn't exist.", clip(name, 200))
}

func (p *Provider) get(ctx context.Context, r store.Reader, rid, name string) (*record, int64, error) {
	return store.GetJSON[record](ctx, r, settingKey(rid, name))
}

func (p *Provider) list(ctx context.Context, r store.Reader, rid string) ([]*record, error) {
	recs, err := r.List(ctx, settingsKeyPrefix(rid), store.ListOptions{Limit: 100})
	if err != nil {
		return nil, err
	}
	out := make([]*record, 0, len(recs))
	for _, rec := range recs {
		s, err := store.DecodeJSON[record](rec)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (p *Provider) categoriesFor(scope arm.ResourceID) (LogCategories, bool) {
	c, ok := p.opts.ResourceTypes[strings.ToLower(scope.ResourceType())]
	return c, ok
}

// resolve expands a log setting into the categories it selects.
func (lc LogCategories) resolve(l LogSetting) ([]string, error) {
	switch {
	case l.Category != "" && l.CategoryGroup != "":
		return nil, badRequest("A log setting has either a category or a categoryGroup, not both.")
	case l.Category != "":
		for _, c := range lc.Categories {
			if strings.EqualFold(c, l.Category) {
				return []string{c}, nil
			}
		}
		return nil, badRequest("Category '%s' is not supported. Supported categories: %s.", clip(l.Category, 64), strings.Join(lc.Categories, ", "))
	case l.CategoryGroup != "":
		for g, cs := range lc.Groups {
			if strings.EqualFold(g, l.CategoryGroup) {
				return cs, nil
			}
		}
		return nil, badRequest("Category group '%s' is not supported.", clip(l.CategoryGroup, 64))
	}
	return nil, badRequest("A log setting needs a category or a categoryGroup.")
}

func checkRetention(rp *RetentionPolicy) error {
	if rp != nil && (rp.Days < 0 || rp.Days > MaxRetentionDays) {
		return badRequest("Retention days must be between 0 and %d.", MaxRetentionDays)
	}
	return nil
}

// checkID checks an optional destination ID's form and type.
func checkID(field, id, typ string) error {
	if id == "" {
		return nil
	}
	rid, err := arm.ParseResourceID(id)
	if err != nil || !strings.EqualFold(rid.ResourceType(), typ) || rid.Name() == "" {
		return azerr.New(http.StatusBadRequest, "LinkedInvalidPropertyId",
			"Property id '%s' at path 'properties.%s' is invalid. Expect a fully qualified %s resource ID.", clip(id, 200), field, typ)
	}
	return nil
}

// validate normalizes props (canonical category names) and checks them
// against the resource type and Azure's rules. With a nil req (a platform
// caller) there is no linked authorization.
func (p *Provider) validate(ctx context.Context, req *arm.Request, lc LogCategories, props *Properties) error {
	if props.StorageAccountID == "" && props.WorkspaceID == "" && props.EventHubAuthorizationRuleID == "" && props.MarketplacePartnerID == "" {
		return badRequest("At least one storage account, event hub, workspace or partner solution destination must be specified.")
	}
	for _, c := range []struct{ field, id, typ string }{
		{"storageAccountId", props.StorageAccountID, "Microsoft.Storage/storageAccounts"},
		{"workspaceId", props.WorkspaceID, "Microsoft.OperationalInsights/workspaces"},
		{"eventHubAuthorizationRuleId", props.EventHubAuthorizationRuleID, "Microsoft.EventHub/namespaces/authorizationRules"},
	} {
		if err := checkID(c.field, c.id, c.typ); err != nil {
			return err
		}
	}
	if len(props.Logs) > MaxEntries || len(props.Metrics) > MaxEntries {
		return badRequest("A diagnostic setting has at most %d log and %d metric entries.", MaxEntries, MaxEntries)
	}
	if len(props.Logs) == 0 && len(props.Metrics) == 0 {
		return badRequest("A diagnostic setting must enable at least one log or metric category.")
	}
	seen := map[string]bool{}
	for i := range props.Logs {
		l := &props.Logs[i]
		cats, err := lc.resolve(*l)
		if err != nil {
			return err
		}
		if l.Category != "" {
			l.Category = cats[0]
		}
		for _, c := range cats {
			if seen[c] {
				return badRequest("Category '%s' is selected more than once.", c)
			}
			seen[c] = true
		}
		if err := checkRetention(l.RetentionPolicy); err != nil {
			return err
		}
	}
	for i := range props.Metrics {
		m := &props.Metrics[i]
		idx := slices.IndexFunc(lc.Metrics, func(c string) bool { return strings.EqualFold(c, m.Category) })
		if idx < 0 {
			return badRequest("Metric category '%s' is not supported. Supported: %s.", clip(m.Category, 64), strings.Join(lc.Metrics, ", "))
		}
		m.Category = lc.Metrics[idx]
		if len(m.TimeGrain) > 32 {
			return badRequest("The timeGrain is invalid.")
		}
		if err := checkRetention(m.RetentionPolicy); err != nil {
			return err
		}
	}
	if props.StorageAccountID == "" {
		return nil
	}
	ok, err := p.opts.Storage.Exists(ctx, props.StorageAccountID)
	if err != nil {
		return err
	}
	if !ok {
		return badRequest("The storage account '%s' could not be found.", clip(props.StorageAccountID, 200))
	}
	if p.opts.Decider != nil && req != nil { // nil req: a platform caller (PutSetting)
		const action = "Microsoft.Storage/storageAccounts/listKeys/action"
		d, err := p.opts.Decider.Decide(ctx, authz.Request{Principal: req.Principal, Action: action, Scope: props.StorageAccountID})
		if err != nil {
			return azerr.Internal(fmt.Errorf("linked authorization: %w", err))
		}
		if !d.Allowed {
			oid := ""
			if req.Principal != nil {
				oid = req.Principal.ObjectID
			}
			return azerr.New(http.StatusForbidden, "LinkedAuthorizationFailed",
				"The client '%s' has permission to perform action 'Microsoft.Insights/diagnosticSettings/write' on scope '%s'; however, it does not have permission to perform action '%s' on the linked scope(s) '%s'.",
				oid, clip(req.ID.String(), 400), action, clip(props.StorageAccountID, 200))
		}
	}
	return nil
}

// enabledCategories returns the categories a setting enables, with the
// retention days of each (0: no limit).
func (lc LogCategories) enabledCategories(props *Properties) map[string]int {
	out := map[string]int{}
	for _, l := range props.Logs {
		if !l.Enabled {
			continue
		}
		cats, err := lc.resolve(l)
		if err != nil {
			continue
		}
		days := 0
		if l.RetentionPolicy != nil && l.RetentionPolicy.Enabled {
			days = l.RetentionPolicy.Days
		}
		for _, c := range cats {
			out[c] = days
		}
	}
	return out
}

func (p *Provider) putSetting(ctx context.Context, req *arm.Request, scope arm.ResourceID, name string) (*arm.Response, error) {
	if err := validateName(name); err != nil {
		return nil, err
	}
	rid := scope.String()
	if len(settingKey(rid, name)) > store.MaxKeyLen {
		return nil, arm.BadRequest("InvalidResourceId", "The resource ID is too long for a diagnostic setting.")
	}
	lc, ok := p.categoriesFor(scope)
	if !ok {
		return nil, badRequest("The resource type '%s' does not support diagnostic settings.", scope.ResourceType())
	}
	if p.opts.ResourceExists != nil {
		ok, err := p.opts.ResourceExists(ctx, rid)
		if err != nil {
			return nil, azerr.From(err)
		}
		if !ok {
			return nil, arm.ResourceNotFound(scope)
		}
	}
	var body struct {
		Properties *Properties `json:"properties"`
	}
	if err := arm.DecodeJSON(req.Body, &body); err != nil {
		return nil, err
	}
	if body.Properties == nil {
		return nil, badRequest("The 'properties' object is required.")
	}
	props := *body.Properties
	if err := p.validate(ctx, req, lc, &props); err != nil {
		return nil, err
	}
	out, err := p.save(ctx, lc, rid, name, props, req.Principal, req.Now)
	if err != nil {
		return nil, err
	}
	return arm.OK(render(out)), nil
}

// save writes a validated setting and moves retention rules to it.
func (p *Provider) save(ctx context.Context, lc LogCategories, rid, name string, props Properties, by *principal.Principal, now time.Time) (*record, error) {
	var out, old *record
	err := p.st.Update(ctx, func(tx store.Tx) error {
		old = nil
		others, err := p.list(ctx, tx, rid)
		if err != nil {
			return err
		}
		mine := lc.enabledCategories(&props)
		for _, o := range others {
			if strings.EqualFold(o.Name, name) {
				old = o
				continue
			}
			if props.StorageAccountID == "" || !strings.EqualFold(o.Properties.StorageAccountID, props.StorageAccountID) {
				continue
			}
			for c := range lc.enabledCategories(&o.Properties) {
				if _, dup := mine[c]; dup {
					return badRequest("Data sink '%s' is already used in diagnostic setting '%s' for category '%s'. Data sinks can't be reused in different settings on the same category for the same resource.",
						clip(props.StorageAccountID, 200), o.Name, c)
				}
			}
		}
		if old == nil && len(others) >= MaxSettingsPerResource {
			return badRequest("Exceeded maximum number of diagnostic settings per resource: %d.", MaxSettingsPerResource)
		}
		out = &record{ResourceID: rid, Name: name, Properties: props}
		ver := int64(store.Absent)
		if old != nil {
			out.Name = old.Name
			out.SystemData = old.SystemData.Touched(by, now)
			ver = store.Any
		} else {
			out.SystemData = arm.NewSystemData(by, now)
		}
		_, err = store.PutJSON(ctx, tx, settingKey(rid, name), out, ver)
		return err
	})
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, azerr.Conflict("The diagnostic setting was changed by another request; retry the operation.")
		}
		return nil, azerr.From(err)
	}
	if err := p.applyRetention(ctx, lc, old, out); err != nil {
		return nil, azerr.From(err)
	}
	return out, nil
}

func (p *Provider) deleteSetting(ctx context.Context, rid, name string) (*arm.Response, error) {
	var old *record
	err := p.st.Update(ctx, func(tx store.Tx) error {
		o, ver, err := p.get(ctx, tx, rid, name)
		if errors.Is(err, store.ErrNotFound) {
			old = nil
			return nil
		}
		if err != nil {
			return err
		}
		old = o
		return tx.Delete(ctx, settingKey(rid, name), ver)
	})
	if err != nil {
		return nil, azerr.From(err)
	}
	if old == nil {
		return arm.NoContent(), nil
	}
	if scope, err := arm.ParseResourceID(rid); err == nil {
		if lc, ok := p.categoriesFor(scope); ok {
			if err := p.applyRetention(ctx, lc, old, nil); err != nil {
				return nil, azerr.From(err)
			}
		}
	}
	return &arm.Response{Status: http.StatusOK}, nil
}

type ruleKey struct{ account, container string }

func (lc LogCategories) rules(r *record) map[ruleKey]int {
	out := map[ruleKey]int{}
	if r == nil || r.Properties.StorageAccountID == "" {
		return out
	}
	for c, days := range lc.enabledCategories(&r.Properties) {
		if days > 0 {
			out[ruleKey{strings.ToLower(r.Properties.StorageAccountID), ContainerFor(c)}] = days
		}
	}
	return out
}

// applyRetention moves the retention rules of a setting from old to new.
// A destination account that no longer exists has no rules to change.
func (p *Provider) applyRetention(ctx context.Context, lc LogCategories, old, new *record) error {
	rid := ""
	if old != nil {
		rid = old.ResourceID
	}
	if new != nil {
		rid = new.ResourceID
	}
	was, now := lc.rules(old), lc.rules(new)
	var errs []error
	set := func(k ruleKey, days int) {
		err := p.opts.Storage.SetRetention(ctx, k.account, k.container, blobPrefix(rid), days)
		var ae *azerr.Error
		if err != nil && !(errors.As(err, &ae) && ae.Status == http.StatusNotFound) {
			errs = append(errs, err)
		}
	}
	for k := range was {
		if _, keep := now[k]; !keep {
			set(k, 0)
		}
	}
	for k, days := range now {
		if was[k] != days {
			set(k, days)
		}
	}
	return errors.Join(errs...)
}

// owner returns the resource whose settings govern events of resourceID:
// the ID itself when settings may be put on its type, else the top-level
// resource it belongs to (events of ".../vaults/v/secrets/s" or of an
// extension under the vault are the vault's, as in Azure's logs).
func (p *Provider) owner(resourceID string) (arm.ResourceID, LogCategories, bool, error) {
	id, err := arm.ParseResourceID(resourceID)
	if err != nil {
		return id, LogCategories{}, false, err
	}
	if lc, ok := p.categoriesFor(id); ok {
		return id, lc, true, nil
	}
	if len(id.Providers) == 0 || len(id.Providers[0].Names) == 0 {
		return id, LogCategories{}, false, nil
	}
	b := id.Providers[0]
	top := arm.NewResourceID(id.SubscriptionID, id.ResourceGroup, b.Namespace, b.Types[0], b.Names[0])
	lc, ok := p.categoriesFor(top)
	return top, lc, ok, nil
}

// DestinationsFor lists the storage accounts that resourceID's diagnostic
// settings send logs to, with the enabled categories of each. A resource
// without settings has none.
func (p *Provider) DestinationsFor(ctx context.Context, resourceID string) ([]Destination, error) {
	scope, lc, ok, err := p.owner(resourceID)
	if err != nil || !ok {
		return nil, err
	}
	recs, err := p.list(ctx, p.st, scope.String())
	if err != nil {
		return nil, err
	}
	var out []Destination
	for _, r := range recs {
		if r.Properties.StorageAccountID == "" {
			continue
		}
		cats := lc.enabledCategories(&r.Properties)
		if len(cats) == 0 {
			continue
		}
		d := Destination{SettingName: r.Name, StorageAccountID: r.Properties.StorageAccountID}
		unlimited := false
		for c, days := range cats {
			d.Categories = append(d.Categories, c)
			d.RetentionDays = max(d.RetentionDays, days)
			unlimited = unlimited || days == 0
		}
		if unlimited {
			d.RetentionDays = 0
		}
		slices.Sort(d.Categories)
		out = append(out, d)
	}
	return out, nil
}

// Ship appends one event of resourceID (a JSON object) to every storage
// account whose setting enables category, in the hour blob of eventTime
// (audit.Sink). Events of a child or extension of a resource go to the
// resource's destinations and blob.
// A resource without a matching setting ships nothing and returns nil. A
// destination account that no longer exists is skipped, as Azure drops logs
// for a deleted destination; other failures are returned for a retry (and
// destinations already written may then see the event twice).
func (p *Provider) Ship(ctx context.Context, resourceID, category string, eventJSON []byte, eventTime time.Time) error {
	dests, err := p.DestinationsFor(ctx, resourceID)
	if err != nil || len(dests) == 0 {
		return err
	}
	var line bytes.Buffer
	if err := json.Compact(&line, eventJSON); err != nil || !bytes.HasPrefix(line.Bytes(), []byte("{")) {
		// Retrying cannot fix a malformed event; keyhaven's own log keeps it.
		p.opts.Logger.Error("insights: audit event is not a JSON object; not shipped", "resource", resourceID, "category", category)
		return nil
	}
	line.WriteByte('\n')
	scope, _, _, _ := p.owner(resourceID)
	path := BlobPath(scope.String(), eventTime)
	var errs []error
	for _, d := range dests {
		if !slices.ContainsFunc(d.Categories, func(c string) bool { return strings.EqualFold(c, category) }) {
			continue
		}
		err := p.opts.Storage.AppendBlob(ctx, d.StorageAccountID, ContainerFor(category), path, line.Bytes())
		var ae *azerr.Error
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			p.opts.Logger.Warn("insights: destination storage account not found; event dropped for it",
				"setting", d.SettingName, "storageAccount", d.StorageAccountID)
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("ship to %s (setting %s): %w", d.StorageAccountID, d.SettingName, err))
		}
	}
	return errors.Join(errs...)
}
