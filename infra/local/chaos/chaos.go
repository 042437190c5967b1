// Package chaos injects the faults AWS produces into the local cloud: throttling, server
// errors and lost answers at the front door; duplicate and delayed deliveries at the event
// sources; function processes killed or timed out mid-invocation. It is off until armed with
// a profile and a seed, and a seed replays its decisions: whether the n-th occurrence of a
// fault point (a service operation by one caller, a rule's target, a function's stage) gets a
// fault is a hash of the seed, the point and n, not a draw from a shared stream that
// concurrent callers would consume in a different order each run.
package chaos

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Fault is one kind of fault.
type Fault string

// The faults, by where they strike.
const (
	// At the front door, for the control plane's and the data plane's own calls.
	Throttle    Fault = "throttle"     // the service's throttling error, with its status and shape
	ServerError Fault = "server-error" // HTTP 500 or 503 in the service's error shape
	LostAnswer  Fault = "lost-answer"  // the request is applied, then the connection drops
	// At the event sources (vendor-bus targets, SQS event source mappings).
	Duplicate Fault = "duplicate" // the event or batch is delivered twice
	Delay     Fault = "delay"     // held back, so later deliveries overtake it
	// At the function host.
	KillBefore Fault = "kill-before" // the process dies as it receives the invocation
	KillDuring Fault = "kill-during" // the process dies right after one of its AWS calls is applied
	KillAfter  Fault = "kill-after"  // the process dies after its side effects, before answering
	Timeout    Fault = "timeout"     // the invocation times out (Sandbox.Timedout) after its side effects
)

// Faults lists every fault, in the order reports show them.
var Faults = []Fault{Throttle, ServerError, LostAnswer, Duplicate, Delay, KillBefore, KillDuring, KillAfter, Timeout}

// Profile is a fault model: the probability of each fault at each of its points.
type Profile struct {
	Name  string
	Rates map[Fault]float64
	// Hold is how long a delayed delivery is held back; 0 means 300 ms.
	Hold time.Duration
	// Only, when set, limits the faults to points beginning with one of these
	// ("cloudformation CreateStack", "function provision"): a targeted experiment.
	Only []string
	// FirstOnly injects at the first occurrence of each point and never again.
	FirstOnly bool
}

// Off injects nothing.
var Off = Profile{Name: "off"}

// Profiles are the fault models `make chaos` runs every scenario under. Rates are per
// opportunity: api's 5% lost answers hit about two of the forty calls an onboarding makes.
var Profiles = []Profile{
	{Name: "api", Rates: map[Fault]float64{Throttle: 0.08, ServerError: 0.04, LostAnswer: 0.05}},
	{Name: "delivery", Rates: map[Fault]float64{Duplicate: 0.4, Delay: 0.3}},
	// kill-during is per AWS call, the others per invocation: a batch of ten state messages
	// makes some thirty calls, so 0.5% per call kills about one such batch in seven.
	{Name: "crash", Rates: map[Fault]float64{KillBefore: 0.04, KillDuring: 0.005, KillAfter: 0.04, Timeout: 0.02}},
	{Name: "mixed", Rates: map[Fault]float64{
		Throttle: 0.03, ServerError: 0.02, LostAnswer: 0.03, Duplicate: 0.2, Delay: 0.15,
		KillBefore: 0.03, KillDuring: 0.005, KillAfter: 0.03, Timeout: 0.02,
	}},
}

// ProfileNamed returns the profile called name.
func ProfileNamed(name string) (Profile, error) {
	for _, p := range Profiles {
		if p.Name == name {
			return p, nil
		}
	}
	return Profile{}, fmt.Errorf("profile %q: must be one of %s", name, ProfileNames())
}

// ProfileNames lists the profiles' names: "api, delivery, crash, mixed".
func ProfileNames() string {
	names := make([]string, len(Profiles))
	for i, p := range Profiles {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

// Injected is one fault that was injected.
type Injected struct {
	Fault  Fault
	Point  string // "dynamodb TransactWriteItems", "rule OnboardRule -> onboard", "function provision"
	Detail string
	At     time.Time
}

// Injector decides and counts faults. The zero value is not usable; New returns one that is
// off. Safe for concurrent use.
type Injector struct {
	observe func(Injected)

	mu      sync.Mutex
	profile Profile
	seed    uint64
	seen    map[string]uint64 // fault|point -> occurrences so far
	counts  map[Fault]int
	retries int // SDK retries seen at the front door while armed
}

// New returns an injector that injects nothing until Arm. observe, when set, is told of
// every fault injected.
func New(observe func(Injected)) *Injector {
	return &Injector{observe: observe, profile: Off, seen: map[string]uint64{}, counts: map[Fault]int{}}
}

// Arm starts injecting the profile's faults, decided by seed, and zeroes the counters.
func (in *Injector) Arm(seed uint64, p Profile) {
	if p.Hold <= 0 {
		p.Hold = 300 * time.Millisecond
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.profile, in.seed = p, seed
	clear(in.seen)
	clear(in.counts)
	in.retries = 0
}

// Disarm stops injecting; the counters stay readable.
func (in *Injector) Disarm() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.profile = Off
}

// Armed reports whether any fault may be injected.
func (in *Injector) Armed() bool {
	if in == nil {
		return false
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.profile.Rates) > 0
}

// Report is what an armed period injected and saw.
type Report struct {
	Injected map[Fault]int
	Retries  int // SDK retry attempts that reached the front door
}

// Total is the number of faults injected.
func (r Report) Total() int {
	n := 0
	for _, c := range r.Injected {
		n += c
	}
	return n
}

// String lists the faults injected, most frequent first: "lost-answer 3, throttle 2".
func (r Report) String() string {
	kinds := slices.Collect(maps.Keys(r.Injected))
	sort.Slice(kinds, func(i, j int) bool {
		if r.Injected[kinds[i]] != r.Injected[kinds[j]] {
			return r.Injected[kinds[i]] > r.Injected[kinds[j]]
		}
		return kinds[i] < kinds[j]
	})
	parts := make([]string, 0, len(kinds))
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, r.Injected[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// Report returns the counts since Arm.
func (in *Injector) Report() Report {
	in.mu.Lock()
	defer in.mu.Unlock()
	return Report{Injected: maps.Clone(in.counts), Retries: in.retries}
}

// decide reports whether this occurrence of point gets fault, and counts and announces it
// when it does. A nil injector never injects.
func (in *Injector) decide(f Fault, point, detail string) bool {
	if in == nil {
		return false
	}
	in.mu.Lock()
	rate := in.profile.Rates[f]
	if rate <= 0 {
		in.mu.Unlock()
		return false
	}
	point = stable(point)
	if len(in.profile.Only) > 0 && !slices.ContainsFunc(in.profile.Only, func(p string) bool { return strings.HasPrefix(point, p) }) {
		in.mu.Unlock()
		return false
	}
	key := string(f) + "|" + point
	n := in.seen[key]
	in.seen[key] = n + 1
	hit := draw(in.seed, key, n) < rate && (!in.profile.FirstOnly || n == 0)
	if hit {
		in.counts[f]++
	}
	in.mu.Unlock()
	if hit && in.observe != nil {
		in.observe(Injected{Fault: f, Point: point, Detail: detail, At: time.Now()})
	}
	return hit
}

// coin is a seeded toss for the next occurrence of point, replayed like decide's draws
// (the server error's 500 or 503).
func (in *Injector) coin(point string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	key := "coin|" + stable(point)
	n := in.seen[key]
	in.seen[key] = n + 1
	return draw(in.seed, key, n) < 0.5
}

// generated matches what differs between two runs of the same scenario: the suffixes
// CloudFormation gives physical names (derived from a stack id), and account ids.
var generated = regexp.MustCompile(`-[A-Za-z0-9]{12}\b|\b[0-9]{12}\b`)

// stable is a point without the parts that differ between runs, so a seed replays.
func stable(point string) string { return generated.ReplaceAllString(point, "") }

// draw maps (seed, key, n) to [0, 1).
func draw(seed uint64, key string, n uint64) float64 {
	h := fnv.New64a()
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], seed)
	binary.LittleEndian.PutUint64(b[8:], n)
	_, _ = h.Write(b[:])
	_, _ = h.Write([]byte(key))
	// fnv's low bits mix poorly for short inputs: fold the halves.
	v := h.Sum64()
	v ^= v >> 29
	v *= 0xbf58476d1ce4e5b9
	v ^= v >> 32
	return float64(v>>11) / float64(uint64(1)<<53)
}

// Delivery decides the fate of one delivery at an event source (point names the rule and
// target, or the mapping): delivered twice, held back for a while, both or neither.
func (in *Injector) Delivery(point string) (duplicate bool, hold time.Duration) {
	if in == nil {
		return false, 0
	}
	duplicate = in.decide(Duplicate, point, "delivered twice")
	if in.decide(Delay, point, "held back") {
		in.mu.Lock()
		hold = in.profile.Hold
		in.mu.Unlock()
	}
	return duplicate, hold
}

// Redelivery is how long a message whose batch failed stays invisible while armed, instead
// of its queue's visibility timeout (0 when disarmed: the queue's own). A chaos run kills
// the functions SQS feeds, and waiting out a 3-minute visibility timeout after each kill
// would only make the runs slow: SQS's semantics (the message returns, its receive count
// grows, the DLQ takes it after maxReceiveCount) are the same, sooner.
func (in *Injector) Redelivery() time.Duration {
	if !in.Armed() {
		return 0
	}
	return time.Second
}

// Stage is a moment of an invocation at which the host may kill its process.
type Stage int

// The stages the host asks about.
const (
	Received  Stage = iota // the process is handed the invocation
	Answering              // the process posts its answer
)

// Invocation decides what happens to a function's invocation at a stage: nothing, its
// process killed, or (Answering) a timeout.
func (in *Injector) Invocation(function string, at Stage) Fault {
	point := "function " + function
	switch at {
	case Received:
		if in.decide(KillBefore, point, "killed before its handler ran") {
			return KillBefore
		}
	case Answering:
		if in.decide(KillAfter, point, "killed before it could answer") {
			return KillAfter
		}
		if in.decide(Timeout, point, "timed out after its side effects") {
			return Timeout
		}
	}
	return ""
}
