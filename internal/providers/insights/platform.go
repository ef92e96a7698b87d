package insights

import (
	"context"
	"errors"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/store"
)

// PutSetting creates or replaces the diagnostic setting name on resourceID
// for a platform caller (e.g. the audit-log setting of a Stack Edge
// device's vault), with the validation of a PUT but without linked
// authorization: the calling provider authorizes. by names the caller in
// systemData (may be nil).
func (p *Provider) PutSetting(ctx context.Context, resourceID, name string, props Properties, by *principal.Principal) error {
	if err := validateName(name); err != nil {
		return err
	}
	scope, err := arm.ParseResourceID(resourceID)
	if err != nil {
		return err
	}
	lc, ok := p.categoriesFor(scope)
	if !ok {
		return badRequest("The resource type '%s' does not support diagnostic settings.", scope.ResourceType())
	}
	if err := p.validate(ctx, nil, lc, &props); err != nil {
		return err
	}
	_, err = p.save(ctx, lc, scope.String(), name, props, by, p.clk.Now())
	return err
}

// HasSetting reports whether resourceID carries the diagnostic setting name.
func (p *Provider) HasSetting(ctx context.Context, resourceID, name string) (bool, error) {
	scope, err := arm.ParseResourceID(resourceID)
	if err != nil {
		return false, err
	}
	_, _, err = p.get(ctx, p.st, scope.String(), name)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	}
	return false, azerr.Internal(err)
}
