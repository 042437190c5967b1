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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"

	"github.com/byocloud/byoc/shared/cloud/cloudtest"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/maintenance"
	"github.com/byocloud/byoc/shared/release"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/store"
	"github.com/byocloud/byoc/shared/window"
)

var ctx = context.Background()

const vendor = "000000000000"

func newHandler(t *testing.T) (*Handler, *cloudtest.Env, string) {
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
	return &Handler{Maintenance: &maintenance.Service{
		Store: store.New(db, table), Services: servicestate.New(db, table),
		Schedules: maintenance.Schedules{Client: scheduler.NewFromConfig(env.Config), Group: group,
			TargetArn: "arn:aws:lambda:us-east-1:000000000000:function:maintenance", RoleArn: "arn:aws:iam::000000000000:role/scheduler"},
		Notices: maintenance.Publisher{Bus: env.EventBridge(), BusName: bus}, Log: log,
	}, VendorAccount: vendor, Log: log}, env, table
}

func invoke(t *testing.T, h *Handler, payload any) (any, error) {
	t.Helper()
	body, _ := json.Marshal(payload)
	return h.Handle(ctx, body)
}

func TestPublishRefusalsNameTheRuleAndStoreNothing(t *testing.T) {
	h, env, table := newHandler(t)
	cases := []struct {
		release map[string]any
		field   string
	}{
		{map[string]any{"component": "etcd", "version": "3.5.0"}, "component"},
		{map[string]any{"component": "clickhouse", "version": "25.3"}, "version"},
		{map[string]any{"component": "kubernetes", "version": "1.35"}, "version"}, // skips 1.34
		{map[string]any{"component": "coredns", "version": "v1.12.0-eksbuild.1", "kubernetesVersions": []string{"1.32"}}, "kubernetesVersions"},
		{map[string]any{"component": "operator", "version": "0.27.0", "kind": "security", "severity": "high", "cves": []string{"CVE-2026-1"}}, "deadline"},
	}
	for _, c := range cases {
		_, err := invoke(t, h, map[string]any{"action": "publish", "release": c.release})
		var ve *settings.ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%v: %v, want a validation error", c.release, err)
			continue
		}
		if _, ok := ve.Field(c.field); !ok {
			t.Errorf("%v: %v does not name %s", c.release, err, c.field)
		}
	}
	for _, bad := range []any{map[string]any{"action": "publish"}, map[string]any{"action": "undo"}, map[string]any{"action": "show", "release": map[string]any{}}, "[]"} {
		if _, err := invoke(t, h, bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if keys := env.Keys(t, table); len(keys) != 0 {
		t.Fatalf("refused releases wrote %v", keys)
	}
	// A downgrade, once something is published.
	if _, err := invoke(t, h, map[string]any{"action": "publish", "release": map[string]any{"component": "clickhouse", "version": "25.3.2.39"}}); err != nil {
		t.Fatal(err)
	}
	_, err := invoke(t, h, map[string]any{"action": "publish", "release": map[string]any{"component": "clickhouse", "version": "25.3.2.38"}})
	if err == nil || !strings.Contains(err.Error(), "never downgrades") {
		t.Fatalf("downgrade: %v", err)
	}
	_, err = invoke(t, h, map[string]any{"action": "publish", "release": map[string]any{"component": "clickhouse", "version": "25.3.2.39"}})
	if err == nil {
		t.Fatal("the same release published twice")
	}
}

// ready stores a ready deployment in the given wave.
func ready(t *testing.T, h *Handler, id, channel string, canary bool) {
	t.Helper()
	m := store.Maintenance{Window: window.Default("us-west-2"), Channel: channel, Canary: canary}
	d, err := h.Maintenance.Store.Create(ctx, store.Deployment{ID: id, Status: lifecycle.Invited, ExternalID: "0123456789abcdef0123456789abcdef01234567",
		Maintenance: &m, Settings: settings.Settings{CustomerID: "acme", AccountID: "1111222233" + id[len(id)-2:], Region: "us-west-2"},
		StackVersions: map[string]string{"KubernetesVersion": "1.33", "NodeKubernetesVersion": "1.33"}}, store.Audit{Actor: "test", Action: "invite"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []lifecycle.Status{lifecycle.Provisioning, lifecycle.Ready} {
		next := d
		next.Status = s
		if d, err = h.Maintenance.Store.Update(ctx, d, next, store.Audit{Actor: "test", Action: "provision"}); err != nil {
			t.Fatal(err)
		}
	}
}

// The rollout: waves open in order, an empty wave passes at once, a wave with deployments
// bakes after they settle; a deployment upgraded within the bake time that turns unhealthy
// halts the release; a forged health event changes nothing; resume lifts the halt.
func TestRolloutHaltsOnAHealthRegressionAndResumes(t *testing.T) {
	h, _, _ := newHandler(t)
	canary := cloudtest.UniqueDeploymentID()[:11] + "01"
	ready(t, h, canary, release.ChannelFast, true)
	out, err := invoke(t, h, map[string]any{"action": "publish", "release": map[string]any{"component": "kubernetes", "version": "1.34", "bake": "1h"}})
	if err != nil {
		t.Fatal(err)
	}
	v := out.(View)
	if v.Progress[0].State != release.WaveRunning || v.Progress[0].Members != 1 || v.Progress[1].State != release.WaveWaiting {
		t.Fatalf("after publishing: %s", v.Waves)
	}
	// The canary upgrades.
	if _, err := h.Maintenance.Store.RecordOutcome(ctx, v.Release.ID, 0, store.Outcome{DeploymentID: canary, Status: store.OutcomeUpgraded, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	out, _ = invoke(t, h, map[string]any{"action": "advance", "scheduledTime": time.Now().UTC().Format(time.RFC3339)})
	if views := out.([]View); len(views) != 1 || views[0].Progress[0].State != release.WaveBaking {
		t.Fatalf("after the canary settled: %+v", views)
	}
	health := func(account string) map[string]any {
		detail, _ := json.Marshal(servicestate.AlertDetail{AlertID: "a1", Alert: healthAlert(canary)})
		return map[string]any{"version": "0", "id": "e1", "detail-type": contract.DetailTypeDeploymentHealthChanged, "source": contract.SourceState,
			"account": account, "time": time.Now().UTC().Format(time.RFC3339), "region": "us-east-1", "resources": []string{}, "detail": json.RawMessage(detail)}
	}
	// A customer account cannot reach here through the bus; if something did, it is ignored.
	if _, err := invoke(t, h, health("999988887777")); err != nil {
		t.Fatal(err)
	}
	if r, _ := h.Maintenance.Store.Release(ctx, v.Release.ID); r.Halted {
		t.Fatal("a health event of another account halted the release")
	}
	if _, err := invoke(t, h, health(vendor)); err != nil {
		t.Fatal(err)
	}
	r, _ := h.Maintenance.Store.Release(ctx, v.Release.ID)
	if !r.Halted || !strings.Contains(r.HaltReason, canary) || r.Progress[0].State != release.WaveHalted {
		t.Fatalf("after the regression: halted %v (%s), %s", r.Halted, r.HaltReason, release.Summary(r.Progress))
	}
	// An invocation claiming to be two hours later skips no bake (and a halted release does
	// not move anyway).
	out, _ = invoke(t, h, map[string]any{"action": "advance", "scheduledTime": time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)})
	if views := out.([]View); views[0].Progress[1].State != release.WaveWaiting {
		t.Fatalf("a halted release moved on: %s", views[0].Waves)
	}
	out, err = invoke(t, h, map[string]any{"action": "resume", "releaseId": v.Release.ID, "actor": "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if rv := out.(View); rv.Halted || rv.ResumedBy != "releases:ops" {
		t.Fatalf("after resume: %+v", rv)
	}
	if _, err := invoke(t, h, map[string]any{"action": "resume", "releaseId": v.Release.ID}); err == nil {
		t.Fatal("resuming a running release succeeded")
	}
	var nf *NotFound
	if _, err := invoke(t, h, map[string]any{"action": "resume", "releaseId": "nope-1"}); !errors.As(err, &nf) {
		t.Fatalf("resume of an unknown release: %v", err)
	}
}

func healthAlert(id string) health.Alert {
	return health.Alert{Transition: health.Transition{Scope: health.ScopeDeployment, DeploymentID: id, From: health.Healthy, To: health.Unhealthy, Reason: "service s1 is unhealthy"},
		Severity: health.SeverityCritical}
}
