package storage

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/store"
)

// blobScope is what a request under an account names: the account, and
// the container and blob id when the path has them.
type blobScope struct {
	account   arm.ResourceID
	container string
	blobID    string
}

// parseBlobScope checks the blobServices name ("default", as in Azure) and
// the account's existence; it answers 404 otherwise.
func (p *Provider) parseBlobScope(ctx context.Context, r store.Reader, req *arm.Request) (*record, blobScope, error) {
	var s blobScope
	if len(req.ID.Providers) != 1 || req.ID.ResourceGroup == "" {
		return nil, s, azerr.NotFound("NotFound", "Blob services are served per storage account.")
	}
	names := req.ID.Providers[0].Names
	a, _, err := p.lookup(ctx, r, req.ID)
	if err != nil {
		return nil, s, err
	}
	s.account = a.id()
	if len(names) > 1 && !strings.EqualFold(names[1], "default") {
		return nil, s, azerr.NotFound("ResourceNotFound", "The blob service '%s' does not exist; the only one is 'default'.", clip(names[1], 40))
	}
	if len(names) > 2 {
		s.container = names[2]
		if err := ValidateContainerName(s.container); err != nil {
			return nil, s, containerNotFound(s.container)
		}
	}
	if len(names) > 3 {
		s.blobID = strings.ToLower(names[3])
	}
	return a, s, nil
}

func (s blobScope) serviceID() arm.ResourceID   { return s.account.Child("blobServices", "default") }
func (s blobScope) containerID(c string) string { return s.serviceID().Child("containers", c).String() }
func (s blobScope) blobResID(c, id string) string {
	return s.serviceID().Child("containers", c).Child("blobs", id).String()
}

func (p *Provider) serveBlobService(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if req.Method != http.MethodGet {
		return nil, arm.MethodNotAllowed(req.Method)
	}
	_, s, err := p.parseBlobScope(ctx, p.st, req)
	if err != nil {
		return nil, err
	}
	svc := map[string]any{"id": s.serviceID().String(), "name": "default", "type": BlobSvcType,
		"properties": map[string]any{"deleteRetentionPolicy": map[string]any{"enabled": false}}}
	if req.Kind == arm.KindCollection {
		return arm.OK(arm.Page[map[string]any]{Value: []map[string]any{svc}}), nil
	}
	return arm.OK(svc), nil
}

type containerOut struct {
	ID         string         `json:"id"`
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Properties containerProps `json:"properties"`
}

type containerProps struct {
	LastModifiedTime      time.Time `json:"lastModifiedTime"`
	PublicAccess          string    `json:"publicAccess"`
	HasImmutabilityPolicy bool      `json:"hasImmutabilityPolicy"`
	HasLegalHold          bool      `json:"hasLegalHold"`
}

func (s blobScope) renderContainer(c *containerRecord) containerOut {
	return containerOut{ID: s.containerID(c.Name), Name: c.Name, Type: ContainerType,
		Properties: containerProps{LastModifiedTime: c.LastModified, PublicAccess: "None"}}
}

func (p *Provider) serveContainers(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if req.Method != http.MethodGet {
		return nil, arm.MethodNotAllowed(req.Method)
	}
	var out any
	err := p.st.View(ctx, func(r store.Reader) error {
		a, s, err := p.parseBlobScope(ctx, r, req)
		if err != nil {
			return err
		}
		if req.Kind == arm.KindResource {
			var c containerRecord
			if _, err := store.LoadJSON(ctx, r, containerKey(a.InternalID, s.container), &c); errors.Is(err, store.ErrNotFound) {
				return containerNotFound(s.container)
			} else if err != nil {
				return err
			}
			out = s.renderContainer(&c)
			return nil
		}
		recs, err := r.List(ctx, containerPrefix+a.InternalID+"/", store.ListOptions{})
		if err != nil {
			return err
		}
		items := make([]containerOut, 0, len(recs))
		for _, rec := range recs {
			c, err := store.DecodeJSON[containerRecord](rec)
			if err != nil {
				return err
			}
			items = append(items, s.renderContainer(c))
		}
		page, err := arm.Paginate(req, items, func(c containerOut) string { return c.Name })
		out = page
		return err
	})
	if err != nil {
		return nil, azerr.From(err)
	}
	return arm.OK(out), nil
}

type blobOut struct {
	ID         string       `json:"id"`
	Name       string       `json:"name"`
	Type       string       `json:"type"`
	Properties blobProps    `json:"properties"`
	Content    *blobContent `json:"content,omitempty"`
}

type blobProps struct {
	BlobType      string    `json:"blobType"`
	ContentLength int64     `json:"contentLength"`
	CreationTime  time.Time `json:"creationTime"`
	LastModified  time.Time `json:"lastModified"`
}

// blobContent is a range of a blob's bytes; Data is base64 in JSON.
type blobContent struct {
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
	Data   []byte `json:"data"`
}

func (s blobScope) renderBlob(b BlobInfo) blobOut {
	return blobOut{ID: s.blobResID(b.Container, b.ID), Name: b.Name, Type: BlobType,
		Properties: blobProps{BlobType: "AppendBlob", ContentLength: b.Size, CreationTime: b.Created, LastModified: b.LastModified}}
}

func (p *Provider) serveBlobs(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	switch {
	case req.Kind == arm.KindCollection && req.Method == http.MethodGet:
		return p.listBlobsRoute(ctx, req)
	case req.Kind == arm.KindResource && req.Method == http.MethodGet:
		return p.getBlobRoute(ctx, req)
	case req.Kind == arm.KindResource && req.Method == http.MethodDelete:
		return p.deleteBlobRoute(ctx, req)
	}
	return nil, arm.MethodNotAllowed(req.Method)
}

func (p *Provider) listBlobsRoute(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	var items []blobOut
	err := p.st.View(ctx, func(r store.Reader) error {
		a, s, err := p.parseBlobScope(ctx, r, req)
		if err != nil {
			return err
		}
		infos, err := p.listBlobs(ctx, r, a.InternalID, s.container, req.Query.Get("prefix"))
		if err != nil {
			return err
		}
		items = make([]blobOut, 0, len(infos))
		for _, b := range infos {
			items = append(items, s.renderBlob(b))
		}
		return nil
	})
	if err != nil {
		return nil, azerr.From(err)
	}
	page, err := arm.Paginate(req, items, func(b blobOut) string { return b.Name })
	if err != nil {
		return nil, err
	}
	return arm.OK(page), nil
}

// findBlob resolves a blob id under the request's container.
func findBlob(ctx context.Context, r store.Reader, aid string, s blobScope) (*blobMeta, int64, error) {
	var ref blobRef
	if !arm.IsGUID(s.blobID) {
		return nil, 0, blobNotFound()
	}
	if _, err := store.LoadJSON(ctx, r, idKey(aid, s.blobID), &ref); errors.Is(err, store.ErrNotFound) {
		return nil, 0, blobNotFound()
	} else if err != nil {
		return nil, 0, err
	}
	if ref.Container != s.container {
		return nil, 0, blobNotFound()
	}
	var m blobMeta
	ver, err := store.LoadJSON(ctx, r, metaKey(aid, ref.Container, ref.Name), &m)
	if errors.Is(err, store.ErrNotFound) || err == nil && m.ID != s.blobID {
		return nil, 0, blobNotFound()
	}
	if err != nil {
		return nil, 0, err
	}
	return &m, ver, nil
}

func intParam(req *arm.Request, name string, def int64) (int64, error) {
	v := req.Query.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, azerr.New(http.StatusBadRequest, "InvalidQueryParameterValue", "The value of '%s' must be a non-negative integer.", name).WithTarget(name)
	}
	return n, nil
}

func (p *Provider) getBlobRoute(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	offset, err := intParam(req, "offset", 0)
	if err != nil {
		return nil, err
	}
	length, err := intParam(req, "length", MaxReadChunk)
	if err != nil {
		return nil, err
	}
	length = min(length, MaxReadChunk)
	var out blobOut
	err = p.st.View(ctx, func(r store.Reader) error {
		a, s, err := p.parseBlobScope(ctx, r, req)
		if err != nil {
			return err
		}
		m, _, err := findBlob(ctx, r, a.InternalID, s)
		if err != nil {
			return err
		}
		if offset > m.Size {
			return azerr.New(http.StatusRequestedRangeNotSatisfiable, "InvalidRange",
				"The offset %d is beyond the blob's length of %d bytes.", offset, m.Size).WithTarget("offset")
		}
		n := min(length, m.Size-offset)
		data, err := readRange(ctx, r, a.InternalID, m.ID, offset, n)
		if err != nil {
			return err
		}
		out = s.renderBlob(m.info())
		out.Content = &blobContent{Offset: offset, Length: int64(len(data)), Data: data}
		return nil
	})
	if err != nil {
		return nil, azerr.From(err)
	}
	return arm.OK(out), nil
}

// deleteBlobRoute is reached only after the ARM core's write guards, so a
// lock on the account (or above it) refuses it with 409 ScopeLocked.
func (p *Provider) deleteBlobRoute(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	gone := false
	err := p.st.Update(ctx, func(tx store.Tx) error {
		gone = false
		a, s, err := p.parseBlobScope(ctx, tx, req)
		if err != nil {
			return err
		}
		m, ver, err := findBlob(ctx, tx, a.InternalID, s)
		var ae *azerr.Error
		if errors.As(err, &ae) && ae.Code == "BlobNotFound" {
			gone = true
			return nil
		}
		if err != nil {
			return err
		}
		return deleteBlob(ctx, tx, a.InternalID, m, ver)
	})
	if err != nil {
		return nil, storeErr(err)
	}
	if gone {
		return arm.NoContent(), nil
	}
	return &arm.Response{Status: http.StatusOK}, nil
}
