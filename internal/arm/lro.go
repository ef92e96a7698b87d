package arm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/store"
)

const opPrefix = "arm/operations/"

// Operation statuses, as ARM names them.
const (
	StatusInProgress = "InProgress"
	StatusSucceeded  = "Succeeded"
	StatusFailed     = "Failed"
	StatusCanceled   = "Canceled"
)

// pollAfterMS is what clients are told to wait between polls; the Azure SDKs
// default to 30 s without it.
const pollAfterMS = 100

// opRecord is a persisted long-running operation.
type opRecord struct {
	ID             string          `json:"id"`
	Name           string          `json:"name"` // the RBAC action that started it
	SubscriptionID string          `json:"subscriptionId"`
	Namespace      string          `json:"namespace"`
	Location       string          `json:"location"`
	APIVersion     string          `json:"apiVersion"`
	ResourceID     string          `json:"resourceId"`
	Status         string          `json:"status"`
	StartTime      time.Time       `json:"startTime"`
	EndTime        *time.Time      `json:"endTime,omitempty"`
	ErrStatus      int             `json:"errStatus,omitempty"`
	ErrCode        string          `json:"errCode,omitempty"`
	ErrMessage     string          `json:"errMessage,omitempty"`
	ResultStatus   int             `json:"resultStatus,omitempty"`
	Result         json.RawMessage `json:"result,omitempty"`
}

// OperationStatus is the body of an Azure-AsyncOperation poll.
type OperationStatus struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Status    string          `json:"status"`
	StartTime time.Time       `json:"startTime"`
	EndTime   *time.Time      `json:"endTime,omitempty"`
	Error     *OperationError `json:"error,omitempty"`
}

// OperationError is the error of a failed operation.
type OperationError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// WorkFunc is the body of a long-running operation. A nil result makes the
// final Location poll answer 204; anything else is rendered with 200.
type WorkFunc func(ctx context.Context) (result any, err error)

// OperationSpec describes a long-running operation a handler starts.
type OperationSpec struct {
	// Location is the region in the operation URLs ("global" if empty).
	Location string
	// Status is the immediate answer: 202 (default) or 201.
	Status int
	// Body is sent with a 201.
	Body any
}

// StartOperation persists a new operation, runs work (in the background
// unless Options.SyncOperations) and returns ARM's accepted response with
// Azure-AsyncOperation, Location and retry headers.
func (r *Request) StartOperation(ctx context.Context, spec OperationSpec, work WorkFunc) (*Response, error) {
	return r.srv.startOperation(ctx, r.Target.SubscriptionID, r.ID.Namespace(), r.Target.String(), r.Action, r.APIVersion, spec, work)
}

func opKey(id string) string { return opPrefix + id }

func (s *Server) opURLs(rec *opRecord) (status, result string) {
	base := fmt.Sprintf("/subscriptions/%s/providers/%s/locations/%s/", rec.SubscriptionID, rec.Namespace, url.PathEscape(rec.Location))
	q := "?api-version=" + url.QueryEscape(rec.APIVersion)
	return base + "operationStatuses/" + rec.ID + q, base + "operationResults/" + rec.ID + q
}

func (s *Server) startOperation(ctx context.Context, sub, namespace, resourceID, action, apiVersion string, spec OperationSpec, work WorkFunc) (*Response, error) {
	loc := NormalizeLocation(spec.Location)
	if loc == "" {
		loc = "global"
	}
	rec := &opRecord{
		ID: strings.ToLower(s.opts.NewID()), Name: action, SubscriptionID: sub, Namespace: namespace, Location: loc,
		APIVersion: apiVersion, ResourceID: resourceID, Status: StatusInProgress, StartTime: s.clk.Now().UTC(),
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, azerr.Internal(err)
	}
	if err := s.st.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Put(ctx, opKey(rec.ID), b, store.Absent)
		return err
	}); err != nil {
		return nil, azerr.Internal(fmt.Errorf("persist operation: %w", err))
	}
	wctx := context.WithoutCancel(ctx)
	if s.opts.SyncOperations {
		s.runOperation(wctx, rec, work)
	} else {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.runOperation(wctx, rec, work)
		}()
	}
	statusURL, resultURL := s.opURLs(rec)
	h := http.Header{}
	h.Set("Azure-AsyncOperation", s.opts.BaseURL+statusURL)
	h.Set("Location", s.opts.BaseURL+resultURL)
	setRetryHeaders(h)
	status := spec.Status
	if status == 0 {
		status = http.StatusAccepted
	}
	resp := &Response{Status: status, Header: h}
	if status == http.StatusCreated {
		resp.Body = spec.Body
	}
	return resp, nil
}

func setRetryHeaders(h http.Header) {
	h.Set("Retry-After", "1")
	h.Set("retry-after-ms", fmt.Sprint(pollAfterMS))
	h.Set("x-ms-retry-after-ms", fmt.Sprint(pollAfterMS))
}

func (s *Server) runOperation(ctx context.Context, rec *opRecord, work WorkFunc) {
	result, err := safeRun(ctx, work)
	end := s.clk.Now().UTC()
	rec.EndTime = &end
	if err != nil {
		e := azerr.From(err)
		if e.Cause != nil {
			s.opts.Logger.Error("arm: operation failed", "operation", rec.ID, "action", rec.Name, "code", e.Code, "cause", e.Cause)
		}
		rec.Status, rec.ErrStatus, rec.ErrCode, rec.ErrMessage = StatusFailed, e.Status, e.Code, e.Message
	} else {
		rec.Status = StatusSucceeded
		rec.ResultStatus = http.StatusNoContent
		if result != nil {
			if b, merr := json.Marshal(result); merr == nil {
				rec.Result, rec.ResultStatus = b, http.StatusOK
			}
		}
	}
	b, _ := json.Marshal(rec)
	if uerr := s.st.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Put(ctx, opKey(rec.ID), b, store.Any)
		return err
	}); uerr != nil {
		s.opts.Logger.Error("arm: cannot record operation outcome", "operation", rec.ID, "err", uerr)
	}
}

// safeRun keeps a panicking provider from taking the server down and
// leaving the operation InProgress forever.
func safeRun(ctx context.Context, work WorkFunc) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = azerr.Internal(fmt.Errorf("operation panicked: %v", p))
		}
	}()
	return work(ctx)
}

func (s *Server) loadOp(ctx context.Context, sub, id string) (*opRecord, error) {
	notFound := azerr.NotFound("OperationNotFound", "The operation '%s' could not be found.", trunc(id, 64))
	if !IsGUID(id) {
		return nil, notFound
	}
	rec, err := s.st.Get(ctx, opKey(strings.ToLower(id)))
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, azerr.Internal(err)
	}
	var op opRecord
	if err := json.Unmarshal(rec.Value, &op); err != nil {
		return nil, azerr.Internal(err)
	}
	if !strings.EqualFold(op.SubscriptionID, sub) {
		return nil, notFound
	}
	return &op, nil
}

// serveOperation answers both poll URLs of an operation.
func (s *Server) serveOperation(w http.ResponseWriter, r *http.Request, sub, kind, id string) error {
	op, err := s.loadOp(r.Context(), sub, id)
	if err != nil {
		return err
	}
	statusURL, resultURL := s.opURLs(op)
	if strings.EqualFold(kind, "operationStatuses") {
		body := OperationStatus{ID: strings.SplitN(statusURL, "?", 2)[0], Name: op.ID, Status: op.Status,
			StartTime: op.StartTime, EndTime: op.EndTime}
		if op.Status == StatusFailed {
			body.Error = &OperationError{Code: op.ErrCode, Message: op.ErrMessage}
		}
		if op.Status == StatusInProgress {
			setRetryHeaders(w.Header())
		}
		writeJSON(w, http.StatusOK, body)
		return nil
	}
	switch op.Status {
	case StatusInProgress:
		w.Header().Set("Location", s.opts.BaseURL+resultURL)
		setRetryHeaders(w.Header())
		w.WriteHeader(http.StatusAccepted)
		return nil
	case StatusSucceeded:
		if op.ResultStatus == http.StatusOK && len(op.Result) > 0 {
			writeJSON(w, http.StatusOK, op.Result)
			return nil
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	default:
		st := op.ErrStatus
		if st == 0 {
			st = http.StatusInternalServerError
		}
		return azerr.New(st, op.ErrCode, "%s", op.ErrMessage)
	}
}

// Wait blocks until every background operation started so far has
// finished (for shutdown and tests).
func (s *Server) Wait() { s.wg.Wait() }

// FailInterrupted marks every operation still InProgress as Failed. A
// single-node server calls it at start: work that was running when the
// process stopped will not finish, and clients polling it must not wait
// forever (re-issuing the request resumes the work: group deletes and purges
// are idempotent). It returns how many operations it marked.
func (s *Server) FailInterrupted(ctx context.Context) (int, error) {
	return s.sweepOperations(ctx, func(op *opRecord) (drop, fail bool) {
		return false, op.Status == StatusInProgress
	})
}

// PruneOperations deletes finished operations that ended more than maxAge
// ago (polls of them then answer 404). The server calls it periodically.
func (s *Server) PruneOperations(ctx context.Context, maxAge time.Duration) (int, error) {
	cutoff := s.clk.Now().Add(-maxAge)
	return s.sweepOperations(ctx, func(op *opRecord) (drop, fail bool) {
		return op.Status != StatusInProgress && op.EndTime != nil && op.EndTime.Before(cutoff), false
	})
}

func (s *Server) sweepOperations(ctx context.Context, decide func(*opRecord) (drop, fail bool)) (int, error) {
	n, after := 0, ""
	for {
		recs, err := s.st.List(ctx, opPrefix, store.ListOptions{After: after, Limit: 200})
		if err != nil {
			return n, err
		}
		for _, r := range recs {
			var op opRecord
			if err := json.Unmarshal(r.Value, &op); err != nil {
				continue
			}
			drop, fail := decide(&op)
			if !drop && !fail {
				continue
			}
			err := s.st.Update(ctx, func(tx store.Tx) error {
				if drop {
					return tx.Delete(ctx, r.Key, r.Version)
				}
				end := s.clk.Now().UTC()
				op.Status, op.EndTime = StatusFailed, &end
				op.ErrStatus, op.ErrCode = http.StatusInternalServerError, "OperationInterrupted"
				op.ErrMessage = "The operation was interrupted by a server restart. Retry the request."
				b, err := json.Marshal(op)
				if err != nil {
					return err
				}
				_, err = tx.Put(ctx, r.Key, b, r.Version)
				return err
			})
			if errors.Is(err, store.ErrConflict) {
				continue // finished or changed meanwhile
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
