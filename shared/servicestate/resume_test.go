package servicestate

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/statemsg"
)

func TestResumeWaitersSucceedsTheSatisfiedTask(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sfn := f.env.StepFunctions()
	f.apply(t, report("dep1", "svc-a", 1))
	exec, token := f.env.Activity(t)
	_, otherToken := f.env.Activity(t)
	if _, err := f.repo.RegisterWaiter(ctx, "dep1", Condition{ServiceID: "svc-a", Health: health.Healthy, ClickHouseVersion: "25.1"}, token, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.RegisterWaiter(ctx, "dep1", Condition{ServiceID: "svc-a", Health: health.Stopped}, otherToken, time.Hour); err != nil {
		t.Fatal(err)
	}
	// Not yet on 25.1: nothing resumes.
	res := f.apply(t, report("dep1", "svc-a", 2))
	if n, err := f.repo.ResumeWaiters(ctx, sfn, res.Service); err != nil || n != 0 {
		t.Fatalf("resumed %d %v", n, err)
	}
	upgraded := report("dep1", "svc-a", 3)
	upgraded.Versions.ClickHouse = "25.1"
	res = f.apply(t, upgraded)
	if n, err := f.repo.ResumeWaiters(ctx, sfn, res.Service); err != nil || n != 1 {
		t.Fatalf("resumed %d %v", n, err)
	}
	out := f.env.WaitExecution(t, exec)
	if out.Status != "SUCCEEDED" {
		t.Fatalf("execution %s", out.Status)
	}
	var got WaitOutput
	if err := json.Unmarshal([]byte(aws.ToString(out.Output)), &got); err != nil || got.Versions.ClickHouse != "25.1" || got.Health != health.Healthy {
		t.Fatalf("output %s %v", aws.ToString(out.Output), err)
	}
	left, _ := f.repo.Waiters(ctx, "dep1", "svc-a")
	if len(left) != 1 || left[0].Condition.Health != health.Stopped || waiterCount(t, f, "dep1", "svc-a") != "1" {
		t.Fatalf("waiters left %v (count %s)", left, waiterCount(t, f, "dep1", "svc-a"))
	}
}

func TestResumeWaitersFailsTheTaskWhenItsCommandFailed(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	exec, token := f.env.Activity(t)
	if _, _, err := f.repo.CreateCommand(ctx, command("cmd-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.RegisterWaiter(ctx, "dep1", Condition{ServiceID: "svc-a", CommandID: "cmd-1", Health: health.Healthy}, token, time.Hour); err != nil {
		t.Fatal(err)
	}
	m := report("dep1", "svc-a", 1)
	m.Commands = []statemsg.CommandAck{{ID: "cmd-1", Status: statemsg.AckFailed, Detail: "image pull failed"}}
	res := f.apply(t, m)
	if _, err := f.repo.ApplyAcks(ctx, m); err != nil {
		t.Fatal(err)
	}
	if n, err := f.repo.ResumeWaiters(ctx, f.env.StepFunctions(), res.Service); err != nil || n != 1 {
		t.Fatalf("resumed %d %v", n, err)
	}
	out := f.env.WaitExecution(t, exec)
	if out.Status != "FAILED" {
		t.Fatalf("execution %s", out.Status)
	}
	if ws, _ := f.repo.Waiters(ctx, "dep1", "svc-a"); len(ws) != 0 {
		t.Fatalf("waiters left %v", ws)
	}
}

func TestResumeWaitersDropsDeadAndExpiredTasks(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.apply(t, report("dep1", "svc-a", 1))
	if _, err := f.repo.RegisterWaiter(ctx, "dep1", Condition{ServiceID: "svc-a", Health: health.Healthy}, "token-of-a-task-that-is-gone", time.Hour); err != nil {
		t.Fatal(err)
	}
	_, token := f.env.Activity(t)
	if _, err := f.repo.RegisterWaiter(ctx, "dep1", Condition{ServiceID: "svc-a", Health: health.Stopped}, token, time.Minute); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(2 * time.Minute) // the second task has timed out
	res := f.apply(t, report("dep1", "svc-a", 2))
	n, err := f.repo.ResumeWaiters(ctx, f.env.StepFunctions(), res.Service)
	if err != nil || n != 1 {
		t.Fatalf("resumed %d %v: the gone task counts as resumed, the expired one not", n, err)
	}
	if ws, _ := f.repo.Waiters(ctx, "dep1", "svc-a"); len(ws) != 0 {
		t.Fatalf("waiters left %v", ws)
	}
	if got := waiterCount(t, f, "dep1", "svc-a"); got != "0" {
		t.Fatalf("count %s", got)
	}
}

func TestResumeWaitersResetsACountWithoutWaiters(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	w, err := f.repo.RegisterWaiter(ctx, "dep1", Condition{ServiceID: "svc-a", Health: health.Healthy}, "t", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// TTL deletes the waiter without uncounting it.
	if _, err := f.db.DeleteItem(ctx, deleteInput(f.table, w)); err != nil {
		t.Fatal(err)
	}
	res := f.apply(t, report("dep1", "svc-a", 1))
	if res.Service.Waiters != 1 {
		t.Fatalf("waiters %d", res.Service.Waiters)
	}
	if _, err := f.repo.ResumeWaiters(ctx, f.env.StepFunctions(), res.Service); err != nil {
		t.Fatal(err)
	}
	if got := waiterCount(t, f, "dep1", "svc-a"); got != "0" {
		t.Fatalf("count %s", got)
	}
}
