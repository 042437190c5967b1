package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/cloud/cloudtest"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/store"
)

const agent = "arn:aws:iam::111111111111:role/clickhouse-cloud-dep-agent"

type fixture struct {
	env   *cloudtest.Env
	table string
	sqs   *sqs.Client
	repo  *servicestate.Repo
	h     *Handler
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := cloudtest.Start(t)
	table := env.CreateTable(t, store.TableDefinition("x"), servicestate.TTLAttribute)
	client := sqs.NewFromConfig(env.Config)
	repo := servicestate.New(env.DynamoDB(), table)
	return &fixture{env: env, table: table, sqs: client, repo: repo, h: &Handler{
		Sender: &channel.Sender{SQS: client, Recorder: repo},
		Log:    slog.New(slog.NewJSONHandler(io.Discard, nil)),
	}}
}

// open opens the command channel of a deployment, as provisioning does; it is closed when
// the test ends (kumo's queues outlive a test's table).
func (f *fixture) open(t *testing.T, deploymentID string) string {
	t.Helper()
	url, err := channel.Open(context.Background(), f.sqs, deploymentID, agent)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = channel.Close(context.Background(), f.sqs, deploymentID) })
	return url
}

// received drains what the agent would receive.
func (f *fixture) received(t *testing.T, url string) []channel.Command {
	t.Helper()
	var out []channel.Command
	for {
		good, bad, err := channel.Receive(context.Background(), f.sqs, url, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(bad) > 0 {
			t.Fatalf("%d messages on the channel are not commands", len(bad))
		}
		if len(good) == 0 {
			return out
		}
		for _, d := range good {
			out = append(out, d.Command)
		}
	}
}

func applyRelease(dep string) Request {
	return Request{ID: "cmd-upgrade-1", DeploymentID: dep, ServiceID: "svc-a", Kind: channel.ApplyRelease,
		Params: map[string]string{"clickhouseVersion": "25.1.3"}}
}

func TestSendsTheCommandToTheAgentAndRecordsIt(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	dep := cloudtest.UniqueDeploymentID()
	url := f.open(t, dep)
	rec, err := f.h.Handle(ctx, applyRelease(dep))
	if err != nil {
		t.Fatal(err)
	}
	if rec.ID != "cmd-upgrade-1" || rec.Status != servicestate.CommandSent || rec.Kind != channel.ApplyRelease || rec.Params["clickhouseVersion"] != "25.1.3" {
		t.Fatalf("answer %+v: want the sent apply-release record", rec)
	}
	got := f.received(t, url)
	if len(got) != 1 || got[0].ID != "cmd-upgrade-1" || got[0].ServiceID != "svc-a" || got[0].Params["clickhouseVersion"] != "25.1.3" || got[0].IssuedAt.IsZero() {
		t.Fatalf("the agent received %+v, want the one command", got)
	}
	if stored, err := f.repo.Command(ctx, dep, "cmd-upgrade-1"); err != nil || stored.Status != servicestate.CommandSent {
		t.Fatalf("stored %+v %v", stored, err)
	}
}

func TestRetriedStepSendsNothingTwice(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	dep := cloudtest.UniqueDeploymentID()
	url := f.open(t, dep)
	first, err := f.h.Handle(ctx, applyRelease(dep))
	if err != nil {
		t.Fatal(err)
	}
	// The agent acknowledged it meanwhile; the retried step must not move it back.
	if _, err := f.repo.AdvanceCommand(ctx, dep, first.ID, servicestate.CommandSucceeded, "", "svc-a"); err != nil {
		t.Fatal(err)
	}
	again, err := f.h.Handle(ctx, applyRelease(dep))
	if err != nil || again.Status != servicestate.CommandSucceeded || !again.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("retry answered %+v %v, want the stored record, succeeded", again, err)
	}
	if got := f.received(t, url); len(got) != 1 {
		t.Fatalf("the agent received %d commands, want 1", len(got))
	}
}

// Every refusal names the field and the rule, and leaves no record and no message.
func TestRefusalsNameTheRuleAndChangeNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	dep := cloudtest.UniqueDeploymentID()
	url := f.open(t, dep)
	start := Request{ID: "cmd-start-1", DeploymentID: dep, ServiceID: "svc-a", Kind: channel.Start}
	if _, err := f.h.Handle(ctx, start); err != nil {
		t.Fatal(err)
	}
	f.received(t, url)
	before := f.env.Keys(t, f.table)

	with := func(change func(*Request)) Request {
		r := Request{ID: "cmd-bad", DeploymentID: dep, ServiceID: "svc-a", Kind: channel.Scale, Params: map[string]string{"replicas": "3"}}
		change(&r)
		return r
	}
	var invalid *InvalidRequestError
	var conflict *CommandConflictError
	var noChannel *NoChannelError
	cases := []struct {
		name   string
		req    Request
		target any
		names  string
	}{
		{"no id", with(func(r *Request) { r.ID = "" }), &invalid, "id: must be"},
		{"id with a slash", with(func(r *Request) { r.ID = "exec/step" }), &invalid, "id: must be"},
		{"bad deployment id", with(func(r *Request) { r.DeploymentID = "dep 1" }), &invalid, "deploymentId: must be"},
		{"unknown kind", with(func(r *Request) { r.Kind = "reboot" }), &invalid, "kind: must be one of"},
		{"scale without replicas", with(func(r *Request) { r.Params = nil }), &invalid, "params.replicas"},
		{"scale to zero", with(func(r *Request) { r.Params = map[string]string{"replicas": "0"} }), &invalid, "params.replicas"},
		{"restore without backup", with(func(r *Request) { r.Kind, r.Params = channel.Restore, nil }), &invalid, "params.backupId"},
		{"release without version", with(func(r *Request) { r.Kind, r.Params = channel.ApplyRelease, nil }), &invalid, "clickhouseVersion or operatorVersion"},
		{"stop without service", with(func(r *Request) { r.Kind, r.ServiceID = channel.Stop, "" }), &invalid, "serviceId: required for stop"},
		{"id reused for another command", with(func(r *Request) { r.ID = start.ID }), &conflict, "cmd-start-1"},
		{"deployment without channel", with(func(r *Request) { r.DeploymentID = cloudtest.UniqueDeploymentID() }), &noChannel, "has no command channel"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.h.Handle(ctx, c.req)
			if err == nil || !errors.As(err, c.target) || !strings.Contains(err.Error(), c.names) {
				t.Fatalf("error %v (%T), want %T naming %q", err, err, c.target, c.names)
			}
		})
	}
	// Requests that are not the shape of one, as Lambda delivers them: refused by name too.
	for name, raw := range map[string]string{
		"params a list":   `{"id":"cmd-bad","deploymentId":"` + dep + `","serviceId":"svc-a","kind":"scale","params":["replicas","3"]}`,
		"params a string": `{"id":"cmd-bad","deploymentId":"` + dep + `","serviceId":"svc-a","kind":"scale","params":"replicas=3"}`,
		"param a number":  `{"id":"cmd-bad","deploymentId":"` + dep + `","serviceId":"svc-a","kind":"scale","params":{"replicas":3}}`,
		"id a number":     `{"id":7,"deploymentId":"` + dep + `","kind":"start"}`,
		"not an object":   `["start"]`,
	} {
		_, err := f.h.HandleJSON(ctx, json.RawMessage(raw))
		if !errors.As(err, &invalid) {
			t.Errorf("%s: error %v (%T), want an InvalidRequestError", name, err, err)
		}
		if strings.HasPrefix(name, "param") && !strings.Contains(err.Error(), "params") {
			t.Errorf("%s: error %v does not name params", name, err)
		}
	}
	if after := f.env.Keys(t, f.table); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("items %v after the refusals, want %v", after, before)
	}
	if got := f.received(t, url); len(got) != 0 {
		t.Errorf("refused requests reached the agent: %+v", got)
	}
	if stored, err := f.repo.Command(ctx, dep, start.ID); err != nil || stored.Kind != string(channel.Start) {
		t.Errorf("the reused id's record is %+v %v, want the start it was", stored, err)
	}
}

func TestSampleEvents(t *testing.T) {
	want := map[string]string{ // sample -> the rule its InvalidRequestError names ("" = valid)
		"apply-release.json":          "",
		"scale-without-replicas.json": "params.replicas",
		"unknown-kind.json":           "kind: must be one of",
	}
	samples := cloudtest.SampleEvents(t, "sendcommand", slices.Collect(maps.Keys(want))...)
	f := newFixture(t)
	ctx := context.Background()
	const dep = "dep7f3a" // the samples' deployment (events/dataplanes.json)
	url := f.open(t, dep)
	for name, says := range want {
		out, err := lambda.NewHandler(f.h.Handle).Invoke(ctx, samples[name])
		var invalid *InvalidRequestError
		switch {
		case says == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case says == "":
			var rec Response
			if json.Unmarshal(out, &rec) != nil || rec.Status != servicestate.CommandSent || rec.DeploymentID != dep || rec.Kind != channel.ApplyRelease {
				t.Errorf("%s answered %s, want a sent command of %s", name, out, dep)
			}
		case !errors.As(err, &invalid) || !strings.Contains(err.Error(), says):
			t.Errorf("%s: error %v, want an InvalidRequestError naming %q", name, err, says)
		}
	}
	// Only the valid sample reached the agent.
	if got := f.received(t, url); len(got) != 1 || got[0].Kind != channel.ApplyRelease {
		t.Errorf("the agent received %+v, want the apply-release sample alone", got)
	}
}
