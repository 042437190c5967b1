package servicestate

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/statemsg"
)

func TestConditionEvaluate(t *testing.T) {
	s := Service{OrderKey: "k", Health: health.Healthy, Versions: statemsg.Versions{ClickHouse: "24.9", Operator: "0.26"}, Replicas: statemsg.Replicas{Ready: 3, Desired: 3}}
	succeeded := &CommandRecord{Status: CommandSucceeded}
	cases := []struct {
		name   string
		c      Condition
		s      Service
		cmd    *CommandRecord
		ok     bool
		failed string
	}{
		{"healthy on version", Condition{ServiceID: "a", Health: health.Healthy, ClickHouseVersion: "24.9"}, s, nil, true, ""},
		{"wrong version", Condition{ServiceID: "a", Health: health.Healthy, ClickHouseVersion: "25.1"}, s, nil, false, ""},
		{"wrong health", Condition{ServiceID: "a", Health: health.Stopped}, s, nil, false, ""},
		{"operator", Condition{ServiceID: "a", OperatorVersion: "0.26"}, s, nil, true, ""},
		{"enough replicas", Condition{ServiceID: "a", ReadyReplicas: 3}, s, nil, true, ""},
		{"too few replicas", Condition{ServiceID: "a", ReadyReplicas: 4}, s, nil, false, ""},
		{"not reported yet", Condition{ServiceID: "a", Health: health.Healthy}, Service{}, nil, false, ""},
		{"command succeeded", Condition{ServiceID: "a", CommandID: "c", Health: health.Healthy}, s, succeeded, true, ""},
		{"command unknown", Condition{ServiceID: "a", CommandID: "c"}, s, nil, false, ""},
		{"command accepted", Condition{ServiceID: "a", CommandID: "c"}, s, &CommandRecord{Status: CommandAccepted}, false, ""},
		{"command failed", Condition{ServiceID: "a", CommandID: "c"}, s, &CommandRecord{Status: CommandFailed, Detail: "image pull"}, false, "command c failed: image pull"},
	}
	for _, c := range cases {
		ok, failed := c.c.Evaluate(c.s, c.cmd)
		if ok != c.ok || failed != c.failed {
			t.Errorf("%s: got %v %q, want %v %q", c.name, ok, failed, c.ok, c.failed)
		}
	}
}

func TestConditionValidate(t *testing.T) {
	cases := []struct {
		c    Condition
		says string
	}{
		{Condition{Health: health.Healthy}, "serviceId"},
		{Condition{ServiceID: "a"}, "at least one of"},
		{Condition{ServiceID: "a", Health: "fine"}, "health: must be one of"},
		{Condition{ServiceID: "a", Health: health.Unknown}, "health: must be one of"},
		{Condition{ServiceID: "a", ReadyReplicas: -1}, "readyReplicas"},
		{Condition{ServiceID: "a", CommandID: "x y"}, "commandId"},
	}
	for _, c := range cases {
		if err := c.c.Validate(); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%+v: %v, want %q", c.c, err, c.says)
		}
	}
}

func waiterCount(t *testing.T, f *fixture, dep, svc string) string {
	t.Helper()
	item, err := f.repo.get(context.Background(), "DEP#"+dep, "SVC#"+svc)
	if err != nil {
		t.Fatal(err)
	}
	return render(item["waiters"])
}

func TestRegisterWaiterCountsOnceAndRemoves(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.apply(t, report("dep1", "svc-a", 1))
	cond := Condition{ServiceID: "svc-a", Health: health.Healthy, ClickHouseVersion: "25.1"}
	w, err := f.repo.RegisterWaiter(ctx, "dep1", cond, "token-1", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !w.ExpiresAt.Equal(t0.Add(10*time.Minute)) || w.TTL != t0.Add(10*time.Minute+ttlGrace).Unix() {
		t.Fatalf("waiter %+v", w)
	}
	again, err := f.repo.RegisterWaiter(ctx, "dep1", cond, "token-1", 10*time.Minute)
	if err != nil || again.ID != w.ID {
		t.Fatalf("re-register %+v %v", again, err)
	}
	if got := waiterCount(t, f, "dep1", "svc-a"); got != "1" {
		t.Fatalf("count %s after registering one token twice", got)
	}
	if _, err := f.repo.RegisterWaiter(ctx, "dep1", cond, "token-2", time.Hour); err != nil {
		t.Fatal(err)
	}
	ws, err := f.repo.Waiters(ctx, "dep1", "svc-a")
	if err != nil || len(ws) != 2 {
		t.Fatalf("waiters %v %v", ws, err)
	}
	// The report state kept its waiters count through a report.
	res := f.apply(t, report("dep1", "svc-a", 2))
	if res.Service.Waiters != 2 || waiterCount(t, f, "dep1", "svc-a") != "2" {
		t.Fatalf("waiters after a report: %d / %s", res.Service.Waiters, waiterCount(t, f, "dep1", "svc-a"))
	}
	if ok, err := f.repo.RemoveWaiter(ctx, w); err != nil || !ok {
		t.Fatalf("remove: %v %v", ok, err)
	}
	if ok, err := f.repo.RemoveWaiter(ctx, w); err != nil || ok {
		t.Fatalf("second remove: %v %v", ok, err)
	}
	if got := waiterCount(t, f, "dep1", "svc-a"); got != "1" {
		t.Fatalf("count %s after removing one of two", got)
	}
}

func TestRegisterWaiterRefusesBadInput(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ok := Condition{ServiceID: "svc-a", Health: health.Healthy}
	cases := []struct {
		name, dep, token string
		cond             Condition
		timeout          time.Duration
		says             string
	}{
		{"deployment", "", "t", ok, time.Minute, "deploymentId"},
		{"token", "dep1", "", ok, time.Minute, "taskToken"},
		{"timeout", "dep1", "t", ok, 0, "timeout"},
		{"too long", "dep1", "t", ok, MaxWait + time.Second, "timeout"},
		{"condition", "dep1", "t", Condition{ServiceID: "svc-a"}, time.Minute, "at least one of"},
	}
	for _, c := range cases {
		if _, err := f.repo.RegisterWaiter(ctx, c.dep, c.cond, c.token, c.timeout); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want %q", c.name, err, c.says)
		}
	}
	if keys := f.env.Keys(t, f.table); len(keys) != 0 {
		t.Fatalf("refused registrations wrote %v", keys)
	}
}

func TestResetWaiterCountOnlyFromTheSeenValue(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.repo.RegisterWaiter(ctx, "dep1", Condition{ServiceID: "svc-a", Health: health.Healthy}, "t1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := f.repo.ResetWaiterCount(ctx, "dep1", "svc-a", 5); err != nil {
		t.Fatal(err)
	}
	if got := waiterCount(t, f, "dep1", "svc-a"); got != "1" {
		t.Fatalf("a reset from a stale count changed it to %s", got)
	}
	if err := f.repo.ResetWaiterCount(ctx, "dep1", "svc-a", 1); err != nil {
		t.Fatal(err)
	}
	if got := waiterCount(t, f, "dep1", "svc-a"); got != "0" {
		t.Fatalf("count %s after reset", got)
	}
}
