package localcloud

import (
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/byocloud/byoc/infra/local/asl"
	"github.com/byocloud/byoc/infra/local/eventsources/clock"
	"github.com/byocloud/byoc/infra/local/frontdoor"
	"github.com/byocloud/byoc/infra/local/sfnservice"
	"github.com/byocloud/byoc/infra/local/sfnservice/awstasks"
)

// States is the cloud's Step Functions: byoc's ASL engine behind the Step Functions API.
type States struct {
	Engine  *asl.Engine
	service *sfnservice.Service
}

func newStates(c *Cloud, internal aws.Config) (*States, error) {
	engine := asl.NewEngine(asl.Options{
		Tasks:     awstasks.New(stateTaskConfig(internal)),
		Clock:     aslClock{c.Clock},
		Region:    c.Region,
		AccountID: VendorAccount,
		Observer:  c.onHistory,
	})
	return &States{Engine: engine, service: sfnservice.New(engine, c.logger)}, nil
}

// stateTaskConfig is how the engine's Task states reach Lambda, SQS and EventBridge: the
// front door, as Step Functions reaches them on AWS. The engine owns retries (the state's
// Retry), so each task call is one SDK attempt.
func stateTaskConfig(internal aws.Config) aws.Config {
	internal.RetryMaxAttempts = 1
	internal.HTTPClient = frontdoor.InternalClient(stepFunctionsTaskHeader)
	return internal
}

// stepFunctionsTaskHeader marks the engine's task calls (Lambda, SQS, EventBridge): plumbing
// on the cloud's side (not counted), but calls Step Functions makes to those services on
// AWS, which throttle and fail them, so chaos may hit them.
const stepFunctionsTaskHeader = "X-Byoc-Local-Task"

// Handler serves the Step Functions API.
func (s *States) Handler() http.Handler { return s.service }

// Close lets running executions be: they end with the process.
func (s *States) Close() {}

func (c *Cloud) onHistory(ev asl.HistoryEvent) {
	// The timeline is in real time; the engine's timestamps follow the cloud's clock, which
	// --speed runs faster.
	ev.Timestamp = time.Now()
	machine, execution := executionNames(ev.ExecutionArn)
	switch {
	case ev.StateEnteredEventDetails != nil:
		c.transitions.Add(1)
		c.emit(Event{At: ev.Timestamp, Kind: KindState, Subject: machine + " " + ev.StateEnteredEventDetails.Name, Detail: execution})
	case ev.Type == asl.EventExecutionStarted:
		c.emit(Event{At: ev.Timestamp, Kind: KindExecution, Subject: machine, Status: "RUNNING", Detail: execution})
	case ev.Type == asl.EventExecutionSucceeded:
		c.emit(Event{At: ev.Timestamp, Kind: KindExecution, Subject: machine, Status: "SUCCEEDED", Detail: execution})
	case ev.ExecutionFailedEventDetails != nil:
		d := ev.ExecutionFailedEventDetails
		c.emit(Event{At: ev.Timestamp, Kind: KindExecution, Subject: machine, Status: "FAILED", Detail: execution + ": " + d.Error + " " + d.Cause, Failed: true})
	case ev.ExecutionAbortedEventDetails != nil, ev.ExecutionTimedOutEventDetails != nil:
		c.emit(Event{At: ev.Timestamp, Kind: KindExecution, Subject: machine, Status: strings.TrimPrefix(ev.Type, "Execution"), Detail: execution, Failed: true})
	}
}

// executionNames splits arn:aws:states:<region>:<account>:execution:<machine>:<name>.
func executionNames(arn string) (machine, execution string) {
	parts := strings.Split(arn, ":")
	if len(parts) >= 8 {
		return parts[6], parts[7]
	}
	return arn, ""
}

// aslClock gives the engine the cloud's clock.
type aslClock struct{ c clock.Clock }

func (a aslClock) Now() time.Time { return a.c.Now() }

func (a aslClock) NewTimer(d time.Duration) asl.Timer {
	t := &clockTimer{c: make(chan time.Time, 1), stop: make(chan struct{})}
	fired := a.c.After(d)
	go func() {
		select {
		case at := <-fired:
			if t.stopped.CompareAndSwap(false, true) { // fired: Stop now reports false
				t.c <- at
			}
		case <-t.stop:
		}
	}()
	return t
}

type clockTimer struct {
	c       chan time.Time
	stop    chan struct{}
	stopped atomic.Bool
}

func (t *clockTimer) C() <-chan time.Time { return t.c }

func (t *clockTimer) Stop() bool {
	if !t.stopped.CompareAndSwap(false, true) {
		return false
	}
	close(t.stop)
	return true
}
