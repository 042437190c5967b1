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
	if r, err := m.Apply(ctx, spec, tokens); err != nil || r.Action != customerstack.ActionCreate || r.Status != "CREATE_COMPLETE" {
		t.Fatalf("the same step again: %+v %v, want its own create, complete", r, err)
	}
	attempt++
	if r, err := m.Apply(ctx, spec, tokens); err != nil || r.Action != customerstack.ActionNone {
		t.Fatalf("the same spec in a later attempt: %+v %v, want nothing to do", r, err)
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
	if err != nil || again.Action != customerstack.ActionCreate || again.StackID == first.StackID || again.RequestToken != "byoc-mgr-2-create" {
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

// A step that runs again after its create (its process was killed, or its answer lost)
// finds the stack its own create made and reports that create, whatever became of it: not a
// second stack for one attempt after a rollback (regression of the chaos run infra-fails,
// crash, seed 1: four stacks for three attempts), and not an update that skips recording the
// create. A stack created by another request is not taken for its own.
func TestStackManagerRecognizesItsOwnCreate(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	m := &customerstack.Manager{CFN: f.customerCFN()}
	attempt := 1
	tokens := func(op stackevent.Operation) string { return fmt.Sprintf("byoc-own-%d-%s", attempt, op) }
	spec := customerstack.Spec{Name: "clickhouse-cloud-own", Template: readFile(t, "testdata/infra.json"),
		Parameters: map[string]string{"DeploymentId": "own1"}}
	f.engine.InjectFailure(customer, spec.Name, "Cluster", "insufficient capacity")
	first, err := m.Apply(ctx, spec, tokens)
	if err != nil || first.Action != customerstack.ActionCreate {
		t.Fatalf("create: %+v %v", first, err)
	}
	if r, err := m.Apply(ctx, spec, tokens); err != nil || r.Action != customerstack.ActionCreate || r.StackID != first.StackID || r.RequestToken != first.RequestToken {
		t.Fatalf("the step again while its create runs: %+v %v, want the same create", r, err)
	}
	f.engine.Wait()
	r, err := m.Apply(ctx, spec, tokens)
	if err != nil || r.Action != customerstack.ActionCreate || r.StackID != first.StackID || r.Status != "ROLLBACK_COMPLETE" {
		t.Fatalf("the step again after its create rolled back: %+v %v, want that create, rolled back (not deleted)", r, err)
	}
	stacks, err := m.CFN.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(first.StackID)})
	if err != nil || stacks.Stacks[0].StackStatus != cfntypes.StackStatusRollbackComplete {
		t.Fatalf("the rolled-back stack was touched: %+v %v", stacks, err)
	}
	attempt++
	if r, err := m.Apply(ctx, spec, tokens); err != nil || r.Action != customerstack.ActionDelete || r.StackID != first.StackID {
		t.Fatalf("the next attempt: %+v %v, want the rolled-back stack deleted", r, err)
	}
	f.engine.Wait()

	// Someone else's stack under the name (created without byoc's token) is not ours.
	other := spec
	other.Name = "clickhouse-cloud-other"
	if _, err := m.Create(ctx, other, "someone-else"); err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	if r, err := m.Apply(ctx, other, tokens); err != nil || r.Action != customerstack.ActionNone {
		t.Fatalf("a stack another request created: %+v %v, want it treated as an existing stack", r, err)
	}
}
