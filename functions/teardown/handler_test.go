package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/byocloud/byoc/shared/connectivity"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/runs"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/steperr"
	"github.com/byocloud/byoc/shared/store"
)

func TestStacksGoNetworkFirstThenTheInfrastructure(t *testing.T) {
	d := store.Deployment{ID: "abc123", StackName: "clickhouse-cloud-abc123-infra", Settings: settings.Settings{ResourcePrefix: "clickhouse-cloud"},
		Network: &connectivity.Network{
			Peerings: []connectivity.Peering{
				{PeerVpcID: "vpc-1111aaaa", State: connectivity.Active},
				{PeerVpcID: "vpc-2222bbbb", State: connectivity.Deleted},
				{PeerVpcID: "vpc-3333cccc", State: connectivity.Failed},
			},
			PrivateLink: &connectivity.PrivateLink{State: connectivity.Active},
		}}
	got := stacks(d)
	want := []string{"clickhouse-cloud-abc123-peering-1111aaaa", "clickhouse-cloud-abc123-peering-3333cccc", "clickhouse-cloud-abc123-privatelink", "clickhouse-cloud-abc123-infra"}
	if len(got) != len(want) {
		t.Fatalf("stacks %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("stacks %v, want %v", got, want)
		}
	}
	// What the teardown leaves: every peering and the PrivateLink service deleted.
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n := gone(d.Network, now)
	for _, p := range n.Peerings {
		if p.State != connectivity.Deleted {
			t.Fatalf("peering %s left %s", p.PeerVpcID, p.State)
		}
	}
	if n.PrivateLink.State != connectivity.Deleted || d.Network.Peerings[0].State != connectivity.Active {
		t.Fatal("gone changed the deployment it was given, or left PrivateLink")
	}
}

func TestNothingBuiltNothingToOpen(t *testing.T) {
	if built(store.Deployment{ID: "abc123"}) {
		t.Fatal("an invited deployment counts as built")
	}
	if !built(store.Deployment{ID: "abc123", StackID: "arn:aws:cloudformation:us-east-1:1:stack/x/y"}) {
		t.Fatal("a deployment with its stack does not count as built")
	}
	d := store.Deployment{ID: "abc123", Settings: settings.Settings{ResourcePrefix: "clickhouse-cloud", AccountID: "111122223333"}}
	if got := BucketName(d); got != "clickhouse-cloud-abc123-111122223333" {
		t.Fatalf("bucket %s", got)
	}
	d.Outputs = map[string]string{contract.InfraOutputBucketName: "named-by-the-stack"}
	if got := BucketName(d); got != "named-by-the-stack" {
		t.Fatalf("bucket %s, want the stack's output", got)
	}
}

// The teardown opens the customer's account only while it has something to do there: not
// for a deployment that built nothing, not once the customer was told it is deleted (they may
// have deleted the bootstrap stack since), and not for an abandoned account.
func TestWhenTheAccountIsOpened(t *testing.T) {
	stack := "arn:aws:cloudformation:us-east-1:1:stack/x/y"
	for _, c := range []struct {
		name string
		d    store.Deployment
		want bool
	}{
		{"built, being torn down", store.Deployment{StackID: stack, Teardown: &store.Teardown{}}, true},
		{"nothing built", store.Deployment{Teardown: &store.Teardown{}}, false},
		{"announced", store.Deployment{StackID: stack, Teardown: &store.Teardown{Announced: true}}, false},
		{"abandoned", store.Deployment{StackID: stack, Teardown: &store.Teardown{Abandon: true}}, false},
		{"no teardown recorded", store.Deployment{StackID: stack}, false},
	} {
		if got := reachesAccount(c.d); got != c.want {
			t.Errorf("%s: reachesAccount %t, want %t", c.name, got, c.want)
		}
	}
	// What an abandoned account's customer is told: the stacks to delete, the bucket kept.
	d := store.Deployment{ID: "abc123", Settings: settings.Settings{CustomerID: "acme", AccountID: "111122223333", Region: "us-east-1"},
		Teardown: &store.Teardown{Abandon: true, Abandoned: []string{"clickhouse-cloud-abc123-infra"}, RetainedBucket: "clickhouse-cloud-abc123-111122223333"}}
	n := (&Handler{}).deletedNotice(d)
	if len(n.AbandonedStacks) != 1 || !strings.Contains(n.Message, "delete the stacks clickhouse-cloud-abc123-infra") ||
		!strings.Contains(n.Message, "bucket clickhouse-cloud-abc123-111122223333 was kept") || n.NoticeID != "deleted-abc123" {
		t.Fatalf("notice %+v", n)
	}
}

func TestRequestTokensAndOwners(t *testing.T) {
	exec := "arn:aws:states:us-east-1:000000000000:execution:TeardownWorkflow-x:teardown-abc123-2"
	if a, b := requestToken(exec, "s"), requestToken(exec, "s"); a != b || a == requestToken(exec, "t") || len(a) > 128 {
		t.Fatalf("tokens %s %s", a, b)
	}
	if got := runs.MachineOf(exec); got != "arn:aws:states:us-east-1:000000000000:stateMachine:TeardownWorkflow-x" {
		t.Fatalf("owner machine %s", got)
	}
	if got := runs.NameOf(exec); got != "teardown-abc123-2" {
		t.Fatalf("execution name %s", got)
	}
	// An owner that is not an execution's ARN runs nothing to describe.
	if running, err := (&Handler{}).ownerRuns(context.Background(), "provision-abc123-1"); running || err != nil {
		t.Fatalf("a bare name as owner: %t %v", running, err)
	}
}

// A step payload that is not the workflow's is a defect, named InvalidInput (not retried).
func TestMalformedStepInputIsInvalidInput(t *testing.T) {
	h := &Handler{Log: discard()}
	for _, raw := range []string{`{"step":"begin"}`, `{"step":"begin","deploymentId":"abc123","execution":"x","extra":1}`, `[]`} {
		if _, err := h.Handle(context.Background(), json.RawMessage(raw)); !errors.As(err, new(*steperr.InvalidInput)) {
			t.Errorf("%s: %v, want InvalidInput", raw, err)
		}
	}
	if _, err := h.Handle(context.Background(), json.RawMessage(`{"step":"explode","deploymentId":"abc123","execution":"x"}`)); !errors.As(err, new(*steperr.InvalidInput)) {
		t.Errorf("unknown step: %v", err)
	}
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
