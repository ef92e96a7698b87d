package arm

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

// MaxPageSize caps $top.
const MaxPageSize = 1000

// Page is ARM's list shape.
type Page[T any] struct {
	Value    []T    `json:"value"`
	NextLink string `json:"nextLink,omitempty"`
}

func queryGet(q url.Values, name string) string {
	for k, vs := range q {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}

// PageSize returns the page size of req: $top when given (1..MaxPageSize),
// else the server default.
func (r *Request) PageSize() (int, error) {
	top := queryGet(r.Query, "$top")
	if top == "" {
		return r.srv.opts.PageSize, nil
	}
	n, err := strconv.Atoi(top)
	if err != nil || n < 1 || n > MaxPageSize {
		return 0, azerr.New(http.StatusBadRequest, "InvalidParameter",
			"The value of $top must be an integer between 1 and %d.", MaxPageSize).WithTarget("$top")
	}
	return n, nil
}

// Paginate returns the page of items that req asks for. Items are ordered
// by key; the opaque $skiptoken carries the last key served, so a page is
// stable while items are added or removed elsewhere in the list. nextLink is
// absolute (the SDK pagers follow it as given) and keeps every other query
// parameter, api-version and $top included.
func Paginate[T any](req *Request, items []T, key func(T) string) (*Page[T], error) {
	size, err := req.PageSize()
	if err != nil {
		return nil, err
	}
	after := ""
	if tok := queryGet(req.Query, "$skiptoken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			return nil, azerr.New(http.StatusBadRequest, "InvalidParameter", "The $skiptoken is invalid.").WithTarget("$skiptoken")
		}
		after = string(b)
	}
	sorted := append([]T(nil), items...)
	sort.SliceStable(sorted, func(i, j int) bool { return key(sorted[i]) < key(sorted[j]) })
	start := sort.Search(len(sorted), func(i int) bool { return key(sorted[i]) > after })
	if after == "" {
		start = 0
	}
	end := min(start+size, len(sorted))
	p := &Page[T]{Value: sorted[start:end]}
	if p.Value == nil {
		p.Value = []T{}
	}
	if end < len(sorted) {
		q := url.Values{}
		for k, vs := range req.Query {
			if !strings.EqualFold(k, "$skiptoken") {
				q[k] = vs
			}
		}
		q.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte(key(sorted[end-1]))))
		p.NextLink = req.srv.opts.BaseURL + req.path + "?" + q.Encode()
	}
	return p, nil
}
