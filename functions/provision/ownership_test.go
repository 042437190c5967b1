package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/stackevent"
	"github.com/byocloud/byoc/shared/steperr"
	"github.com/byocloud/byoc/shared/store"
)

// The documented retry, provision-<id>-2, started while -1 still waits on its stack.
const retryExecution = "arn:aws:states:us-east-1:999999999999:execution:provision:provision-k3q9x2m7p4w8z-2"

// -2 is refused without touching the deployment, and its failure step records only that it
// stopped: -1 still owns the deployment and finishes it ready.
func TestASecondExecutionCannotFailTheOwnersDeployment(t *testing.T) {
	f := newFixture(t)
	must[PrepareResult](t, f, Input{Step: StepPrepare})
	apply := must[ApplyResult](t, f, Input{Step: StepApply})
	before := f.deployment(t)

	_, err := step[PrepareResult](t, f, Input{Step: StepPrepare, Execution: retryExecution})
	var notOwner *NotOwner
	if !errors.As(err, &notOwner) || errorType(err) != "NotOwner" || notOwner.Owner != execution {
		t.Fatalf("prepare of -2: err = %v (%s), want NotOwner naming -1", err, errorType(err))
	}
	fail := must[FailResult](t, f, Input{Step: StepFail, Execution: retryExecution, Error: &steperr.Caught{Error: "NotOwner", Cause: err.Error()}})
	if fail.Retry {
		t.Fatal("a refused execution may not retry")
	}
	if d := f.deployment(t); d.Status != lifecycle.Provisioning || d.Execution != execution || d.Version != before.Version || d.Failure != nil {
		t.Fatalf("deployment %s v%d owned by %s (failure %+v): -2 changed it", d.Status, d.Version, d.Execution, d.Failure)
	}
	for _, s := range []string{StepApply, StepPoll, StepRecord} {
		if _, err := step[ApplyResult](t, f, Input{Step: s, Execution: retryExecution, StackID: apply.StackID, Operation: apply.Operation}); errorType(err) != "NotOwner" {
			t.Errorf("%s of -2: err = %v, want NotOwner", s, err)
		}
	}
	if _, err := step[AwaitResult](t, f, Input{Step: StepAwait, Execution: retryExecution, TaskToken: "token-of-2", StackID: apply.StackID, Operation: apply.Operation}); errorType(err) != "NotOwner" {
		t.Errorf("await of -2: err = %v, want NotOwner", err)
	}
	if _, err := f.h.Store.Waiter(ctx, account, region, stackName); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("-2 registered a waiter: %v", err)
	}

	f.cfn.settle(stackName, "CREATE_COMPLETE")
	if r := must[RecordResult](t, f, Input{Step: StepRecord, StackID: apply.StackID}); r.Status != string(lifecycle.Ready) {
		t.Fatalf("-1's record = %+v", r)
	}
	if got := f.actions(t); !slices.Contains(got, "provision.superseded") || !slices.Contains(got, "provision.ready") || slices.Contains(got, "provision.failed") {
		t.Fatalf("audit %v: want -2's stop recorded, no failure, -1 ready", got)
	}
}

// An operator's takeover moves ownership with an audit entry naming both executions; the
// previous owner then acts on nothing, and its failure step does not fail the deployment.
func TestTakeoverMovesOwnershipAndTheOldOwnerStops(t *testing.T) {
	f := newFixture(t)
	must[PrepareResult](t, f, Input{Step: StepPrepare})
	must[ApplyResult](t, f, Input{Step: StepApply})
	attempts := f.deployment(t).ProvisionAttempts

	p := must[PrepareResult](t, f, Input{Step: StepPrepare, Execution: retryExecution, Takeover: true})
	d := f.deployment(t)
	if d.Execution != retryExecution || d.Status != lifecycle.Provisioning || d.RunAttempts != 1 || d.ProvisionAttempts != attempts+1 || p.Attempt != 1 {
		t.Fatalf("after takeover: %s owned by %s, run %d, attempts %d", d.Status, d.Execution, d.RunAttempts, d.ProvisionAttempts)
	}
	trail, _ := f.h.Store.AuditTrail(ctx, deploymentID)
	last := trail[len(trail)-1]
	if last.Action != "provision.takeover" || !strings.Contains(last.Detail, execution) || !strings.Contains(last.Detail, retryExecution) {
		t.Fatalf("audit entry %+v: want provision.takeover naming both executions", last)
	}
	// A retried takeover is the same plan, not a second takeover.
	must[PrepareResult](t, f, Input{Step: StepPrepare, Execution: retryExecution, Takeover: true})
	if n := f.deployment(t).Version; n != d.Version {
		t.Fatalf("a retried takeover wrote again (v%d -> v%d)", d.Version, n)
	}

	if _, err := step[ApplyResult](t, f, Input{Step: StepApply}); errorType(err) != "NotOwner" {
		t.Fatalf("apply of the old owner: err = %v, want NotOwner", err)
	}
	must[FailResult](t, f, Input{Step: StepFail, Error: &steperr.Caught{Error: "NotOwner", Cause: "superseded"}})
	if d := f.deployment(t); d.Status != lifecycle.Provisioning || d.Execution != retryExecution {
		t.Fatalf("the old owner's failure changed the deployment: %s owned by %s", d.Status, d.Execution)
	}
	// The new owner finds the stack the old one started and waits for it.
	if a := must[ApplyResult](t, f, Input{Step: StepApply, Execution: retryExecution}); a.Action != ActionWait {
		t.Fatalf("new owner's apply = %+v, want to wait for the running create", a)
	}
}

// An execution still waiting on its stack past Deadline fails with DeadlineExceeded, and the
// failure step records it: the deployment ends failed with the reason, not stuck
// provisioning when Step Functions' own timeout would have stopped the execution.
func TestAnAttemptPastItsDeadlineEndsFailedWithTheReason(t *testing.T) {
	f := newFixture(t)
	must[PrepareResult](t, f, Input{Step: StepPrepare})
	apply := must[ApplyResult](t, f, Input{Step: StepApply})
	poll := Input{Step: StepPoll, StackID: apply.StackID, Operation: apply.Operation}

	poll.StartedAt = time.Now().Add(-Deadline + time.Hour)
	if r := must[stackevent.Result](t, f, poll); r.Outcome != stackevent.OutcomeWaiting {
		t.Fatalf("poll within the deadline = %+v", r)
	}
	poll.StartedAt = time.Now().Add(-Deadline - time.Minute)
	_, err := step[stackevent.Result](t, f, poll)
	if errorType(err) != "DeadlineExceeded" || !strings.Contains(err.Error(), "CREATE_IN_PROGRESS") {
		t.Fatalf("poll past the deadline: err = %v (%s)", err, errorType(err))
	}
	// Nor does a new stack operation start past it (a retry after a rollback would).
	if _, err := step[ApplyResult](t, f, Input{Step: StepApply, StartedAt: poll.StartedAt}); errorType(err) != "DeadlineExceeded" {
		t.Fatalf("apply past the deadline: err = %v, want DeadlineExceeded", err)
	}
	fail := must[FailResult](t, f, Input{Step: StepFail, Error: &steperr.Caught{Error: "DeadlineExceeded", Cause: `{"errorMessage":"` + err.Error() + `","errorType":"DeadlineExceeded"}`}})
	d := f.deployment(t)
	if fail.Retry || d.Status != lifecycle.Failed || d.Failure == nil || d.Failure.Status != "DeadlineExceeded" || !strings.Contains(d.Failure.Reason, "did not finish within 24h") {
		t.Fatalf("deployment %s, failure %+v, retry %v: want failed with the deadline's reason", d.Status, d.Failure, fail.Retry)
	}
}
