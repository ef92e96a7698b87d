package arm

import (
	"context"
	"errors"
	"strings"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/store"
)

// ListGeneric implements GroupResources.ListResources for a provider whose
// records list reads and generic converts.
func ListGeneric[T any](ctx context.Context, sub, rg string, list func(ctx context.Context, sub, rg string) ([]T, error), generic func(T) GenericResource) ([]GenericResource, error) {
	recs, err := list(ctx, sub, rg)
	if err != nil {
		return nil, err
	}
	out := make([]GenericResource, 0, len(recs))
	for _, r := range recs {
		out = append(out, generic(r))
	}
	return out, nil
}

// RenderPage renders recs and answers with the page of them req asks for,
// ordered by key (see Paginate).
func RenderPage[T, R any](req *Request, recs []T, render func(T) R, key func(R) string) (*Response, error) {
	items := make([]R, 0, len(recs))
	for _, r := range recs {
		items = append(items, render(r))
	}
	page, err := Paginate(req, items, key)
	if err != nil {
		return nil, err
	}
	return OK(page), nil
}

// CheckNameRequest is the body of a checkNameAvailability action.
type CheckNameRequest struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// CheckNameResult is the answer of a checkNameAvailability action.
type CheckNameResult struct {
	NameAvailable bool   `json:"nameAvailable"`
	Reason        string `json:"reason,omitempty"`
	Message       string `json:"message,omitempty"`
}

// DecodeCheckName accepts only a subscription-level checkNameAvailability
// action and decodes its body. The provider checks the requested type
// itself: its messages differ.
func DecodeCheckName(req *Request) (CheckNameRequest, error) {
	var body CheckNameRequest
	if req.Kind != KindAction || req.ID.SubscriptionID == "" || req.ID.ResourceGroup != "" {
		return body, MethodNotAllowed(req.Method)
	}
	if err := DecodeJSON(req.Body, &body); err != nil {
		return body, err
	}
	return body, nil
}

// AnswerCheckName answers for name: AccountNameInvalid with validate's
// message when it fails; else available when lookup reports
// store.ErrNotFound, AlreadyExists with the taken message when it finds the
// name. lookup runs only for a valid name.
func AnswerCheckName(name string, validate func(string) error, lookup func(string) error, taken string) (*Response, error) {
	if err := validate(name); err != nil {
		return OK(CheckNameResult{Reason: "AccountNameInvalid", Message: azerr.From(err).Message}), nil
	}
	err := lookup(name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return OK(CheckNameResult{NameAvailable: true}), nil
	case err != nil:
		return nil, azerr.Internal(err)
	}
	return OK(CheckNameResult{Reason: "AlreadyExists", Message: taken}), nil
}

// RequireLocation checks a PUT body's required location for resourceType
// against the locations the provider offers, and returns it normalized.
func (r *Request) RequireLocation(loc *string, resourceType string) (string, error) {
	if loc == nil || strings.TrimSpace(*loc) == "" {
		return "", BadRequest("LocationRequired", "The location property is required for this definition.").WithTarget("location")
	}
	n := NormalizeLocation(*loc)
	if !r.LocationOffered(n) {
		return "", BadRequest("LocationNotAvailableForResourceType",
			"The provided location '%s' is not available for resource type '%s'. List of available regions for the resource type is '%s'.",
			trunc(*loc, 40), resourceType, strings.Join(r.Locations(), ",")).WithTarget("location")
	}
	return n, nil
}

// TagsOf returns a PUT body's tags (absent or null: none) once they pass
// ValidateTags.
func TagsOf(t *map[string]string) (map[string]string, error) {
	tags := map[string]string{}
	if t != nil && *t != nil {
		tags = *t
	}
	return tags, ValidateTags(tags)
}
