package e2e

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/store"
)

// An invited customer, admitted to the vendor bus by the real invite, puts events that look
// like the control plane's on it: a critical alert, a recovery and a security rejection about
// its own deployment, a peering request, and an event of a source of its own. Every entry is refused by the bus
// policy's statement from the control-plane template; no rule fires (nothing reaches the
// state watch, so no operator page), and the deployment's audit trail is unchanged.
func TestCustomerCannotPutControlPlaneEventsOnTheVendorBus(t *testing.T) {
	st := state(t)
	tn := onboard(t)
	ctx := context.Background()
	out := shared.runner.ControlPlane.Outputs
	db := store.New(cloud.NewDynamoDB(shared.cloud.WatchConfig()), out[outTableName])
	trailBefore, err := db.AuditTrail(ctx, tn.dep.ID)
	if err != nil {
		t.Fatal(err)
	}
	seenBefore := len(st.tap.all(t))

	detail := func(v any) *string {
		raw, _ := json.Marshal(v)
		return aws.String(string(raw))
	}
	alert := func(from, to health.Health) *string {
		a, _ := health.AlertFor(health.Transition{Scope: health.ScopeDeployment, DeploymentID: tn.dep.ID, From: from, To: to})
		return detail(a)
	}
	bus := aws.String(out["VendorEventBusArn"])
	entries := []ebtypes.PutEventsRequestEntry{
		{EventBusName: bus, Source: aws.String(contract.SourceState), DetailType: aws.String(contract.DetailTypeDeploymentHealthChanged), Detail: alert(health.Healthy, health.Unhealthy)},
		{EventBusName: bus, Source: aws.String(contract.SourceState), DetailType: aws.String(contract.DetailTypeDeploymentHealthChanged), Detail: alert(health.Unhealthy, health.Healthy)},
		{EventBusName: bus, Source: aws.String(contract.SourceState), DetailType: aws.String(contract.DetailTypeStateMessageRejected),
			Detail: detail(servicestate.Rejection{MessageID: "forged-by-customer", Reason: "forged-sender", Security: true, ClaimedDeploymentID: tn.dep.ID})},
		{EventBusName: bus, Source: aws.String("com.customer.app"), DetailType: aws.String("Anything"), Detail: aws.String(`{}`)},
		// A peering request only the vendor's own systems may make.
		{EventBusName: bus, Source: aws.String(contract.SourceOperator), DetailType: aws.String(contract.DetailTypePeeringRequested),
			Detail: detail(map[string]any{"deploymentId": tn.dep.ID, "peerAccount": tn.customer, "peerVpcId": "vpc-0123456789abcdef0",
				"peerRegion": "us-east-1", "peerCidrs": []string{"10.1.0.0/16"}, "name": "forged"})},
	}
	put, err := eventbridge.NewFromConfig(shared.cloud.ConfigAs(tn.customer)).PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	if put.FailedEntryCount != int32(len(entries)) {
		t.Errorf("%d of %d entries refused, want every one", put.FailedEntryCount, len(entries))
	}
	for i, e := range put.Entries {
		// The local bus says AccessDeniedException; what matters is the refusal.
		if aws.ToString(e.ErrorCode) == "" || aws.ToString(e.EventId) != "" {
			t.Errorf("entry %d (%s) was accepted as event %q", i, aws.ToString(entries[i].Source), aws.ToString(e.EventId))
		}
	}
	// A refused put is refused before delivery: nothing can arrive later.
	for _, e := range st.tap.all(t)[seenBefore:] {
		if e.Alert.DeploymentID == tn.dep.ID || e.Rejection.ClaimedDeploymentID == tn.dep.ID {
			t.Errorf("a customer's event reached the state watch: %s", e)
		}
	}
	trailAfter, err := db.AuditTrail(ctx, tn.dep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(trailAfter) != len(trailBefore) {
		t.Errorf("the audit trail grew from %d to %d entries", len(trailBefore), len(trailAfter))
	}
	if d, err := db.Get(ctx, tn.dep.ID); err != nil || d.Network != nil {
		t.Errorf("the forged peering request reached the deployment: %+v, %v", d.Network, err)
	}
}
