package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/byocloud/byoc/shared/cloud/cloudtest"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/maintenance"
	"github.com/byocloud/byoc/shared/release"
	"github.com/byocloud/byoc/shared/runs"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/steperr"
	"github.com/byocloud/byoc/shared/store"
	"github.com/byocloud/byoc/shared/window"
)

var ctx = context.Background()

const execution = "arn:aws:states:us-east-1:000000000000:execution:UpgradeWorkflow:upgrade-x-open-20261208T090000Z"

// fixture: a deployment being upgraded by execution, with a plan of a control-plane step and
// a node step for a published Kubernetes release, on kumo's table and bus. The steps that
// open the customer account (plan, apply, await, poll, done) run end to end in the local
// cloud's upgrade scenarios; these tests cover the window and the outcomes.
type fixture struct {
	h   *Handler
	id  string
	rel store.ReleaseRecord
}

func newFixture(t *testing.T, closes time.Time) *fixture {
	t.Helper()
	env := cloudtest.Start(t)
	table := env.CreateTable(t, store.TableDefinition(""), store.TTLAttribute)
	bus := cloudtest.UniqueName("vendor")
	if _, err := env.EventBridge().CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(bus)}); err != nil {
		t.Fatal(err)
	}
	db := env.DynamoDB()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	f := &fixture{id: cloudtest.UniqueDeploymentID(), h: &Handler{Maintenance: &maintenance.Service{Store: store.New(db, table), Services: servicestate.New(db, table),
		Notices: maintenance.Publisher{Bus: env.EventBridge(), BusName: bus}, Log: log}, Log: log}}
	st := f.h.Maintenance.Store
	m := store.Maintenance{Window: window.Default("us-west-2"), Channel: release.ChannelRegular}
	d, err := st.Create(ctx, store.Deployment{ID: f.id, Status: lifecycle.Invited, ExternalID: "0123456789abcdef0123456789abcdef01234567", Maintenance: &m,
		Settings:      settings.Settings{CustomerID: "acme", AccountID: "111122223333", Region: "us-west-2"},
		StackVersions: map[string]string{"KubernetesVersion": "1.34", "NodeKubernetesVersion": "1.33"}}, store.Audit{Actor: "test", Action: "invite"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []lifecycle.Status{lifecycle.Provisioning, lifecycle.Ready, lifecycle.Updating} {
		next := d
		next.Status, next.Execution = s, execution
		if d, err = st.Update(ctx, d, next, store.Audit{Actor: "test", Action: string(s)}); err != nil {
			t.Fatal(err)
		}
	}
	if f.rel, err = f.h.Maintenance.Publish(ctx, release.Release{Component: release.Kubernetes, Version: "1.34"}, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	steps := release.Plan(release.Versions{Kubernetes: "1.33", NodesKubernetes: "1.33"}, []release.Release{f.rel.Release})
	if _, err := st.PutUpgrade(ctx, f.id, store.Upgrade{Execution: runs.NameOf(execution), Purpose: "open", Key: "2026-12-08", Closes: &closes,
		Steps: steps, Releases: []string{f.rel.Release.ID}, StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// The control plane is done: the stack's KubernetesVersion is 1.34, the nodes are not.
	if _, err := st.StepDone(ctx, f.id, runs.NameOf(execution), 0); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) step(t *testing.T, in Input) any {
	t.Helper()
	in.DeploymentID, in.Execution = f.id, execution
	out, err := f.h.Handle(ctx, in)
	if err != nil {
		t.Fatalf("step %s: %v", in.Step, err)
	}
	return out
}

// The window closes before the node groups' estimate: the step waits for the next window,
// the deployment is ready again (nothing half-done: the control plane is on 1.34, the nodes
// still on 1.33, which EKS allows), and the release is not settled for its rollout.
func TestTheWindowClosingMidPlanLeavesTheRestForTheNext(t *testing.T) {
	f := newFixture(t, time.Now().Add(30*time.Minute)) // the node step needs 50 minutes
	next := f.step(t, Input{Step: StepNext}).(NextResult)
	if next.Action != "wait" || next.Index != 1 || !strings.Contains(next.Reason, "waits for the next window") {
		t.Fatalf("next = %+v, want the node step to wait", next)
	}
	done := f.step(t, Input{Step: StepFinish, Outcome: "wait"}).(FinishResult)
	d, _ := f.h.Maintenance.Store.Get(ctx, f.id)
	if done.Status != "ready" || d.Status != lifecycle.Ready || d.Maintenance.Last.Outcome != "waiting" || len(done.Settled) != 0 {
		t.Fatalf("finish = %+v, deployment %s, last %+v", done, d.Status, d.Maintenance.Last)
	}
	if _, err := f.h.Maintenance.Store.OutcomeOf(ctx, f.rel.Release.ID, f.id); err == nil {
		t.Fatal("a release half applied was settled for its rollout")
	}
	// A retried finish changes nothing.
	again := f.step(t, Input{Step: StepFinish, Outcome: "wait"}).(FinishResult)
	if d2, _ := f.h.Maintenance.Store.Get(ctx, f.id); again.Status != "ready" || d2.Version != d.Version {
		t.Fatalf("a retried finish wrote again: %+v", again)
	}
}

func TestAStepThatFitsRuns(t *testing.T) {
	f := newFixture(t, time.Now().Add(2*time.Hour))
	if next := f.step(t, Input{Step: StepNext}).(NextResult); next.Action != "stack" || next.Index != 1 || next.Params == nil || next.Condition.ServiceID != "" {
		t.Fatalf("next = %+v, want the node stack step", next)
	}
	if got := requestToken(execution, 1); len(got) > 64 || !strings.HasPrefix(got, "byoc-upgrade-") || got == requestToken(execution, 0) {
		t.Fatalf("request token %q", got)
	}
}

// A failed step: the deployment stays ready (the stack rolled back), the step and reason are
// recorded, the release's outcome is failed once and the release halts.
func TestAFailedStepHaltsTheReleaseAndLeavesTheDeploymentReady(t *testing.T) {
	f := newFixture(t, time.Now().Add(2*time.Hour))
	for range 2 { // a retried fail records once
		out := f.step(t, Input{Step: StepFail, Error: &steperr.Caught{Error: "StackFailed", Cause: "SystemNodeGroup1: Nodegroup version update failed"}}).(FailResult)
		if out.Status != "ready" {
			t.Fatalf("fail = %+v", out)
		}
	}
	d, _ := f.h.Maintenance.Store.Get(ctx, f.id)
	if d.Status != lifecycle.Ready || d.Maintenance.Last.Outcome != "failed" || !strings.Contains(d.Maintenance.Last.Step, "node groups to Kubernetes 1.34") ||
		!strings.Contains(d.Maintenance.Last.Reason, "Nodegroup version update failed") {
		t.Fatalf("deployment %s, last %+v", d.Status, d.Maintenance.Last)
	}
	r, _ := f.h.Maintenance.Store.Release(ctx, f.rel.Release.ID)
	r, _ = f.h.Maintenance.Store.WithCounts(ctx, r)
	wave := release.WaveOf(release.ChannelRegular, false)
	if !r.Halted || r.Progress[wave].Failed != 1 {
		t.Fatalf("release halted %v, wave %+v", r.Halted, r.Progress[wave])
	}
	trail, _ := f.h.Maintenance.Store.AuditTrail(ctx, f.id)
	n := 0
	for _, a := range trail {
		if a.Action == "upgrade.failed" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d upgrade.failed entries, want 1", n)
	}
	// A step of another execution does nothing.
	_, err := f.h.Handle(ctx, Input{Step: StepNext, DeploymentID: f.id, Execution: execution + "-other"})
	if _, ok := err.(*NotOwner); !ok {
		t.Fatalf("another execution's step: %v", err)
	}
}

// A deployment whose stack predates a parameter fails its own upgrade, reported, without
// halting the release for the fleet.
func TestAnOutdatedStackFailsWithoutHaltingTheRelease(t *testing.T) {
	f := newFixture(t, time.Now().Add(2*time.Hour))
	f.step(t, Input{Step: StepFail, Error: &steperr.Caught{Error: "TemplateOutdated", Cause: "stack x has no parameter NodeKubernetesVersion"}})
	d, _ := f.h.Maintenance.Store.Get(ctx, f.id)
	r, _ := f.h.Maintenance.Store.Release(ctx, f.rel.Release.ID)
	if d.Status != lifecycle.Ready || d.Maintenance.Last.Outcome != "failed" || r.Halted {
		t.Fatalf("deployment %s, last %+v, release halted %v", d.Status, d.Maintenance.Last, r.Halted)
	}
}
