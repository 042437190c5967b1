package cfnengine

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	"github.com/byocloud/byoc/shared/customerstack"
	"github.com/byocloud/byoc/shared/stackevent"
)

// The shared stack manager (what provision, and later upgrade, peering and teardown, drive
// customer stacks with) against the local CloudFormation: it creates a protected stack,
// finds nothing to do on the same spec, updates a changed one, and after a failed create
// names the first failed resource, lifts the protection to delete the stack and creates it
// again under a new id.
func TestStackManagerDrivesAStackThroughItsLife(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	m := &customerstack.Manager{CFN: f.customerCFN()}
	attempt := 0
	tokens := func(op stackevent.Operation) string { return fmt.Sprintf("byoc-mgr-%d-%s", attempt, op) }
	spec := customerstack.Spec{Name: "clickhouse-cloud-mgr", Template: readFile(t, "testdata/infra.json"),
		Parameters: map[string]string{"DeploymentId": "mgr1"}, Tags: map[string]string{"clickhouse-byoc": "true"}, Protect: true}

	r, err := m.Apply(ctx, spec, tokens)
	if err != nil || r.Action != customerstack.ActionCreate || r.RequestToken != "byoc-mgr-0-create" {
		t.Fatalf("create: %+v %v", r, err)
	}
	f.engine.Wait()
	stack, err := m.Describe(ctx, spec.Name)
	if err != nil || stack.StackStatus != cfntypes.StackStatusCreateComplete || !aws.ToBool(stack.EnableTerminationProtection) {
		t.Fatalf("created stack %+v %v, want CREATE_COMPLETE and protected", stack, err)
	}
	if out := customerstack.Outputs(stack); out["ClusterName"] != "clickhouse-cloud-mgr1" {
		t.Fatalf("outputs %v", out)
	}
	if r, err := m.Apply(ctx, spec, tokens); err != nil || r.Action != customerstack.ActionNone {
		t.Fatalf("the same spec again: %+v %v, want nothing to do", r, err)
	}
	spec.Parameters["WithBucket"] = "no"
	if r, err := m.Apply(ctx, spec, tokens); err != nil || r.Action != customerstack.ActionUpdate || r.Operation != string(stackevent.Update) {
		t.Fatalf("changed spec: %+v %v, want an update", r, err)
	}
	f.engine.Wait()
	if look, err := m.Look(ctx, r.StackID); err != nil || look.Outcome != stackevent.OutcomeSucceeded || look.Status != "UPDATE_COMPLETE" {
		t.Fatalf("after the update: %+v %v", look, err)
	}

	failing := spec
	failing.Name = "clickhouse-cloud-mgrfail"
	f.engine.InjectFailure(customer, failing.Name, "Cluster", "insufficient capacity")
	first, err := m.Apply(ctx, failing, tokens)
	if err != nil || first.Action != customerstack.ActionCreate {
		t.Fatalf("create: %+v %v", first, err)
	}
	f.engine.Wait()
	if look, _ := m.Look(ctx, first.StackID); look.Outcome != stackevent.OutcomeFailed || look.Status != "ROLLBACK_COMPLETE" {
		t.Fatalf("after the injected failure: %+v", look)
	}
	ev, err := m.FirstFailedResource(ctx, first.StackID)
	if err != nil || ev == nil || aws.ToString(ev.LogicalResourceId) != "Cluster" || aws.ToString(ev.ResourceStatusReason) != "insufficient capacity" {
		t.Fatalf("first failed resource %+v %v, want Cluster with the injected reason", ev, err)
	}
	attempt++
	if r, err := m.Apply(ctx, failing, tokens); err != nil || r.Action != customerstack.ActionDelete || r.StackID != first.StackID {
		t.Fatalf("a stack that never came up: %+v %v, want it deleted", r, err)
	}
	f.engine.Wait()
	if look, _ := m.Look(ctx, failing.Name); look.Outcome != stackevent.OutcomeDeleted {
		t.Fatalf("after the delete: %+v", look)
	}
	again, err := m.Apply(ctx, failing, tokens)
	if err != nil || again.Action != customerstack.ActionCreate || again.StackID == first.StackID || again.RequestToken != "byoc-mgr-1-create" {
		t.Fatalf("created again: %+v %v, want a new stack id", again, err)
	}
	f.engine.Wait()

	// A create whose answer was lost: the retried call finds the stack and waits for it.
	if r, err := m.Create(ctx, spec, "byoc-mgr-9-create"); err != nil || r.Action != customerstack.ActionWait {
		t.Fatalf("create of an existing stack: %+v %v, want to wait for it", r, err)
	}
	if _, err := m.CFN.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String("clickhouse-cloud-absent")}); err == nil {
		t.Fatal("describe of an absent stack succeeded")
	}
	if s, err := m.Describe(ctx, "clickhouse-cloud-absent"); err != nil || s != nil {
		t.Fatalf("describe of an absent stack: %+v %v, want nil, nil", s, err)
	}
}
