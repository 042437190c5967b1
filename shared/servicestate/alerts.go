package servicestate

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/health"
)

// EventBus is the part of the EventBridge client that publishes events.
type EventBus interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

var _ EventBus = (*eventbridge.Client)(nil)

// Publisher puts health alerts and security events on the vendor bus.
type Publisher struct {
	Bus     EventBus
	BusName string
}

// AlertDetail is the detail of a "BYOC Service Health Changed" or "BYOC Deployment Health
// Changed" event. AlertID is stable across redeliveries: delivery is at least once, so
// consumers deduplicate on it.
type AlertDetail struct {
	AlertID string `json:"alertId"`
	health.Alert
}

// RejectionDetail is the detail of a "BYOC State Message Rejected" event: one rejected
// message, or (Repeats > 0) the summary of a sender's further rejections in a window, whose
// Rejection is the one that opened the window.
type RejectionDetail struct {
	Rejection
	Repeats     int64     `json:"repeats,omitempty"` // rejections of the sender in the window after the first
	WindowStart time.Time `json:"windowStart,omitzero"`
	WindowEnd   time.Time `json:"windowEnd,omitzero"`
}

// putEventsLimit is EventBridge's maximum number of entries per PutEvents call.
const putEventsLimit = 10

// DetailType returns the detail-type of an alert's event.
func DetailType(a health.Alert) string {
	if a.Scope == health.ScopeDeployment {
		return contract.DetailTypeDeploymentHealthChanged
	}
	return contract.DetailTypeServiceHealthChanged
}

// PublishAlerts puts one event per alert and returns those EventBridge accepted; the
// others stay in the outbox for the next attempt.
func (p Publisher) PublishAlerts(ctx context.Context, alerts []PendingAlert) ([]PendingAlert, error) {
	var published []PendingAlert
	for start := 0; start < len(alerts); start += putEventsLimit {
		batch := alerts[start:min(start+putEventsLimit, len(alerts))]
		entries := make([]ebtypes.PutEventsRequestEntry, len(batch))
		for i, a := range batch {
			detail, err := json.Marshal(AlertDetail{AlertID: a.ID(), Alert: a.Alert})
			if err != nil {
				return published, fmt.Errorf("encode alert %s: %w", a.ID(), err)
			}
			entries[i] = ebtypes.PutEventsRequestEntry{
				EventBusName: aws.String(p.BusName),
				Source:       aws.String(contract.SourceState),
				DetailType:   aws.String(DetailType(a.Alert)),
				Detail:       aws.String(string(detail)),
				Time:         aws.Time(a.Alert.At),
			}
		}
		accepted, err := p.put(ctx, entries)
		if err != nil {
			return published, err
		}
		for i, ok := range accepted {
			if ok {
				published = append(published, batch[i])
			}
		}
	}
	if len(published) < len(alerts) {
		return published, fmt.Errorf("EventBridge refused %d of %d alerts", len(alerts)-len(published), len(alerts))
	}
	return published, nil
}

// StalledDetail is the detail of a "BYOC Onboarding Stalled" event.
type StalledDetail struct {
	DeploymentID string    `json:"deploymentId"`
	AccountID    string    `json:"accountId"`
	Region       string    `json:"region"`
	InvitedAt    time.Time `json:"invitedAt"`
	Reason       string    `json:"reason"`
}

// PublishStalled announces a deployment whose onboarding has stalled.
func (p Publisher) PublishStalled(ctx context.Context, d StalledDetail) error {
	detail, err := json.Marshal(d)
	if err != nil {
		return err
	}
	accepted, err := p.put(ctx, []ebtypes.PutEventsRequestEntry{{
		EventBusName: aws.String(p.BusName), Source: aws.String(contract.SourceState),
		DetailType: aws.String(contract.DetailTypeOnboardingStalled), Detail: aws.String(string(detail)),
	}})
	if err != nil {
		return err
	}
	if !accepted[0] {
		return fmt.Errorf("EventBridge refused the stalled-onboarding event of %s", d.DeploymentID)
	}
	return nil
}

// PublishRejection announces a rejected state message.
func (p Publisher) PublishRejection(ctx context.Context, rej Rejection) error {
	return p.publishRejection(ctx, RejectionDetail{Rejection: rej})
}

// PublishRepeatedRejections announces, once, how many more messages a sender had rejected in
// a window after the one announced when it opened.
func (p Publisher) PublishRepeatedRejections(ctx context.Context, w RejectionWindowSummary) error {
	return p.publishRejection(ctx, RejectionDetail{Rejection: w.First, Repeats: w.Count - 1,
		WindowStart: w.WindowStart, WindowEnd: w.WindowStart.Add(RejectionWindow)})
}

func (p Publisher) publishRejection(ctx context.Context, d RejectionDetail) error {
	rej := d.Rejection
	detail, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode rejection of %s: %w", rej.MessageID, err)
	}
	accepted, err := p.put(ctx, []ebtypes.PutEventsRequestEntry{{
		EventBusName: aws.String(p.BusName),
		Source:       aws.String(contract.SourceState),
		DetailType:   aws.String(contract.DetailTypeStateMessageRejected),
		Detail:       aws.String(string(detail)),
	}})
	if err != nil {
		return err
	}
	if !accepted[0] {
		return fmt.Errorf("EventBridge refused the rejection event of message %s", rej.MessageID)
	}
	return nil
}

// put sends entries and reports, per entry, whether EventBridge accepted it (PutEvents
// succeeds as a call even when some entries fail).
func (p Publisher) put(ctx context.Context, entries []ebtypes.PutEventsRequestEntry) ([]bool, error) {
	out, err := p.Bus.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries})
	if err != nil {
		return nil, fmt.Errorf("put %d events on %s: %w", len(entries), p.BusName, err)
	}
	accepted := make([]bool, len(entries))
	for i := range entries {
		accepted[i] = i < len(out.Entries) && aws.ToString(out.Entries[i].ErrorCode) == "" && aws.ToString(out.Entries[i].EventId) != ""
	}
	return accepted, nil
}

// Deliver publishes alerts and takes the published ones out of the outbox. Alerts it could
// not publish stay in the outbox, where the sweep finds them (Unpublished).
func (r *Repo) Deliver(ctx context.Context, p Publisher, alerts []PendingAlert) error {
	if len(alerts) == 0 {
		return nil
	}
	published, pubErr := p.PublishAlerts(ctx, alerts)
	for _, a := range published {
		if err := r.MarkPublished(ctx, a); err != nil {
			return err
		}
	}
	return pubErr
}
