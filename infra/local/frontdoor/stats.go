package frontdoor

import (
	"maps"
	"sync"
)

// Stats counts the AWS calls that passed the door, by service and operation. The benchmarks
// report them, and a scenario that suddenly makes many more calls shows up there.
type Stats struct {
	mu    sync.Mutex
	calls map[Call]int64
}

// Call is one service operation.
type Call struct {
	Service   string // signing name, "" when the request named none
	Operation string
}

// NewStats returns zeroed counters.
func NewStats() *Stats { return &Stats{calls: map[Call]int64{}} }

func (s *Stats) record(service, op string) {
	s.mu.Lock()
	s.calls[Call{service, op}]++
	s.mu.Unlock()
}

// Snapshot returns a copy of the counters.
func (s *Stats) Snapshot() map[Call]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// Total is the number of AWS calls counted.
func (s *Stats) Total() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, c := range s.calls {
		n += c
	}
	return n
}

// Count is the number of calls of one operation.
func (s *Stats) Count(service, op string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[Call{service, op}]
}

// Reset zeroes the counters (a benchmark counts one scenario, not the start-up before it).
func (s *Stats) Reset() {
	s.mu.Lock()
	clear(s.calls)
	s.mu.Unlock()
}
