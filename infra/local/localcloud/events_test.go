package localcloud

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/byocloud/byoc/infra/local/eventsources/eventbus"
	"github.com/byocloud/byoc/shared/contract"
)

func delivery(detailType string, detail map[string]any) eventbus.Delivery {
	body, _ := json.Marshal(map[string]any{"id": "ev-1", "account": VendorAccount, "source": contract.SourceState, "detail-type": detailType, "detail": detail})
	return eventbus.Delivery{EventID: "ev-1", Rule: StateWatchRule, Source: contract.SourceState, DetailType: detailType, Event: body}
}

func TestStateEventsOnTheTimeline(t *testing.T) {
	cases := []struct {
		name string
		d    eventbus.Delivery
		want Event
	}{
		{"service alert", delivery(contract.DetailTypeServiceHealthChanged, map[string]any{
			"alertId": "a1", "scope": "service", "deploymentId": "d1", "serviceId": "ch-primary", "from": "healthy", "to": "unhealthy",
			"reason": "no ready replica (0/3)", "severity": "critical"}),
			Event{Kind: KindHealth, Subject: "service d1/ch-primary", Status: "healthy -> unhealthy", Detail: "critical: no ready replica (0/3)", Failed: true}},
		{"deployment recovered", delivery(contract.DetailTypeDeploymentHealthChanged, map[string]any{
			"alertId": "a2", "scope": "deployment", "deploymentId": "d1", "from": "unknown", "to": "healthy", "severity": "info"}),
			Event{Kind: KindHealth, Subject: "deployment d1", Status: "unknown -> healthy", Detail: "info"}},
		{"rejected", delivery(contract.DetailTypeStateMessageRejected, map[string]any{
			"messageId": "m1", "reason": "forged-sender", "detail": "sender is not d1's exporter", "security": true, "claimedDeploymentId": "d1"}),
			Event{Kind: KindHealth, Subject: "rejected message m1", Status: "forged-sender", Detail: "claims d1: sender is not d1's exporter (security)", Failed: true}},
	}
	for _, c := range cases {
		got := stateEvent(c.d)
		if got.Kind != c.want.Kind || got.Subject != c.want.Subject || got.Status != c.want.Status || got.Detail != c.want.Detail || got.Failed != c.want.Failed {
			t.Errorf("%s: got %+v\nwant %+v", c.name, got, c.want)
		}
		if got.EventID != "ev-1" || got.DetailType != c.d.DetailType || got.Account != VendorAccount || !json.Valid(got.Data) {
			t.Errorf("%s: id, detail-type, account or data lost: %+v", c.name, got)
		}
	}
	failed := delivery(contract.DetailTypeDeploymentHealthChanged, map[string]any{"scope": "deployment", "deploymentId": "d1", "from": "healthy", "to": "stale", "severity": "warning"})
	failed.Err = errors.New("queue gone")
	if e := stateEvent(failed); !e.Failed || !strings.Contains(e.Detail, "not delivered to the watch: queue gone") {
		t.Errorf("a failed delivery: %+v", e)
	}
}

func TestOnlyTheWatchRuleMakesHealthLines(t *testing.T) {
	var got []Event
	c := &Cloud{observer: func(e Event) { got = append(got, e) }, byName: map[string]string{}}
	d := delivery(contract.DetailTypeDeploymentHealthChanged, map[string]any{"scope": "deployment", "deploymentId": "d1", "from": "unknown", "to": "healthy"})
	c.onDelivery(d)
	d.Rule, d.Target = "OperatorsOwnRule", "arn:aws:sqs:us-east-1:000000000000:ops"
	c.onDelivery(d)
	if len(got) != 2 || got[0].Kind != KindHealth || got[1].Kind != KindEvent || got[1].Status != contract.DetailTypeDeploymentHealthChanged {
		t.Fatalf("events %+v", got)
	}
}
