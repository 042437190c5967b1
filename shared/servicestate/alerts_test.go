package servicestate

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/byocloud/byoc/shared/cloud/cloudtest"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/health"
)

// deliveredEvent is an entry of kumo's log of events its rules matched.
type deliveredEvent struct {
	DetailType   string `json:"DetailType"`
	Detail       string `json:"Detail"`
	EventBusName string `json:"EventBusName"`
	Source       string `json:"Source"`
}

// alertBus creates a bus with a rule matching every byoc.state event. Its target is an SNS
// ARN, which kumo records as delivered without trying to reach it.
func alertBus(t *testing.T, env *cloudtest.Env) string {
	t.Helper()
	ctx := context.Background()
	eb := env.EventBridge()
	name := cloudtest.UniqueName("bus")
	if _, err := eb.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{
		Name: aws.String("state"), EventBusName: aws.String(name),
		EventPattern: aws.String(`{"source":["` + contract.SourceState + `"]}`),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{
		Rule: aws.String("state"), EventBusName: aws.String(name),
		Targets: []ebtypes.Target{{Id: aws.String("log"), Arn: aws.String("arn:aws:sns:us-east-1:000000000000:alerts")}},
	}); err != nil {
		t.Fatal(err)
	}
	return name
}

// delivered returns the events kumo matched on bus.
func delivered(t *testing.T, env *cloudtest.Env, bus string) []deliveredEvent {
	t.Helper()
	resp, err := http.Get(env.URL + "/kumo/eventbridge/delivered-events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var all []deliveredEvent
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		t.Fatal(err)
	}
	var mine []deliveredEvent
	for _, e := range all {
		if e.EventBusName == bus {
			mine = append(mine, e)
		}
	}
	return mine
}

func TestDeliverPublishesAndEmptiesTheOutbox(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	bus := alertBus(t, f.env)
	pub := Publisher{Bus: f.env.EventBridge(), BusName: bus}

	alerts := f.apply(t, unhealthy(report("dep1", "svc-a", 1))).Alerts
	if err := f.repo.Deliver(ctx, pub, alerts); err != nil {
		t.Fatal(err)
	}
	events := delivered(t, f.env, bus)
	if len(events) != 2 {
		t.Fatalf("delivered %v, want two alerts", events)
	}
	if events[0].DetailType != contract.DetailTypeServiceHealthChanged || events[1].DetailType != contract.DetailTypeDeploymentHealthChanged {
		t.Fatalf("detail types %q, %q", events[0].DetailType, events[1].DetailType)
	}
	var detail AlertDetail
	if err := json.Unmarshal([]byte(events[0].Detail), &detail); err != nil {
		t.Fatal(err)
	}
	if detail.AlertID != alerts[0].ID() || detail.Severity != health.SeverityCritical || detail.To != health.Unhealthy ||
		detail.DeploymentID != "dep1" || detail.ServiceID != "svc-a" || detail.Reason != "exporter reported unhealthy" {
		t.Fatalf("detail %+v", detail)
	}
	f.clock.Advance(time.Hour)
	if pending, err := f.repo.Unpublished(ctx, f.clock.now); err != nil || len(pending) != 0 {
		t.Fatalf("outbox after delivery: %v %v", pending, err)
	}
}

func TestPublishRejection(t *testing.T) {
	f := newFixture(t)
	bus := alertBus(t, f.env)
	pub := Publisher{Bus: f.env.EventBridge(), BusName: bus}
	rej := Rejection{MessageID: "m-1", Reason: "forged-sender", Security: true, SenderID: "AROAXXXXXXXXXXXXXXXXX:s", ClaimedDeploymentID: "dep2", SentAt: t0}
	if err := pub.PublishRejection(context.Background(), rej); err != nil {
		t.Fatal(err)
	}
	events := delivered(t, f.env, bus)
	if len(events) != 1 || events[0].DetailType != contract.DetailTypeStateMessageRejected {
		t.Fatalf("delivered %v", events)
	}
	var detail RejectionDetail
	if err := json.Unmarshal([]byte(events[0].Detail), &detail); err != nil || !detail.Security || detail.ClaimedDeploymentID != "dep2" {
		t.Fatalf("detail %+v %v", detail, err)
	}
}

func TestRecordRejectionOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	rej := Rejection{MessageID: "m-1", Reason: "malformed", Detail: "not JSON", BodySHA256: "ab", BodyBytes: 3, SentAt: t0.Add(23 * time.Hour)}
	first, err := f.repo.RecordRejection(ctx, rej)
	if err != nil || !first {
		t.Fatalf("first: %v %v", first, err)
	}
	// The redelivery is received the next day; the record is keyed by send time. Its first
	// delivery stopped before the rejection was handled: it is still pending, once.
	f.clock.Advance(25 * time.Hour)
	again, err := f.repo.RecordRejection(ctx, rej)
	if err != nil || !again {
		t.Fatalf("second, not handled yet: %v %v, want it still pending", again, err)
	}
	// Counted once, whatever redelivers it: the count and its mark are one transaction.
	for range 2 {
		if n, opened, err := f.repo.CountRejection(ctx, rej); err != nil || n != 1 || !opened {
			t.Fatalf("count: %d %v %v, want 1 and the window opened by it", n, opened, err)
		}
	}
	if err := f.repo.MarkRejectionHandled(ctx, rej); err != nil {
		t.Fatal(err)
	}
	if third, err := f.repo.RecordRejection(ctx, rej); err != nil || third {
		t.Fatalf("third, handled: %v %v, want nothing left to do", third, err)
	}
	list, err := f.repo.Rejections(ctx, rej.SentAt)
	if err != nil || len(list) != 1 || list[0].Reason != "malformed" || !list[0].RecordedAt.Equal(t0) {
		t.Fatalf("rejections %+v %v", list, err)
	}
	if _, err := f.repo.RecordRejection(ctx, Rejection{MessageID: "m-2"}); err == nil {
		t.Fatal("a rejection without reason was recorded")
	}
	if _, _, err := f.repo.CountRejection(ctx, Rejection{MessageID: "never-recorded", Reason: "malformed", SentAt: t0}); err == nil {
		t.Fatal("a rejection never recorded was counted")
	}
}
