// Package stackevent reads CloudFormation "Stack Status Change" events and classifies stack
// statuses. The functions that react to stacks (onboard, stackevents) and the provision steps
// that poll them must agree on which statuses end an operation and which of those are
// failures, so that agreement lives here, once.
package stackevent

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/byocloud/byoc/shared/contract"
)

// Event is a Stack Status Change event reduced to what the control plane acts on.
type Event struct {
	ID        string // EventBridge event id: the idempotency key
	Stack     Stack
	Status    string // detail.status-details.status
	Reason    string // detail.status-details.status-reason
	RequestID string // detail.client-request-token: which stack operation emitted the event
}

// Stack identifies one stack instance. Its ID (the stack ARN) changes when a stack is deleted
// and recreated under the same name; the name does not.
type Stack struct {
	ID        string // arn:<partition>:cloudformation:<region>:<account>:stack/<name>/<uuid>
	Partition string
	Region    string
	AccountID string
	Name      string
}

// MalformedError says why an event cannot be read. It names the offending field.
type MalformedError struct {
	Field string
	Rule  string
}

func (e *MalformedError) Error() string {
	return fmt.Sprintf("malformed stack status event: %s: %s", e.Field, e.Rule)
}

// ErrMalformed matches every *MalformedError with errors.Is.
var ErrMalformed = errors.New("malformed stack status event")

// Is lets errors.Is(err, ErrMalformed) match any MalformedError.
func (e *MalformedError) Is(target error) bool { return target == ErrMalformed }

type detail struct {
	StackID       *string `json:"stack-id"`
	StatusDetails *struct {
		Status *string `json:"status"`
		Reason string  `json:"status-reason"`
	} `json:"status-details"`
	ClientRequestToken string `json:"client-request-token"`
}

// IsStackStatusChange reports whether an event claims to be a CloudFormation Stack Status
// Change. Handlers ignore other events (a Resource Status Change reaching them is routed too
// widely, not broken) and treat a claimed but unreadable one as malformed.
func IsStackStatusChange(ev events.CloudWatchEvent) bool {
	return ev.Source == contract.SourceCloudFormation && ev.DetailType == contract.DetailTypeStackStatusChange
}

// ForgedError is a well-formed event whose stack belongs to another account than the one that
// put it. EventBridge writes the envelope's account itself (the account that put the event,
// also across a forwarding rule), while the detail is whatever the sender wrote: an event that
// names another account's stack is a customer speaking for someone else. Handlers reject it,
// audit it and do not retry it.
type ForgedError struct {
	SenderAccount string // the envelope's account: who put the event
	StackID       string // the stack the detail claims
	StackAccount  string
}

func (e *ForgedError) Error() string {
	return fmt.Sprintf("forged stack status event: account %s put an event about stack %s of account %s", e.SenderAccount, e.StackID, e.StackAccount)
}

// Parse checks the envelope and detail of an EventBridge event and returns the stack event.
// The envelope's account and region must be the stack ARN's: EventBridge sets the envelope,
// the sender sets the detail (a mismatch is a *ForgedError). When the envelope lists
// resources, the stack ARN must be one of them.
func Parse(ev events.CloudWatchEvent) (Event, error) {
	if ev.ID == "" {
		return Event{}, &MalformedError{Field: "id", Rule: "must not be empty"}
	}
	if ev.Source != contract.SourceCloudFormation {
		return Event{}, &MalformedError{Field: "source", Rule: fmt.Sprintf("must be %q, got %q", contract.SourceCloudFormation, ev.Source)}
	}
	if ev.DetailType != contract.DetailTypeStackStatusChange {
		return Event{}, &MalformedError{Field: "detail-type", Rule: fmt.Sprintf("must be %q, got %q", contract.DetailTypeStackStatusChange, ev.DetailType)}
	}
	if len(ev.Detail) == 0 {
		return Event{}, &MalformedError{Field: "detail", Rule: "must be present"}
	}
	var d detail
	if err := json.Unmarshal(ev.Detail, &d); err != nil {
		return Event{}, &MalformedError{Field: "detail", Rule: "must be a JSON object: " + err.Error()}
	}
	if d.StackID == nil {
		return Event{}, &MalformedError{Field: "detail.stack-id", Rule: "must be present"}
	}
	stack, err := ParseStackID(*d.StackID)
	if err != nil {
		return Event{}, err
	}
	if d.StatusDetails == nil || d.StatusDetails.Status == nil || *d.StatusDetails.Status == "" {
		return Event{}, &MalformedError{Field: "detail.status-details.status", Rule: "must be present"}
	}
	status := *d.StatusDetails.Status
	if !Known(status) {
		return Event{}, &MalformedError{Field: "detail.status-details.status", Rule: fmt.Sprintf("%q is not a CloudFormation stack status", status)}
	}
	if len(ev.Resources) > 0 && !slices.Contains(ev.Resources, stack.ID) {
		return Event{}, &MalformedError{Field: "resources", Rule: "must contain detail.stack-id " + stack.ID}
	}
	if ev.Region != "" && ev.Region != stack.Region {
		return Event{}, &MalformedError{Field: "region", Rule: fmt.Sprintf("envelope region %q differs from the stack's %q", ev.Region, stack.Region)}
	}
	if !isAccountID(ev.AccountID) {
		return Event{}, &MalformedError{Field: "account", Rule: fmt.Sprintf("must be the 12-digit account that put the event, got %q", ev.AccountID)}
	}
	if ev.AccountID != stack.AccountID {
		return Event{}, &ForgedError{SenderAccount: ev.AccountID, StackID: stack.ID, StackAccount: stack.AccountID}
	}
	return Event{
		ID:        ev.ID,
		Stack:     stack,
		Status:    status,
		Reason:    d.StatusDetails.Reason,
		RequestID: d.ClientRequestToken,
	}, nil
}

// ParseStackID splits a stack ARN: arn:<partition>:cloudformation:<region>:<account>:stack/<name>/<uuid>.
func ParseStackID(arn string) (Stack, error) {
	bad := func(rule string) error {
		return &MalformedError{Field: "detail.stack-id", Rule: fmt.Sprintf("%q %s", arn, rule)}
	}
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" {
		return Stack{}, bad("is not an ARN")
	}
	partition, service, region, account, resource := parts[1], parts[2], parts[3], parts[4], parts[5]
	if service != "cloudformation" {
		return Stack{}, bad("is not a CloudFormation ARN")
	}
	if partition == "" || region == "" {
		return Stack{}, bad("has no partition or region")
	}
	if !isAccountID(account) {
		return Stack{}, bad("has no 12-digit account id")
	}
	kind, rest, _ := strings.Cut(resource, "/")
	name, uuid, _ := strings.Cut(rest, "/")
	if kind != "stack" || name == "" || uuid == "" {
		return Stack{}, bad("is not stack/<name>/<id>")
	}
	return Stack{ID: arn, Partition: partition, Region: region, AccountID: account, Name: name}, nil
}

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
