package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/byocloud/byoc/shared/cloud/cloudtest"
	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/statemsg"
	"github.com/byocloud/byoc/shared/store"
)

type fixture struct {
	env   *cloudtest.Env
	table string
	repo  *servicestate.Repo
	h     *Handler
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := cloudtest.Start(t)
	table := env.CreateTable(t, store.TableDefinition("x"), servicestate.TTLAttribute)
	repo := servicestate.New(env.DynamoDB(), table)
	// The deployments the requests and samples wait on are provisioned.
	for _, d := range []servicestate.DataPlane{
		{DeploymentID: "dep1", AccountID: "111111111111", ExporterRoleARN: "arn:aws:iam::111111111111:role/clickhouse-cloud-dep1-state-exporter",
			ExporterRoleID: "AROA3XFRBF23STATEXP01", AgentRoleARN: "arn:aws:iam::111111111111:role/clickhouse-cloud-dep1-agent"},
		{DeploymentID: "dep7f3a", AccountID: "111111111111", ExporterRoleARN: "arn:aws:iam::111111111111:role/clickhouse-cloud-dep7f3a-state-exporter",
			ExporterRoleID: "AROA3XFRBF23STATEXP7F", AgentRoleARN: "arn:aws:iam::111111111111:role/clickhouse-cloud-dep7f3a-agent"},
	} {
		if err := repo.RegisterDataPlane(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	return &fixture{env: env, table: table, repo: repo, h: &Handler{Repo: repo, Tasks: env.StepFunctions(), Log: slog.New(slog.NewJSONHandler(io.Discard, nil))}}
}

func report(version string, seq int64) statemsg.Message {
	return statemsg.Message{
		SchemaVersion: 1, DeploymentID: "dep1", ServiceID: "svc-a", Hostname: "svc-a.example.com",
		ObservedAt: time.Now().Add(-time.Second), ExporterEpoch: 1, Sequence: seq, Status: statemsg.StatusHealthy,
		Versions: statemsg.Versions{ClickHouse: version, Operator: "0.25", Kubernetes: "1.30"},
		Replicas: statemsg.Replicas{Ready: 3, Desired: 3},
	}
}

func request(token string) Request {
	return Request{TaskToken: token, DeploymentID: "dep1", TimeoutSeconds: 600,
		Condition: servicestate.Condition{ServiceID: "svc-a", Health: health.Healthy, ClickHouseVersion: "25.1"}}
}

func TestAlreadySatisfiedResumesAtOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.repo.Apply(ctx, report("25.1", 1), "m1"); err != nil {
		t.Fatal(err)
	}
	exec, token := f.env.Activity(t)
	resp, err := f.h.Handle(ctx, request(token))
	if err != nil || !resp.Resumed {
		t.Fatalf("response %+v %v", resp, err)
	}
	out := f.env.WaitExecution(t, exec)
	var got servicestate.WaitOutput
	if out.Status != "SUCCEEDED" || json.Unmarshal([]byte(aws.ToString(out.Output)), &got) != nil || got.Versions.ClickHouse != "25.1" {
		t.Fatalf("execution %s output %s", out.Status, aws.ToString(out.Output))
	}
	if ws, _ := f.repo.Waiters(ctx, "dep1", "svc-a"); len(ws) != 0 {
		t.Fatalf("waiters left %v", ws)
	}
}

func TestNotYetSatisfiedWaitsForIngest(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.repo.Apply(ctx, report("24.8", 1), "m1"); err != nil {
		t.Fatal(err)
	}
	exec, token := f.env.Activity(t)
	resp, err := f.h.Handle(ctx, request(token))
	if err != nil || resp.Resumed || resp.WaiterID == "" {
		t.Fatalf("response %+v %v", resp, err)
	}
	// A retried invocation (same token) registers nothing new.
	if again, err := f.h.Handle(ctx, request(token)); err != nil || again.WaiterID != resp.WaiterID {
		t.Fatalf("retry %+v %v", again, err)
	}
	// The upgrade lands; ingest resumes the task (what stateingest does after Apply).
	res, err := f.repo.Apply(ctx, report("25.1", 2), "m2")
	if err != nil || res.Service.Waiters != 1 {
		t.Fatalf("apply %+v %v", res, err)
	}
	if n, err := f.repo.ResumeWaiters(ctx, f.env.StepFunctions(), res.Service); err != nil || n != 1 {
		t.Fatalf("resumed %d %v", n, err)
	}
	if out := f.env.WaitExecution(t, exec); out.Status != "SUCCEEDED" {
		t.Fatalf("execution %s", out.Status)
	}
}

func TestWaitForAServiceThatDoesNotExistYet(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, token := f.env.Activity(t)
	resp, err := f.h.Handle(ctx, request(token))
	if err != nil || resp.Resumed {
		t.Fatalf("response %+v %v", resp, err)
	}
	if ws, _ := f.repo.Waiters(ctx, "dep1", "svc-a"); len(ws) != 1 {
		t.Fatalf("waiters %v", ws)
	}
}

func TestInvalidRequestsFailWithTheFieldAndWriteNothing(t *testing.T) {
	f := newFixture(t)
	before := f.env.Keys(t, f.table)
	cases := []struct {
		edit func(*Request)
		says string
	}{
		{func(r *Request) { r.DeploymentID = "" }, "deploymentId"},
		{func(r *Request) { r.TaskToken = "" }, "taskToken"},
		{func(r *Request) { r.TimeoutSeconds = 0 }, "timeoutSeconds"},
		{func(r *Request) { r.TimeoutSeconds = servicestate.MaxWait.Seconds() + 1 }, "timeoutSeconds"},
		{func(r *Request) { r.TimeoutSeconds = 1.5 }, "timeoutSeconds: must be whole seconds"},
		{func(r *Request) { r.TimeoutSeconds = 18446744074 }, "timeoutSeconds: must be whole seconds"}, // overflows a Duration to 0.3 s
		{func(r *Request) { r.TimeoutSeconds = math.NaN() }, "timeoutSeconds"},
		{func(r *Request) { r.DeploymentID = "depunknown" }, "no deployment depunknown is provisioned"},
		{func(r *Request) { r.Condition = servicestate.Condition{ServiceID: "svc-a"} }, "at least one of"},
		{func(r *Request) { r.Condition.Health = "fine" }, "health: must be one of"},
	}
	for _, c := range cases {
		req := request("token")
		c.edit(&req)
		_, err := f.h.Handle(context.Background(), req)
		var invalid *InvalidRequestError
		if !errors.As(err, &invalid) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("error %v, want an InvalidRequestError saying %q", err, c.says)
		}
	}
	if keys := f.env.Keys(t, f.table); len(keys) != len(before) {
		t.Fatalf("invalid requests wrote %v (before: %v)", keys, before)
	}
}

// The sample events (events/statewait, what `make invoke FN=statewait` runs) behave as
// their names say; a new sample must be added here.
func TestSampleEvents(t *testing.T) {
	want := map[string]string{ // sample -> the rule its InvalidRequestError names ("" = valid)
		"wait-for-version.json": "",
		"no-condition.json":     "at least one of",
		"timeout-too-long.json": "timeoutSeconds",
	}
	samples := cloudtest.SampleEvents(t, "statewait", slices.Collect(maps.Keys(want))...)
	f := newFixture(t)
	ctx := context.Background()
	for name, says := range want {
		out, err := lambda.NewHandler(f.h.Handle).Invoke(ctx, samples[name])
		var invalid *InvalidRequestError
		switch {
		case says == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case says == "":
			var resp Response
			if json.Unmarshal(out, &resp) != nil || resp.WaiterID == "" || resp.Resumed {
				t.Errorf("%s answered %s, want a registered waiter", name, out)
			}
		case !errors.As(err, &invalid) || !strings.Contains(err.Error(), says):
			t.Errorf("%s: error %v, want an InvalidRequestError naming %q", name, err, says)
		}
	}
	// Only the valid sample registered a waiter, for the service it names.
	if ws, _ := f.repo.Waiters(ctx, "dep7f3a", "h5ju65kv87"); len(ws) != 1 {
		t.Errorf("waiters %v, want the one of wait-for-version.json", ws)
	}
}
