package arm

import (
	"net/http"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

// Constructors for ARM's common error codes. Messages follow Azure's wording
// where clients or users are known to read them.

// ResourceNotFound is the 404 for a missing provider resource.
func ResourceNotFound(id ResourceID) *azerr.Error {
	return azerr.New(http.StatusNotFound, "ResourceNotFound",
		"The Resource '%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
		id.ResourceType()+"/"+id.Name(), id.ResourceGroup)
}

// ResourceGroupNotFound is the 404 for a missing resource group.
func ResourceGroupNotFound(rg string) *azerr.Error {
	return azerr.New(http.StatusNotFound, "ResourceGroupNotFound", "Resource group '%s' could not be found.", rg)
}

// SubscriptionNotFound is the 404 for a missing subscription.
func SubscriptionNotFound(sub string) *azerr.Error {
	return azerr.New(http.StatusNotFound, "SubscriptionNotFound", "The subscription '%s' could not be found.", sub)
}

// InvalidResourceName is the 400 for a name that breaks a naming rule.
func InvalidResourceName(format string, args ...any) *azerr.Error {
	return azerr.New(http.StatusBadRequest, "InvalidResourceName", format, args...)
}

// InvalidRequestContent is the 400 for a body that is not what the operation
// expects.
func InvalidRequestContent(format string, args ...any) *azerr.Error {
	return azerr.New(http.StatusBadRequest, "InvalidRequestContent", format, args...)
}

// BadRequest is a generic 400 with a code of the caller's choice.
func BadRequest(code, format string, args ...any) *azerr.Error {
	return azerr.New(http.StatusBadRequest, code, format, args...)
}

// AuthorizationFailed is ARM's 403 for a denied action.
func AuthorizationFailed(objectID, action, scope string) *azerr.Error {
	return azerr.New(http.StatusForbidden, "AuthorizationFailed",
		"The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '%s' or the scope is invalid. If access was recently granted, please refresh your credentials.",
		objectID, objectID, action, scope)
}

// MethodNotAllowed is the 405 for a method a route does not serve.
func MethodNotAllowed(method string) *azerr.Error {
	return azerr.New(http.StatusMethodNotAllowed, "MethodNotAllowed",
		"The requested method '%s' is not allowed for this resource.", method)
}
