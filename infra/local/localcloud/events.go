package localcloud

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/byocloud/byoc/infra/local/cfnengine"
	"github.com/byocloud/byoc/infra/local/chaos"
	"github.com/byocloud/byoc/infra/local/eventsources/esm"
	"github.com/byocloud/byoc/infra/local/eventsources/eventbus"
	"github.com/byocloud/byoc/infra/local/eventsources/schedules"
	"github.com/byocloud/byoc/infra/local/lambdahost"
	"github.com/byocloud/byoc/shared/contract"
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
	KindHealth    Kind = "health"   // a byoc.state event reached the state watch (WatchStateEvents)
	KindDataPlane Kind = "cluster"  // the simulated data plane (a customer cluster) did something: a scenario's own line
	KindFault     Kind = "fault"    // chaos injected a fault (Cloud.Chaos)
	KindClock     Kind = "clock"    // the cloud's clock jumped (Cloud.Jump)
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
	EventID string // KindEvent, KindHealth: the EventBridge event id (Bus.Redeliver sends it again)
	// DetailType and Data are a KindHealth event's detail-type and detail
	// (servicestate.AlertDetail or servicestate.RejectionDetail), for code that waits on them.
	DetailType string
	Data       json.RawMessage
	// Messages is how many messages a KindBatch event handed to its function.
	Messages int
	// HandedBy and DeletedBy count a KindBatch event's messages by the deployment their body
	// names ("deploymentId"; "" for a body that names none): what a test that waits for its
	// own deployment's messages counts, whatever else shares the queue.
	HandedBy, DeletedBy map[string]int
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

func (c *Cloud) onFault(f chaos.Injected) {
	c.emit(Event{At: f.At, Kind: KindFault, Subject: string(f.Fault), Status: f.Point, Detail: f.Detail, Failed: true})
}

func (c *Cloud) onStackEvent(ev cfnengine.StackEvent) {
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
	if d.Rule == StateWatchRule && (d.Source == contract.SourceState || d.Source == contract.SourceMaintenance) {
		c.emit(stateEvent(d))
		return
	}
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
		Detail: fmt.Sprintf("%d messages, %d deleted", len(b.MessageIDs), len(b.Deleted)), Messages: len(b.MessageIDs),
		HandedBy: map[string]int{}, DeletedBy: map[string]int{}}
	for _, id := range b.MessageIDs {
		e.HandedBy[deploymentOf(b.Bodies[id])]++
	}
	for _, id := range b.Deleted {
		if body, handed := b.Bodies[id]; handed {
			e.DeletedBy[deploymentOf(body)]++
		}
	}
	switch {
	case b.Err != nil:
		e.Failed, e.Status, e.Detail = true, "not invoked", b.Err.Error()
	case b.FunctionError != "":
		e.Failed, e.Status = true, "function error "+b.FunctionError
	}
	c.emit(e)
}

// deploymentOf is the deployment a message body names, "" when it names none.
func deploymentOf(body string) string {
	var m struct {
		DeploymentID string `json:"deploymentId"`
	}
	if json.Unmarshal([]byte(body), &m) != nil {
		return ""
	}
	return m.DeploymentID
}

func (c *Cloud) onFiring(f schedules.Firing) {
	e := Event{At: time.Now(), Kind: KindSchedule, Subject: f.Group + "/" + f.Name, Status: "fired",
		Detail: fmt.Sprintf("attempt %d to %s", f.Attempt, c.byocName(f.Target))}
	if f.Err != nil {
		e.Failed, e.Status, e.Detail = true, "failed", f.Err.Error()
	}
	c.emit(e)
}

// StateWatchRule is the vendor-bus rule WatchStateEvents creates, and the name of its
// target queue.
const StateWatchRule = "byoc-local-state-watch"

// WatchStateEvents subscribes to the byoc.state events on the vendor bus as an operator's
// alert channel would: a rule matching source byoc.state from the vendor account (as every
// byoc.* rule of the control plane does) whose target is an SQS queue (StateWatchRule;
// nobody reads it, messages expire after five minutes). Every delivery to it is a KindHealth
// line of the timeline. The control plane's operator rules route only critical, recovered
// and security events, and the bus tells the timeline only of deliveries, so without this
// subscriber the other alerts would be invisible. Calling it again changes nothing.
func (c *Cloud) WatchStateEvents(ctx context.Context, bus string) error {
	cfg := c.WatchConfig()
	q := sqs.NewFromConfig(cfg)
	created, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(StateWatchRule),
		Attributes: map[string]string{"MessageRetentionPeriod": "300"}})
	if err != nil {
		return fmt.Errorf("watch state events: create queue %s: %w", StateWatchRule, err)
	}
	attrs, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: created.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return fmt.Errorf("watch state events: %w", err)
	}
	queueArn := attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	eb := eventbridge.NewFromConfig(cfg)
	pattern, _ := json.Marshal(map[string][]string{"account": {VendorAccount}, "source": {contract.SourceState, contract.SourceMaintenance}})
	rule, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(StateWatchRule), EventBusName: aws.String(bus),
		EventPattern: aws.String(string(pattern)), State: ebtypes.RuleStateEnabled,
		Description: aws.String("byoc-local: show the service-state alerts on the timeline")})
	if err != nil {
		return fmt.Errorf("watch state events: rule on bus %s: %w", bus, err)
	}
	// As on AWS, the queue admits EventBridge for this rule only.
	policy, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
		"Effect": "Allow", "Principal": map[string]string{"Service": "events.amazonaws.com"},
		"Action": "sqs:SendMessage", "Resource": queueArn,
		"Condition": map[string]any{"ArnEquals": map[string]string{"aws:SourceArn": aws.ToString(rule.RuleArn)}},
	}}})
	if _, err := q.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: created.QueueUrl,
		Attributes: map[string]string{"Policy": string(policy)}}); err != nil {
		return fmt.Errorf("watch state events: queue policy: %w", err)
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(StateWatchRule), EventBusName: aws.String(bus),
		Targets: []ebtypes.Target{{Id: aws.String("state-watch"), Arn: aws.String(queueArn)}}}); err != nil {
		return fmt.Errorf("watch state events: target: %w", err)
	}
	return nil
}

// stateEvent is the timeline line of a byoc.state or byoc.maintenance event: a health
// transition (its scope, from -> to, severity and reason; "!" when the new health is bad), a
// rejected message, or a maintenance notice.
func stateEvent(d eventbus.Delivery) Event {
	e := Event{At: d.At, Kind: KindHealth, EventID: d.EventID, DetailType: d.DetailType}
	var env struct {
		Account string          `json:"account"`
		Detail  json.RawMessage `json:"detail"`
	}
	_ = json.Unmarshal(d.Event, &env)
	e.Account, e.Data = env.Account, env.Detail
	var detail struct {
		Scope        string `json:"scope"`
		DeploymentID string `json:"deploymentId"`
		ServiceID    string `json:"serviceId"`
		From, To     string
		Reason       string `json:"reason"`
		Severity     string `json:"severity"`
		// a rejection
		MessageID           string `json:"messageId"`
		Detail              string `json:"detail"`
		Security            bool   `json:"security"`
		ClaimedDeploymentID string `json:"claimedDeploymentId"`
	}
	_ = json.Unmarshal(env.Detail, &detail)
	switch d.DetailType {
	case contract.DetailTypeServiceHealthChanged, contract.DetailTypeDeploymentHealthChanged:
		e.Subject = detail.Scope + " " + detail.DeploymentID
		if detail.ServiceID != "" {
			e.Subject += "/" + detail.ServiceID
		}
		e.Status = detail.From + " -> " + detail.To
		e.Detail = detail.Severity
		if detail.Reason != "" {
			e.Detail += ": " + detail.Reason
		}
		e.Failed = detail.Severity != "" && detail.Severity != "info"
	case contract.DetailTypeStateMessageRejected:
		e.Subject = "rejected message " + detail.MessageID
		e.Status = detail.Reason
		e.Detail = "claims " + detail.ClaimedDeploymentID + ": " + detail.Detail
		if detail.Security {
			e.Detail += " (security)"
		}
		e.Failed = true
	case contract.DetailTypeMaintenanceUpcoming, contract.DetailTypeMaintenanceScheduled, contract.DetailTypeMaintenanceStarted,
		contract.DetailTypeMaintenanceCompleted, contract.DetailTypeMaintenanceFailed, contract.DetailTypeReleaseHalted:
		var n struct {
			Execution string `json:"execution"`
			Step      string `json:"step"`
			Reason    string `json:"reason"`
			StartsAt  string `json:"startsAt"`
			Steps     []string
			Releases  []struct {
				ID string `json:"id"`
			} `json:"releases"`
		}
		_ = json.Unmarshal(env.Detail, &n)
		e.Subject, e.Status = d.DetailType, "deployment "+detail.DeploymentID
		var parts []string
		for _, r := range n.Releases {
			parts = append(parts, r.ID)
		}
		if n.StartsAt != "" {
			parts = append(parts, "starts "+n.StartsAt)
		}
		if n.Step != "" {
			parts = append(parts, "step: "+n.Step)
		}
		if n.Reason != "" {
			parts = append(parts, n.Reason)
		}
		e.Detail = strings.Join(parts, "; ")
		e.Failed = d.DetailType == contract.DetailTypeMaintenanceFailed || d.DetailType == contract.DetailTypeReleaseHalted
	default:
		e.Subject, e.Status = d.DetailType, string(env.Detail)
	}
	if d.Err != nil {
		e.Failed, e.Detail = true, e.Detail+"; not delivered to the watch: "+d.Err.Error()
	}
	return e
}
