package audit

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/keyhaven/keyhaven/internal/store"
)

// Problem kinds Verify reports.
const (
	ProblemMissing    = "missing"     // an event (or the end of a stream) was removed
	ProblemEdited     = "edited"      // an event's content no longer matches its hash
	ProblemReordered  = "reordered"   // an event sits at another event's position
	ProblemBrokenLink = "broken-link" // prevHash does not name the predecessor
)

// Problem is one finding of Verify, named by stream and seq.
type Problem struct {
	Stream     string `json:"stream"`
	ResourceID string `json:"resourceId,omitempty"`
	Seq        int64  `json:"seq"`
	Kind       string `json:"kind"`
	Message    string `json:"message"`
}

// Report is the outcome of Verify.
type Report struct {
	OK        bool      `json:"ok"`
	Checked   int64     `json:"checked"`
	Streams   int       `json:"streams"`
	Problems  []Problem `json:"problems"`
	Truncated bool      `json:"truncated,omitempty"` // more problems than maxProblems
}

const (
	maxProblems = 1000
	pageSize    = 1000
)

// StreamInfo describes one stream.
type StreamInfo struct {
	Stream     string `json:"stream"`
	ResourceID string `json:"resourceId"`
	Seq        int64  `json:"seq"`
}

// Streams lists every stream with its head.
func (l *Log) Streams(ctx context.Context) ([]StreamInfo, error) {
	var out []StreamInfo
	after := ""
	for {
		recs, err := l.st.List(ctx, prefixHeads, store.ListOptions{After: after, Limit: pageSize})
		if err != nil {
			return nil, err
		}
		for _, rec := range recs {
			name := strings.TrimPrefix(rec.Key, prefixHeads)
			h, _, err := readHead(ctx, l.st, name)
			if err != nil {
				return nil, err
			}
			out = append(out, StreamInfo{Stream: name, ResourceID: h.ResourceID, Seq: h.Seq})
		}
		if len(recs) < pageSize {
			return out, nil
		}
		after = recs[len(recs)-1].Key
	}
}

// VerifyAll verifies every stream.
func (l *Log) VerifyAll(ctx context.Context) (Report, error) {
	streams, err := l.Streams(ctx)
	if err != nil {
		return Report{}, err
	}
	rep := Report{OK: true, Problems: []Problem{}}
	for _, s := range streams {
		if err := l.verify(ctx, s.Stream, &rep); err != nil {
			return Report{}, err
		}
	}
	rep.OK = len(rep.Problems) == 0 && !rep.Truncated
	return rep, nil
}

// Verify walks one stream and reports every removed, edited or reordered
// event and every broken link, by seq. A stream that does not exist verifies
// as empty.
func (l *Log) Verify(ctx context.Context, stream string) (Report, error) {
	if !validStream(stream) {
		return Report{}, fmt.Errorf("audit: invalid stream name")
	}
	rep := Report{OK: true, Problems: []Problem{}}
	if err := l.verify(ctx, stream, &rep); err != nil {
		return Report{}, err
	}
	rep.OK = len(rep.Problems) == 0 && !rep.Truncated
	return rep, nil
}

func (l *Log) verify(ctx context.Context, stream string, rep *Report) error {
	h, hver, err := readHead(ctx, l.st, stream)
	if err != nil {
		return err
	}
	rep.Streams++
	add := func(seq int64, kind, format string, args ...any) {
		if len(rep.Problems) >= maxProblems {
			rep.Truncated = true
			return
		}
		rep.Problems = append(rep.Problems, Problem{Stream: stream, ResourceID: h.ResourceID, Seq: seq, Kind: kind, Message: fmt.Sprintf(format, args...)})
	}
	pfx := prefixEvents + stream + "/"
	expected := int64(1)
	prevHash, prevKnown := "", true
	after := ""
	for {
		recs, err := l.st.List(ctx, pfx, store.ListOptions{After: after, Limit: pageSize})
		if err != nil {
			return err
		}
		for _, rec := range recs {
			keySeq, err := strconv.ParseInt(strings.TrimPrefix(rec.Key, pfx), 10, 64)
			if err != nil || keySeq < expected {
				add(expected, ProblemReordered, "a record with an unexpected key %q sits in the stream", clip(rec.Key, 200))
				continue
			}
			if keySeq > expected {
				if keySeq == expected+1 {
					add(expected, ProblemMissing, "event %d is missing", expected)
				} else {
					add(expected, ProblemMissing, "events %d to %d are missing", expected, keySeq-1)
				}
				prevKnown = false
			}
			rep.Checked++
			e, hashOK, derr := decode(rec.Value)
			switch {
			case derr != nil && e.Hash == "":
				add(keySeq, ProblemEdited, "event %d is not a valid audit event", keySeq)
				prevKnown = false
			case derr != nil || !hashOK:
				add(keySeq, ProblemEdited, "event %d was edited: its content does not match its hash", keySeq)
				// Its claimed hash still links the chain: the next event
				// should name it, so one edit is reported once.
				prevHash, prevKnown = e.Hash, true
			case e.Seq != keySeq:
				add(keySeq, ProblemReordered, "the event stored at position %d is event %d", keySeq, e.Seq)
				prevHash, prevKnown = e.Hash, false
			case prevKnown && e.PrevHash != prevHash:
				if keySeq == 1 {
					add(keySeq, ProblemBrokenLink, "event 1 names a predecessor: events before it were removed")
				} else {
					add(keySeq, ProblemBrokenLink, "event %d does not link to event %d: an event was removed, inserted or rewritten", keySeq, keySeq-1)
				}
				prevHash, prevKnown = e.Hash, true
			default:
				prevHash, prevKnown = e.Hash, true
			}
			expected = keySeq + 1
		}
		if len(recs) < pageSize {
			break
		}
		after = recs[len(recs)-1].Key
	}
	last := expected - 1
	switch {
	case hver == store.Absent && last > 0:
		add(last, ProblemMissing, "the stream head is missing")
	case h.Seq > last:
		if h.Seq == last+1 {
			add(last+1, ProblemMissing, "event %d, the last of the stream, is missing", last+1)
		} else {
			add(last+1, ProblemMissing, "events %d to %d at the end of the stream are missing", last+1, h.Seq)
		}
	case h.Seq < last:
		add(h.Seq+1, ProblemBrokenLink, "events after %d were added outside the log (the stream head ends at %d)", h.Seq, h.Seq)
	case last > 0 && prevKnown && h.Hash != prevHash:
		add(last, ProblemEdited, "event %d does not match the stream head: it was rewritten", last)
	}
	return nil
}
