package arm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
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

// DefaultOperationLeaseTTL is Options.OperationLeaseTTL when unset.
const DefaultOperationLeaseTTL = 30 * time.Second

// Error of an operation failed because its owner stopped renewing its lease.
const (
	codeInterrupted = "OperationInterrupted"
	msgInterrupted  = "The operation was interrupted: the keyhaven replica running it stopped before it finished. Retry the request."
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
	// Owner is the ReplicaID running the work; only it may record the
	// outcome, and only while the operation is still InProgress.
	Owner string `json:"owner,omitempty"`
	// LeaseExpires is when the owner's claim lapses unless renewed; past
	// it, any replica's sweep fails the operation. Records written before
	// leases existed have none and count from StartTime.
	LeaseExpires *time.Time `json:"leaseExpires,omitempty"`
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
	now := s.clk.Now().UTC()
	lease := now.Add(s.opts.OperationLeaseTTL)
	rec := &opRecord{
		ID: strings.ToLower(s.opts.NewID()), Name: action, SubscriptionID: sub, Namespace: namespace, Location: loc,
		APIVersion: apiVersion, ResourceID: resourceID, Status: StatusInProgress, StartTime: now,
		Owner: s.opts.ReplicaID, LeaseExpires: &lease,
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
	stop := s.keepLease(ctx, rec.ID)
	result, err := safeRun(ctx, work)
	stop()
	end := s.clk.Now().UTC()
	out := *rec
	out.EndTime, out.LeaseExpires = &end, nil
	if err != nil {
		e := azerr.From(err)
		if e.Cause != nil {
			s.opts.Logger.Error("arm: operation failed", "operation", rec.ID, "action", rec.Name, "code", e.Code, "cause", e.Cause)
		}
		out.Status, out.ErrStatus, out.ErrCode, out.ErrMessage = StatusFailed, e.Status, e.Code, e.Message
	} else {
		out.Status = StatusSucceeded
		out.ResultStatus = http.StatusNoContent
		if result != nil {
			if b, merr := json.Marshal(result); merr == nil {
				out.Result, out.ResultStatus = b, http.StatusOK
			}
		}
	}
	// A store blip here must not turn a finished operation into an
	// interrupted one, so retry briefly; past that the lease lapses and a
	// sweep gives the client its (Failed) answer.
	var uerr error
	for attempt := range 3 {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
		}
		var owned bool
		if owned, uerr = s.writeIfOwner(ctx, rec.ID, func(op *opRecord) { *op = out }); uerr == nil {
			if !owned {
				s.opts.Logger.Warn("arm: operation outcome discarded: its lease lapsed and another replica already failed it",
					"operation", rec.ID, "action", rec.Name, "outcome", out.Status)
			}
			return
		}
	}
	s.opts.Logger.Error("arm: cannot record operation outcome", "operation", rec.ID, "err", uerr)
}

// keepLease renews the lease on operation id every TTL/3 until the
// returned stop is called (which waits for any renewal in flight), or
// until the operation turns out to be someone else's.
func (s *Server) keepLease(ctx context.Context, id string) (stop func()) {
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(max(s.opts.OperationLeaseTTL/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			owned, err := s.writeIfOwner(ctx, id, func(op *opRecord) {
				lease := s.clk.Now().UTC().Add(s.opts.OperationLeaseTTL)
				op.LeaseExpires = &lease
			})
			switch {
			case err != nil: // transient: the next tick retries while the lease lasts
				s.opts.Logger.Warn("arm: cannot renew operation lease", "operation", id, "err", err)
			case !owned:
				s.opts.Logger.Warn("arm: operation lease lost: another replica failed the operation", "operation", id)
				return
			}
		}
	}()
	return func() { close(done); <-exited }
}

// writeIfOwner applies change to operation id and stores it, provided the
// operation is still InProgress and owned by this replica; owned reports
// whether it was.
func (s *Server) writeIfOwner(ctx context.Context, id string, change func(*opRecord)) (owned bool, err error) {
	err = s.st.Update(ctx, func(tx store.Tx) error {
		owned = false
		r, err := tx.Get(ctx, opKey(id))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		var op opRecord
		if err := json.Unmarshal(r.Value, &op); err != nil {
			return err
		}
		if op.Status != StatusInProgress || op.Owner != s.opts.ReplicaID {
			return nil
		}
		change(&op)
		b, err := json.Marshal(&op)
		if err != nil {
			return err
		}
		if _, err := tx.Put(ctx, r.Key, b, r.Version); err != nil {
			return err
		}
		owned = true
		return nil
	})
	return owned, err
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

// SweepOperations marks as Failed (code OperationInterrupted) every
// operation still InProgress whose owner's lease has expired: the replica
// running it stopped (crash, SIGKILL, lost its store) and its work will not
// finish. Clients polling it then get a final answer; re-issuing the request
// resumes the work (group deletes and purges are idempotent). Every replica
// may run it at once: each mark is conditional on the record being
// unchanged since it was read. It returns how many operations it marked.
func (s *Server) SweepOperations(ctx context.Context) (int, error) {
	now := s.clk.Now()
	return s.sweepOperations(ctx, func(op *opRecord) (drop, fail bool) {
		if op.Status != StatusInProgress {
			return false, false
		}
		lease := op.StartTime.Add(s.opts.OperationLeaseTTL)
		if op.LeaseExpires != nil {
			lease = *op.LeaseExpires
		}
		return false, now.After(lease)
	})
}

// FailInterrupted marks as Failed every InProgress operation this Server
// does not own, leases or not. Only a single-node server may call it (at
// start, before serving): then no other process can be running them, and
// their clients get an answer without waiting for the leases to lapse.
// With replicas sharing a store, use SweepOperations.
func (s *Server) FailInterrupted(ctx context.Context) (int, error) {
	return s.sweepOperations(ctx, func(op *opRecord) (drop, fail bool) {
		return false, op.Status == StatusInProgress && op.Owner != s.opts.ReplicaID
	})
}

// OperationLeaseTTL returns the effective Options.OperationLeaseTTL (the
// server sweeps at a fraction of it).
func (s *Server) OperationLeaseTTL() time.Duration { return s.opts.OperationLeaseTTL }

// ReplicaID returns the effective Options.ReplicaID.
func (s *Server) ReplicaID() string { return s.opts.ReplicaID }

// defaultReplicaID is unique per process: the host and pid tell operators
// which process it was, the random part keeps restarts and containers with
// equal pids apart.
func defaultReplicaID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "keyhaven"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", trunc(host, 64), os.Getpid(), hex.EncodeToString(b))
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
				op.ErrStatus, op.ErrCode, op.ErrMessage = http.StatusInternalServerError, codeInterrupted, msgInterrupted
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
