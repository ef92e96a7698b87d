package arm

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

var apiVersionRe = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(-[A-Za-z]{1,20})?$`)

// apiVersionFrom returns the request's api-version, or ARM's 400 when it is
// missing or malformed. The parameter name matches case-insensitively.
func apiVersionFrom(q url.Values) (string, error) {
	var v string
	found := false
	for k, vs := range q {
		if strings.EqualFold(k, "api-version") && len(vs) > 0 {
			v, found = vs[0], true
			break
		}
	}
	if !found || v == "" {
		return "", azerr.New(http.StatusBadRequest, "MissingApiVersionParameter",
			"The api-version query parameter (?api-version=) is required for all requests.")
	}
	if !apiVersionRe.MatchString(v) {
		return "", azerr.New(http.StatusBadRequest, "InvalidApiVersionParameter",
			"The api-version '%s' is invalid. The supported versions are in the format 'yyyy-MM-dd' or 'yyyy-MM-dd-preview'.", trunc(v, 40))
	}
	return v, nil
}

func supports(versions []string, v string) bool {
	for _, s := range versions {
		if strings.EqualFold(s, v) {
			return true
		}
	}
	return false
}

// checkCoreVersion answers InvalidApiVersionParameter for the built-in
// Microsoft.Resources types, as ARM does.
func checkCoreVersion(versions []string, v string) error {
	if supports(versions, v) {
		return nil
	}
	return azerr.New(http.StatusBadRequest, "InvalidApiVersionParameter",
		"The api-version '%s' is invalid. The supported versions are '%s'. The supported api-versions are '%s'.",
		v, strings.Join(versions, ","), strings.Join(versions, ","))
}

// checkProviderVersion answers NoRegisteredProviderFound for a provider type,
// listing the supported versions and locations as ARM does.
func checkProviderVersion(rt ResourceType, namespace, location, v string, locations []string) error {
	if supports(rt.APIVersions, v) {
		return nil
	}
	if location == "" {
		location = "global"
	}
	return azerr.New(http.StatusBadRequest, "NoRegisteredProviderFound",
		"No registered resource provider found for location '%s' and API version '%s' for type '%s'. The supported api-versions are '%s'. The supported locations are '%s'.",
		location, v, rt.Name, strings.Join(rt.APIVersions, ", "), strings.Join(locations, ", "))
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Versions of the built-in types. Generous on purpose: clients of many ages
// (az CLI, SDKs, Terraform) pin different ones and the shapes we serve did
// not change across them.
var (
	resourcesAPIVersions = []string{
		"2014-04-01", "2014-04-01-preview", "2015-01-01", "2015-11-01", "2016-02-01", "2016-06-01",
		"2016-07-01", "2016-09-01", "2017-05-10", "2017-08-01", "2018-02-01", "2018-05-01",
		"2019-03-01", "2019-05-01", "2019-05-10", "2019-07-01", "2019-08-01", "2019-10-01",
		"2020-06-01", "2020-08-01", "2020-10-01", "2021-01-01", "2021-04-01", "2022-09-01",
		"2023-07-01", "2024-03-01", "2024-07-01", "2024-11-01", "2025-03-01", "2025-04-01",
	}
	subscriptionsAPIVersions = []string{
		"2014-04-01", "2014-04-01-preview", "2015-01-01", "2016-06-01", "2018-06-01", "2019-06-01",
		"2019-11-01", "2020-01-01", "2021-01-01", "2022-01-01", "2022-12-01", "2024-11-01",
	}
)
