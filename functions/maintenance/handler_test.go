package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"

	"github.com/byocloud/byoc/shared/cloud/cloudtest"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/maintenance"
	"github.com/byocloud/byoc/shared/release"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/statemsg"
	"github.com/byocloud/byoc/shared/store"
	"github.com/byocloud/byoc/shared/window"
)

var ctx = context.Background()

type fixture struct {
	env     *cloudtest.Env
	h       *Handler
	id      string
	machine string
}

// newFixture: a ready deployment on kumo's table with the seed's window (Tuesday 01:00
// Pacific, 4 h), its schedule armed, kumo's Scheduler and EventBridge, and a trivial state
// machine standing in for the upgrade workflow (what is counted is the executions started).
func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := cloudtest.Start(t)
	table := env.CreateTable(t, store.TableDefinition(""), store.TTLAttribute)
	db := env.DynamoDB()
	group := cloudtest.UniqueName("maint")
	if _, err := scheduler.NewFromConfig(env.Config).CreateScheduleGroup(ctx, &scheduler.CreateScheduleGroupInput{Name: aws.String(group)}); err != nil {
		t.Fatal(err)
	}
	bus := cloudtest.UniqueName("vendor")
	if _, err := env.EventBridge().CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(bus)}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	f := &fixture{env: env, id: cloudtest.UniqueDeploymentID(),
		machine: env.StateMachine(t, `{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}`)}
	f.h = &Handler{Maintenance: &maintenance.Service{
		Store: store.New(db, table), Services: servicestate.New(db, table),
		Schedules: maintenance.Schedules{Client: scheduler.NewFromConfig(env.Config), Group: group,
			TargetArn: "arn:aws:lambda:us-east-1:000000000000:function:maintenance", RoleArn: "arn:aws:iam::000000000000:role/scheduler"},
		Notices:   maintenance.Publisher{Bus: env.EventBridge(), BusName: bus},
		Workflows: env.StepFunctions(), UpgradeMachineArn: f.machine, Log: log,
	}, Log: log}
	// A window opening this very minute (or the next), so its firing is due now.
	opens := time.Now().UTC().Add(30 * time.Second)
	m := store.Maintenance{Window: window.Window{Day: strings.ToLower(opens.Weekday().String()), Start: opens.Format("15:04"), TimeZone: "UTC", Hours: 4},
		Channel: release.ChannelRegular}
	d, err := f.h.Maintenance.Store.Create(ctx, store.Deployment{ID: f.id, Status: lifecycle.Invited, ExternalID: "0123456789abcdef0123456789abcdef01234567",
		StackName: "clickhouse-cloud-" + f.id + "-infra", Maintenance: &m,
		Settings: settings.Settings{CustomerID: "acme", AccountID: "111122223333", Region: "us-west-2", VPCCIDR: "10.0.0.0/16",
			ZoneIDs: []string{"usw2-az1", "usw2-az2", "usw2-az3"}, ResourcePrefix: "clickhouse-cloud"},
		StackVersions: map[string]string{"KubernetesVersion": "1.33", "NodeKubernetesVersion": "1.33"},
	}, store.Audit{Actor: "test", Action: "invite"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []lifecycle.Status{lifecycle.Provisioning, lifecycle.Ready} {
		next := d
		next.Status = s
		if d, err = f.h.Maintenance.Store.Update(ctx, d, next, store.Audit{Actor: "test", Action: "provision"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.h.Maintenance.Rearm(ctx, d, m, time.Now().Add(-5*time.Minute), store.Audit{Actor: "test", Action: "maintenance.armed"}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) deployment(t *testing.T) store.Deployment {
	t.Helper()
	d, err := f.h.Maintenance.Store.Get(ctx, f.id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (f *fixture) invoke(t *testing.T, payload any) (any, error) {
	t.Helper()
	body, _ := json.Marshal(payload)
	return f.h.Handle(ctx, body)
}

func (f *fixture) actions(t *testing.T) []string {
	t.Helper()
	trail, err := f.h.Maintenance.Store.AuditTrail(ctx, f.id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range trail {
		out = append(out, a.Action)
	}
	return out
}

// publish puts a ClickHouse release (rolled out to the deployment's wave) in the catalogue.
func (f *fixture) publish(t *testing.T, r release.Release) {
	t.Helper()
	if _, err := f.h.Maintenance.Publish(ctx, r, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
}

// servicestateMessage is a healthy report of service s1 on ClickHouse v.
func servicestateMessage(id, v string) statemsg.Message {
	return statemsg.Message{SchemaVersion: statemsg.Version1, DeploymentID: id, ServiceID: "s1", Hostname: "s1." + id + ".byoc.local",
		ObservedAt: time.Now().UTC(), ExporterEpoch: time.Now().UnixMilli(), Sequence: 1, Status: statemsg.StatusHealthy,
		Versions: statemsg.Versions{ClickHouse: v, Operator: "0.26.0", Kubernetes: "1.33"}, Replicas: statemsg.Replicas{Ready: 3, Desired: 3}}
}

func TestAFiringStartsTheUpgradeOnceAndArmsTheNext(t *testing.T) {
	f := newFixture(t)
	f.publish(t, release.Release{Component: release.Kubernetes, Version: "1.34"})
	d := f.deployment(t)
	armed := *d.Maintenance.Armed
	w := d.Maintenance.Window
	occ, _ := w.Next(time.Now(), 2)
	if armed.Purpose != maintenance.PurposeOpen || armed.Key != occ[0].Key || !armed.At.Equal(occ[0].Opens.UTC()) {
		t.Fatalf("armed %+v, want the opening of %+v", armed, occ[0])
	}
	fire := map[string]any{"deploymentId": f.id, "purpose": armed.Purpose, "key": armed.Key, "scheduledTime": armed.At.Format(time.RFC3339)}
	for range 3 { // a duplicate delivery and a Scheduler retry
		if _, err := f.invoke(t, fire); err != nil {
			t.Fatal(err)
		}
	}
	execs := f.env.Executions(t, f.machine)
	if len(execs) != 1 || aws.ToString(execs[0].Name) != maintenance.ExecutionName(f.id, "open", armed.At) {
		t.Fatalf("executions %v, want one named after the deployment and the occurrence", execs)
	}
	d = f.deployment(t)
	if d.Maintenance.Last == nil || d.Maintenance.Last.Outcome != "started" {
		t.Fatalf("last run %+v", d.Maintenance.Last)
	}
	if a := d.Maintenance.Armed; a.Purpose != maintenance.PurposeNotice || a.Key != occ[1].Key {
		t.Fatalf("re-armed for %+v, want next week's notice (%s)", a, occ[1].Key)
	}
	if got := f.actions(t); strings.Count(strings.Join(got, ","), "maintenance.open") != 1 {
		t.Fatalf("audit %v: the firing recorded more than once", got)
	}
}

// An invocation that is not the armed firing (a forged one, a stale retry, or the armed one
// sent before its time by someone who read it from show) starts nothing and is recorded
// once; the schedule stays armed as it was.
func TestAFiringThatIsNotTheArmedOneIsRefused(t *testing.T) {
	f := newFixture(t)
	f.publish(t, release.Release{Component: release.Kubernetes, Version: "1.34"})
	before := f.deployment(t)
	a := before.Maintenance.Armed
	next, _ := before.Maintenance.Window.Current(a.At.Add(24 * time.Hour))
	forged := []map[string]any{
		{"deploymentId": f.id, "purpose": "open", "key": "2026-01-01", "scheduledTime": a.At.Format(time.RFC3339)},
		// next week's opening, early: what show would let an invoker guess
		{"deploymentId": f.id, "purpose": "open", "key": next.Key, "scheduledTime": next.Opens.UTC().Format(time.RFC3339)},
	}
	for _, p := range forged {
		for range 2 {
			if _, err := f.invoke(t, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := len(f.env.Executions(t, f.machine)); n != 0 {
		t.Fatalf("%d upgrades started by a forged firing", n)
	}
	after := f.deployment(t)
	if *after.Maintenance.Armed != *before.Maintenance.Armed || after.Version != before.Version {
		t.Fatalf("the deployment changed: %+v -> %+v", before.Maintenance, after.Maintenance)
	}
	if got := f.actions(t); strings.Count(strings.Join(got, ","), "maintenance.refused") != len(forged) {
		t.Fatalf("audit %v, want each refusal once", got)
	}
}

func TestAWindowWithNothingDueStartsNothing(t *testing.T) {
	f := newFixture(t)
	a := *f.deployment(t).Maintenance.Armed
	if _, err := f.invoke(t, map[string]any{"deploymentId": f.id, "purpose": a.Purpose, "key": a.Key, "scheduledTime": a.At.Format(time.RFC3339)}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.env.Executions(t, f.machine)); n != 0 {
		t.Fatalf("%d executions with nothing due", n)
	}
	if last := f.deployment(t).Maintenance.Last; last == nil || last.Outcome != "nothing-due" {
		t.Fatalf("last %+v, want nothing-due recorded", last)
	}
}

func TestDeferAtMostTwiceInARow(t *testing.T) {
	f := newFixture(t)
	// A window days away from now, so no occurrence opens while the test runs.
	day := strings.ToLower(time.Now().UTC().AddDate(0, 0, 3).Weekday().String())
	if _, err := f.invoke(t, map[string]any{"action": "set", "deploymentId": f.id, "window": map[string]any{"day": day, "start": "12:00", "timeZone": "UTC"}}); err != nil {
		t.Fatal(err)
	}
	occ, _ := f.deployment(t).Maintenance.Window.Next(time.Now(), 3)
	for i := range 2 {
		out, err := f.invoke(t, map[string]any{"action": "defer", "deploymentId": f.id})
		if err != nil {
			t.Fatalf("deferral %d: %v", i+1, err)
		}
		v := out.(View)
		shown := slices.IndexFunc(v.Upcoming, func(p maintenance.Planned) bool { return p.Key == occ[i].Key })
		if v.Maintenance.Deferred[i] != occ[i].Key || shown < 0 || !v.Upcoming[shown].Deferred {
			t.Fatalf("deferral %d: %+v, upcoming %+v", i+1, v.Maintenance.Deferred, v.Upcoming)
		}
	}
	before := f.deployment(t)
	// The second deferral asked again, by its key: nothing changes.
	if _, err := f.invoke(t, map[string]any{"action": "defer", "deploymentId": f.id, "key": occ[1].Key}); err != nil {
		t.Fatalf("the same deferral again: %v", err)
	}
	_, err := f.invoke(t, map[string]any{"action": "defer", "deploymentId": f.id})
	var refused *Refused
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "at most 2") {
		t.Fatalf("a third deferral: %v", err)
	}
	if after := f.deployment(t); after.Version != before.Version {
		t.Fatal("a refused deferral changed the deployment")
	}
	if a := before.Maintenance.Armed; a.Key != occ[2].Key {
		t.Fatalf("armed %+v, want the first window not deferred (%s)", a, occ[2].Key)
	}
}

func TestASecurityFixCannotBeDeferredPastItsDeadline(t *testing.T) {
	f := newFixture(t)
	// The next window opens in two hours, before the fix's off-cycle start (12 hours): a
	// deferral would move the fix to the window after, a week later.
	soon := time.Now().UTC().Add(2 * time.Hour)
	if _, err := f.invoke(t, map[string]any{"action": "set", "deploymentId": f.id, "window": map[string]any{
		"day": strings.ToLower(soon.Weekday().String()), "start": soon.Format("15:04"), "timeZone": "UTC"}}); err != nil {
		t.Fatal(err)
	}
	// Services on ClickHouse 25.3.2.39, so a newer ClickHouse is due.
	f.reportVersion(t, "25.3.2.39")
	// Before the window after the next one closes, whatever today is.
	deadline := time.Now().Add(6 * 24 * time.Hour)
	f.publish(t, release.Release{Component: release.ClickHouse, Version: "25.3.2.40", Kind: release.Security, Severity: "high",
		CVEs: []string{"CVE-2026-1111"}, Deadline: &deadline, Notice: "12h"})
	d := f.deployment(t)
	if d.Maintenance.Security == nil {
		t.Fatalf("no off-cycle start scheduled: %+v", d.Maintenance)
	}
	_, err := f.invoke(t, map[string]any{"action": "defer", "deploymentId": f.id})
	var refused *Refused
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "must be applied by") {
		t.Fatalf("deferring past the deadline: %v", err)
	}
	if after := f.deployment(t); after.Version != d.Version {
		t.Fatal("a refused deferral changed the deployment")
	}
}

// reportVersion stores one service of the deployment on ClickHouse v, as stateingest would.
func (f *fixture) reportVersion(t *testing.T, v string) {
	t.Helper()
	msg := servicestateMessage(f.id, v)
	if _, err := f.h.Maintenance.Services.Apply(ctx, msg, "m-"+v); err != nil {
		t.Fatal(err)
	}
}

func TestBadRequestsAreRefusedAndChangeNothing(t *testing.T) {
	f := newFixture(t)
	before := f.deployment(t)
	cases := []struct {
		payload any
		field   string
	}{
		{map[string]any{"action": "set", "deploymentId": f.id, "window": map[string]any{"day": "someday", "start": "25:00", "timeZone": "Mars/Base", "durationHours": 9}}, "window.day"},
		{map[string]any{"action": "set", "deploymentId": f.id, "channel": "nightly"}, "channel"},
		{map[string]any{"action": "set", "deploymentId": f.id}, "window"},
		{map[string]any{"action": "reboot", "deploymentId": f.id}, "action"},
		{map[string]any{"action": "show"}, "deploymentId"},
		{map[string]any{"action": "show", "deploymentId": f.id, "windows": 1}, "(payload)"},
		{map[string]any{"action": "defer", "deploymentId": f.id, "purpose": "open"}, "purpose"},
	}
	for _, c := range cases {
		_, err := f.invoke(t, c.payload)
		var ve *settings.ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%v: %v, want a validation error", c.payload, err)
			continue
		}
		if _, ok := ve.Field(c.field); !ok {
			t.Errorf("%v: %v does not name %s", c.payload, err, c.field)
		}
	}
	_, err := f.invoke(t, map[string]any{"action": "show", "deploymentId": "nosuchdeploym"})
	var nf *NotFound
	if !errors.As(err, &nf) {
		t.Errorf("unknown deployment: %v", err)
	}
	if after := f.deployment(t); after.Version != before.Version || !slices.Equal(f.actions(t), []string{"invite", "provision", "provision", "maintenance.armed"}) {
		t.Fatalf("refused requests changed the deployment: version %d -> %d, audit %v", before.Version, after.Version, f.actions(t))
	}
}

func TestSetMovesTheWindowAndShowListsFourOccurrences(t *testing.T) {
	f := newFixture(t)
	out, err := f.invoke(t, map[string]any{"action": "set", "deploymentId": f.id, "window": map[string]any{"day": "Sunday", "start": "02:30", "timeZone": "America/Los_Angeles"}})
	if err != nil {
		t.Fatal(err)
	}
	v := out.(View)
	if v.Maintenance.Window.Hours != window.DefaultHours || len(v.Upcoming) != UpcomingCount {
		t.Fatalf("view %+v", v)
	}
	if _, err := f.invoke(t, map[string]any{"action": "set", "deploymentId": f.id, "window": map[string]any{"day": "sunday", "start": "02:30", "timeZone": "America/Los_Angeles", "durationHours": 4}}); err != nil {
		t.Fatal(err)
	}
	if got := f.actions(t); strings.Count(strings.Join(got, ","), "maintenance.set") != 1 {
		t.Fatalf("audit %v: the same window again wrote again", got)
	}
}
