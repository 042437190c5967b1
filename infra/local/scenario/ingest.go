package scenario

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
)

// IngestTotals are stateingest's counters summed over its "state batch" log lines: what
// happened to each message it was handed.
type IngestTotals struct {
	Batches    int
	Messages   int `json:"messages"`
	Applied    int `json:"applied"`
	Duplicate  int `json:"duplicate"`
	OutOfOrder int `json:"out-of-order"`
	Rejected   int `json:"rejected"`
	Retry      int `json:"retry"`
}

// Minus is the counts since before.
func (t IngestTotals) Minus(before IngestTotals) IngestTotals {
	return IngestTotals{
		Batches: t.Batches - before.Batches, Messages: t.Messages - before.Messages, Applied: t.Applied - before.Applied,
		Duplicate: t.Duplicate - before.Duplicate, OutOfOrder: t.OutOfOrder - before.OutOfOrder,
		Rejected: t.Rejected - before.Rejected, Retry: t.Retry - before.Retry,
	}
}

func (t IngestTotals) String() string {
	return fmt.Sprintf("%d messages in %d batches: %d applied, %d duplicate, %d out-of-order, %d rejected, %d retried",
		t.Messages, t.Batches, t.Applied, t.Duplicate, t.OutOfOrder, t.Rejected, t.Retry)
}

// IngestLog reads the functions' output (the local cloud's Output, lines prefixed with the
// function's name) and sums stateingest's batch counters. Write it the output as a tee.
type IngestLog struct {
	mu      sync.Mutex
	partial []byte
	totals  IngestTotals
}

var ingestPrefix = []byte("[stateingest] ")

// Write takes any part of the output; lines are read when complete.
func (l *IngestLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.line(l.partial[:i])
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

func (l *IngestLog) line(b []byte) {
	rest, ok := bytes.CutPrefix(b, ingestPrefix)
	if !ok || !bytes.Contains(rest, []byte(`"msg":"state batch"`)) {
		return
	}
	var c IngestTotals
	if json.Unmarshal(rest, &c) != nil {
		return
	}
	t := &l.totals
	t.Batches++
	t.Messages += c.Messages
	t.Applied += c.Applied
	t.Duplicate += c.Duplicate
	t.OutOfOrder += c.OutOfOrder
	t.Rejected += c.Rejected
	t.Retry += c.Retry
}

// Totals are the counts so far.
func (l *IngestLog) Totals() IngestTotals {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.totals
}
