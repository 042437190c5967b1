package cloud

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/byocloud/byoc/infra/local/eventsources/esm"
	"github.com/byocloud/byoc/infra/local/eventsources/eventbus"
	"github.com/byocloud/byoc/infra/local/eventsources/schedules"
	"github.com/byocloud/byoc/infra/local/lambdahost"
	"github.com/byocloud/byoc/infra/local/stacks"
)

// Kind says which part of the cloud an Event comes from.
type Kind string

// The kinds of the timeline, in the order onboarding meets them.
const (
	KindStack     Kind = "stack"    // a stack changed status (any account)
	KindEvent     Kind = "event"    // an event reached a rule's target on the vendor bus
	KindInvoke    Kind = "function" // a function process finished an invocation
	KindExecution Kind = "workflow" // a workflow execution started or ended
	KindState     Kind = "state"    // a workflow execution entered a state
	KindBatch     Kind = "queue"    // an event source mapping handed a batch to a function
	KindSchedule  Kind = "schedule" // a schedule fired
)

// Event is one line of the local cloud's timeline.
type Event struct {
	At      time.Time
	Kind    Kind
	Account string // the account it happened in, when it has one
	Subject string // stack name, function, rule, workflow, state, schedule
	Status  string // stack status, "ok"/"failed", state machine status, ...
	Detail  string // reason, error, target
	Failed  bool
	EventID string // KindEvent: the EventBridge event id (Bus.Redeliver sends it again)
}

func (e Event) String() string {
	s := fmt.Sprintf("%-8s %s", e.Kind, e.Subject)
	if e.Status != "" {
		s += " " + e.Status
	}
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

func (c *Cloud) emit(e Event) {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	if c.observer != nil {
		c.observer(e)
	}
}

func (c *Cloud) onStackEvent(ev stacks.StackEvent) {
	subject := ev.StackName
	if !ev.IsStack() {
		if !strings.HasSuffix(ev.ResourceStatus, "_FAILED") {
			return // a resource's progress: only its failure belongs on the timeline
		}
		subject += " " + ev.LogicalResourceID
	}
	c.emit(Event{
		At: time.Now(), Kind: KindStack, Account: ev.Account, Subject: subject, Status: ev.ResourceStatus,
		Detail: ev.ResourceStatusReason, Failed: strings.Contains(ev.ResourceStatus, "FAILED") || strings.Contains(ev.ResourceStatus, "ROLLBACK"),
	})
}

func (c *Cloud) onDelivery(d eventbus.Delivery) {
	e := Event{At: d.At, Kind: KindEvent, Subject: d.Rule, Detail: "to " + c.byocName(d.Target), EventID: d.EventID}
	var env struct {
		Account string `json:"account"`
		Detail  struct {
			StackID       string `json:"stack-id"`
			StatusDetails struct {
				Status string `json:"status"`
			} `json:"status-details"`
		} `json:"detail"`
	}
	_ = json.Unmarshal(d.Event, &env)
	e.Account = env.Account
	e.Status = d.DetailType
	if st := env.Detail.StatusDetails.Status; st != "" {
		stack := env.Detail.StackID
		if parts := strings.Split(stack, "/"); len(parts) == 3 {
			stack = parts[1]
		}
		e.Status = stack + " " + st
	}
	if d.Err != nil {
		e.Failed, e.Detail = true, e.Detail+": "+d.Err.Error()
	}
	c.emit(e)
}

func (c *Cloud) onInvocation(inv lambdahost.Invocation) {
	e := Event{At: inv.Started.Add(inv.Duration), Kind: KindInvoke, Subject: c.byocName(inv.Function), Status: "ok",
		Detail: fmt.Sprintf("%d ms", inv.Duration.Milliseconds())}
	if inv.Failed {
		var doc struct {
			ErrorType    string `json:"errorType"`
			ErrorMessage string `json:"errorMessage"`
		}
		_ = json.Unmarshal(inv.Response, &doc)
		e.Failed, e.Status = true, "failed"
		e.Detail = strings.TrimSpace(doc.ErrorType + ": " + doc.ErrorMessage)
	}
	c.emit(e)
}

func (c *Cloud) onBatch(b esm.Batch) {
	e := Event{At: b.At, Kind: KindBatch, Subject: c.byocName(b.Function), Status: "ok",
		Detail: fmt.Sprintf("%d messages, %d deleted", len(b.MessageIDs), len(b.Deleted))}
	switch {
	case b.Err != nil:
		e.Failed, e.Status, e.Detail = true, "not invoked", b.Err.Error()
	case b.FunctionError != "":
		e.Failed, e.Status = true, "function error "+b.FunctionError
	}
	c.emit(e)
}

func (c *Cloud) onFiring(f schedules.Firing) {
	e := Event{At: time.Now(), Kind: KindSchedule, Subject: f.Group + "/" + f.Name, Status: "fired",
		Detail: fmt.Sprintf("attempt %d to %s", f.Attempt, c.byocName(f.Target))}
	if f.Err != nil {
		e.Failed, e.Status, e.Detail = true, "failed", f.Err.Error()
	}
	c.emit(e)
}
