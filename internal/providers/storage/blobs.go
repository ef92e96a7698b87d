package storage

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/store"
)

func containerNotFound(c string) error {
	return azerr.NotFound("ContainerNotFound", "The specified container '%s' does not exist.", clip(c, 70))
}

func blobNotFound() error {
	return azerr.NotFound("BlobNotFound", "The specified blob does not exist.")
}

// AppendBlob appends data to the append blob blobPath in container of the
// storage account accountID, creating the container and the blob when they
// do not exist (as Azure Monitor does for its insights-logs-* containers).
// Appends to one blob are applied in the order they commit; a blob is never
// rewritten or truncated.
func (p *Provider) AppendBlob(ctx context.Context, accountID, container, blobPath string, data []byte) error {
	if err := ValidateContainerName(container); err != nil {
		return err
	}
	if err := ValidateBlobName(blobPath); err != nil {
		return err
	}
	if len(data) == 0 {
		return nil
	}
	if len(data) > MaxAppendBytes {
		return azerr.New(http.StatusRequestEntityTooLarge, "RequestBodyTooLarge",
			"An append is at most %d bytes; this one is %d bytes.", MaxAppendBytes, len(data))
	}
	err := p.st.Update(ctx, func(tx store.Tx) error {
		now := p.clk.Now().UTC()
		a, err := p.resolve(ctx, tx, accountID)
		if err != nil {
			return err
		}
		aid := a.InternalID
		var c containerRecord
		_, err = store.LoadJSON(ctx, tx, containerKey(aid, container), &c)
		if errors.Is(err, store.ErrNotFound) {
			existing, err := tx.List(ctx, containerPrefix+aid+"/", store.ListOptions{Limit: MaxContainers})
			if err != nil {
				return err
			}
			if len(existing) >= MaxContainers {
				return azerr.New(http.StatusConflict, "TooManyContainers", "The storage account has the maximum of %d containers.", MaxContainers)
			}
			c = containerRecord{Name: container, Created: now, LastModified: now}
			if _, err := store.PutJSON(ctx, tx, containerKey(aid, container), c, store.Absent); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		var m blobMeta
		ver, err := store.LoadJSON(ctx, tx, metaKey(aid, container, blobPath), &m)
		if errors.Is(err, store.ErrNotFound) {
			m = blobMeta{ID: strings.ToLower(p.opts.NewID()), Container: container, Name: blobPath, Created: now}
			ver = store.Absent
			if _, err := store.PutJSON(ctx, tx, idKey(aid, m.ID), blobRef{Container: container, Name: blobPath}, store.Absent); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		if m.Size+int64(len(data)) > MaxBlobBytes {
			return azerr.New(http.StatusConflict, "MaxBlobSizeConditionNotMet",
				"The append would grow the blob beyond its maximum size of %d bytes.", int64(MaxBlobBytes))
		}
		// Absent: a chunk is written once, at the offset where the blob ended.
		if _, err := tx.Put(ctx, chunkKey(aid, m.ID, m.Size), data, store.Absent); err != nil {
			return err
		}
		m.Size += int64(len(data))
		m.Appends++
		m.LastModified = now
		_, err = store.PutJSON(ctx, tx, metaKey(aid, container, blobPath), m, ver)
		return err
	})
	return apiErr(err)
}

// blobRef is the value of the blob id index.
type blobRef struct {
	Container string `json:"container"`
	Name      string `json:"name"`
}

// ListBlobs lists the blobs of a container whose names start with prefix,
// ordered by name. A missing container is a 404.
func (p *Provider) ListBlobs(ctx context.Context, accountID, container, prefix string) ([]BlobInfo, error) {
	if err := ValidateContainerName(container); err != nil {
		return nil, err
	}
	var out []BlobInfo
	err := p.st.View(ctx, func(r store.Reader) error {
		a, err := p.resolve(ctx, r, accountID)
		if err != nil {
			return err
		}
		out, err = p.listBlobs(ctx, r, a.InternalID, container, prefix)
		return err
	})
	if err != nil {
		return nil, apiErr(err)
	}
	return out, nil
}

func (p *Provider) listBlobs(ctx context.Context, r store.Reader, aid, container, prefix string) ([]BlobInfo, error) {
	if len(prefix) > MaxBlobNameLength {
		return nil, azerr.BadParameter("The prefix is longer than %d bytes.", MaxBlobNameLength)
	}
	if _, err := r.Get(ctx, containerKey(aid, container)); errors.Is(err, store.ErrNotFound) {
		return nil, containerNotFound(container)
	} else if err != nil {
		return nil, err
	}
	recs, err := r.List(ctx, metaKey(aid, container, prefix), store.ListOptions{Limit: MaxListBlobs + 1})
	if err != nil {
		return nil, err
	}
	if len(recs) > MaxListBlobs {
		return nil, azerr.New(http.StatusBadRequest, "TooManyBlobs",
			"More than %d blobs match; list with a longer prefix.", MaxListBlobs)
	}
	out := make([]BlobInfo, 0, len(recs))
	for _, rec := range recs {
		m, err := store.DecodeJSON[blobMeta](rec)
		if err != nil {
			return nil, err
		}
		out = append(out, m.info())
	}
	return out, nil
}

// ReadBlob returns a whole blob (at most MaxReadBlob bytes).
func (p *Provider) ReadBlob(ctx context.Context, accountID, container, blobPath string) ([]byte, error) {
	if err := ValidateContainerName(container); err != nil {
		return nil, err
	}
	if err := ValidateBlobName(blobPath); err != nil {
		return nil, err
	}
	var out []byte
	err := p.st.View(ctx, func(r store.Reader) error {
		a, err := p.resolve(ctx, r, accountID)
		if err != nil {
			return err
		}
		var m blobMeta
		if _, err := store.LoadJSON(ctx, r, metaKey(a.InternalID, container, blobPath), &m); errors.Is(err, store.ErrNotFound) {
			return blobNotFound()
		} else if err != nil {
			return err
		}
		if m.Size > MaxReadBlob {
			return azerr.New(http.StatusBadRequest, "BlobTooLarge", "The blob is %d bytes; read it in ranges of at most %d bytes.", m.Size, MaxReadChunk)
		}
		out, err = readRange(ctx, r, a.InternalID, m.ID, 0, m.Size)
		return err
	})
	if err != nil {
		return nil, apiErr(err)
	}
	return out, nil
}

// readRange reads [offset, offset+length) of a blob from its chunks.
func readRange(ctx context.Context, r store.Reader, aid, blobID string, offset, length int64) ([]byte, error) {
	out := make([]byte, 0, length)
	if length <= 0 {
		return out, nil
	}
	pfx := chunkBlobPrefix(aid, blobID)
	// The chunk holding offset is the last one starting at or before it.
	first, err := r.List(ctx, pfx, store.ListOptions{After: chunkKey(aid, blobID, offset+1), Reverse: true, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(first) == 0 {
		return nil, fmt.Errorf("blob %s: no chunk at offset %d", blobID, offset)
	}
	recs := first
	end := offset + length
	for {
		for _, rec := range recs {
			start, err := strconv.ParseInt(strings.TrimPrefix(rec.Key, pfx), 16, 64)
			if err != nil {
				return nil, fmt.Errorf("blob chunk key %s: %w", rec.Key, err)
			}
			if start >= end {
				return out, nil
			}
			lo, hi := max(offset, start)-start, min(end, start+int64(len(rec.Value)))-start
			if lo < hi {
				out = append(out, rec.Value[lo:hi]...)
			}
			if int64(len(out)) >= length {
				return out, nil
			}
		}
		next, err := r.List(ctx, pfx, store.ListOptions{After: recs[len(recs)-1].Key, Limit: 256})
		if err != nil {
			return nil, err
		}
		if len(next) == 0 {
			return out, nil
		}
		recs = next
	}
}

// deleteBlob removes one blob's properties, id index and data.
func deleteBlob(ctx context.Context, tx store.Tx, aid string, m *blobMeta, metaVersion int64) error {
	if err := tx.Delete(ctx, metaKey(aid, m.Container, m.Name), metaVersion); err != nil {
		return err
	}
	if err := tx.Delete(ctx, idKey(aid, m.ID), store.Any); err != nil {
		return err
	}
	chunks, err := tx.List(ctx, chunkBlobPrefix(aid, m.ID), store.ListOptions{})
	if err != nil {
		return err
	}
	for _, c := range chunks {
		if err := tx.Delete(ctx, c.Key, store.Any); err != nil {
			return err
		}
	}
	return nil
}

// retentionRule is a stored retention rule.
type retentionRule struct {
	Container string `json:"container"`
	Prefix    string `json:"prefix"`
	Days      int    `json:"days"`
}

// SetRetention makes PruneBlobs delete the blobs of container whose names
// start with prefix once their last append is more than days old; days 0
// removes the rule. Diagnostic settings set one rule per resource and log
// container when their retentionPolicy is enabled.
func (p *Provider) SetRetention(ctx context.Context, accountID, container, prefix string, days int) error {
	if err := ValidateContainerName(container); err != nil {
		return err
	}
	if len(prefix) > MaxBlobNameLength || strings.ContainsFunc(prefix, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return azerr.BadParameter("The retention prefix must be at most %d printable bytes.", MaxBlobNameLength)
	}
	if days < 0 || days > MaxRetentionDays {
		return azerr.BadParameter("Retention days must be between 0 and %d.", MaxRetentionDays)
	}
	err := p.st.Update(ctx, func(tx store.Tx) error {
		a, err := p.resolve(ctx, tx, accountID)
		if err != nil {
			return err
		}
		key := retentionKey(a.InternalID, container, prefix)
		if days == 0 {
			return tx.Delete(ctx, key, store.Any)
		}
		_, err = store.PutJSON(ctx, tx, key, retentionRule{Container: container, Prefix: prefix, Days: days}, store.Any)
		return err
	})
	return apiErr(err)
}

// PruneBlobs finishes the clean-up of deleted accounts and deletes every
// blob under a retention rule whose last append is older than the rule
// allows at now. It returns how many blobs it deleted. Locks do not stop it
// (see the package documentation). The server calls it periodically.
func (p *Provider) PruneBlobs(ctx context.Context, now time.Time) (int, error) {
	marks, err := p.st.List(ctx, purgePrefix, store.ListOptions{Limit: 100})
	if err != nil {
		return 0, err
	}
	for _, m := range marks {
		p.purgeData(ctx, strings.TrimPrefix(m.Key, purgePrefix))
	}
	n, after := 0, ""
	for {
		rules, err := p.st.List(ctx, retentionPrefix, store.ListOptions{After: after, Limit: 100})
		if err != nil {
			return n, err
		}
		for _, rec := range rules {
			rule, err := store.DecodeJSON[retentionRule](rec)
			if err != nil {
				return n, err
			}
			aid, _, _ := strings.Cut(strings.TrimPrefix(rec.Key, retentionPrefix), "/")
			k, err := p.pruneRule(ctx, aid, *rule, now.Add(-time.Duration(rule.Days)*24*time.Hour))
			n += k
			if err != nil {
				return n, err
			}
		}
		if len(rules) < 100 {
			return n, nil
		}
		after = rules[len(rules)-1].Key
	}
}

func (p *Provider) pruneRule(ctx context.Context, aid string, rule retentionRule, cutoff time.Time) (int, error) {
	n, after := 0, ""
	pfx := metaKey(aid, rule.Container, rule.Prefix)
	for {
		recs, err := p.st.List(ctx, pfx, store.ListOptions{After: after, Limit: 200})
		if err != nil {
			return n, err
		}
		for _, rec := range recs {
			m, err := store.DecodeJSON[blobMeta](rec)
			if err != nil {
				return n, err
			}
			if !m.LastModified.Before(cutoff) {
				continue
			}
			err = p.st.Update(ctx, func(tx store.Tx) error { return deleteBlob(ctx, tx, aid, m, rec.Version) })
			if errors.Is(err, store.ErrConflict) {
				continue // appended to meanwhile: no longer old
			}
			if err != nil {
				return n, err
			}
			n++
		}
		if len(recs) < 200 {
			return n, nil
		}
		after = recs[len(recs)-1].Key
	}
}

// purgeData removes everything a deleted account held, in batches, then
// its purge marker. Failures are logged and retried by PruneBlobs.
func (p *Provider) purgeData(ctx context.Context, aid string) {
	for _, pfx := range []string{containerPrefix, metaPrefix, idPrefix, chunkPrefix, retentionPrefix} {
		for {
			recs, err := p.st.List(ctx, pfx+aid+"/", store.ListOptions{Limit: 500})
			if err == nil && len(recs) > 0 {
				err = p.st.Update(ctx, func(tx store.Tx) error {
					for _, r := range recs {
						if err := tx.Delete(ctx, r.Key, store.Any); err != nil {
							return err
						}
					}
					return nil
				})
			}
			if err != nil {
				p.opts.Logger.Error("storage: purge of a deleted account's data failed; retried later", "account", aid, "err", err)
				return
			}
			if len(recs) < 500 {
				break
			}
		}
	}
	if err := p.st.Update(ctx, func(tx store.Tx) error { return tx.Delete(ctx, purgePrefix+aid, store.Any) }); err != nil {
		p.opts.Logger.Error("storage: cannot clear purge marker", "account", aid, "err", err)
	}
}

// apiErr converts a store or handler error for Go API callers, keeping nil
// an untyped nil.
func apiErr(err error) error {
	if err == nil {
		return nil
	}
	return azerr.From(err)
}
