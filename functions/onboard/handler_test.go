package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/byocloud/byoc/shared/cloud/cloudtest"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/stackevent"
	"github.com/byocloud/byoc/shared/store"
)

// The samples describe deployment k3q9x2m7p4w8z of account 111122223333 in us-west-2.
const (
	deploymentID = "k3q9x2m7p4w8z"
	account      = "111122223333"
	region       = "us-west-2"
)

// hold is a provision stand-in that stays running, so the execution's name stays taken.
const hold = `{"StartAt":"Hold","States":{"Hold":{"Type":"Wait","Seconds":3600,"End":true}}}`

type fixture struct {
	h       *Handler
	env     *cloudtest.Env
	table   string
	machine string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	env := cloudtest.Start(t)
	table := env.CreateTable(t, store.TableDefinition(""), store.TTLAttribute)
	machine := env.StateMachine(t, hold)
	h := &Handler{
		Store:     store.New(env.DynamoDB(), table),
		Workflows: env.StepFunctions(),
		Config:    Config{ProvisionMachineArn: machine},
		Log:       slog.New(slog.NewJSONHandler(io.Discard, nil)),
	}
	return fixture{h: h, env: env, table: table, machine: machine}
}

func (f fixture) invite(t *testing.T) store.Deployment {
	t.Helper()
	d, err := f.h.Store.Create(context.Background(), store.Deployment{
		ID: deploymentID,
		Settings: settings.Settings{CustomerID: "acme", AccountID: account, Region: region, VPCCIDR: "10.0.0.0/16",
			ZoneIDs: []string{"usw2-az1", "usw2-az2", "usw2-az3"}, ResourcePrefix: "clickhouse-cloud"},
		Status: lifecycle.Invited, ExternalID: "0123456789abcdef0123456789abcdef01234567",
		StackName: "clickhouse-cloud-" + deploymentID + "-infra",
	}, store.Audit{Actor: "test", Action: "invite"})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func sample(t *testing.T, name string) events.CloudWatchEvent {
	t.Helper()
	if !strings.Contains(name, "/") {
		name = filepath.Join("onboard", name)
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.CloudWatchEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func (f fixture) actions(t *testing.T) []string {
	t.Helper()
	trail, err := f.h.Store.AuditTrail(context.Background(), deploymentID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range trail {
		out = append(out, e.Action)
	}
	return out
}

func TestBootstrapCompleteStartsProvisionOnce(t *testing.T) {
	f := newFixture(t)
	f.invite(t)
	ev := sample(t, "bootstrap-create-complete.json")
	if err := f.h.Handle(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	execs := f.env.Executions(t, f.machine)
	if len(execs) != 1 || aws.ToString(execs[0].Name) != "provision-"+deploymentID+"-1" {
		t.Fatalf("executions %+v, want one named provision-%s-1", execs, deploymentID)
	}
	desc, err := f.env.StepFunctions().DescribeExecution(context.Background(), &sfn.DescribeExecutionInput{ExecutionArn: execs[0].ExecutionArn})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(desc.Input) != `{"deploymentId":"`+deploymentID+`"}` {
		t.Fatalf("input %s", aws.ToString(desc.Input))
	}
	if got := f.actions(t); !slices.Equal(got, []string{"invite", "bootstrap.complete"}) {
		t.Fatalf("audit %v", got)
	}
	// Onboard starts provisioning; the workflow's first step moves the status.
	if d, _ := f.h.Store.Get(context.Background(), deploymentID); d.Status != lifecycle.Invited {
		t.Fatalf("status %s", d.Status)
	}

	// The duplicate delivery, and a later bootstrap update, start nothing new.
	for _, dup := range []string{"bootstrap-create-complete-duplicate.json", "bootstrap-update-complete.json"} {
		if err := f.h.Handle(context.Background(), sample(t, dup)); err != nil {
			t.Fatalf("%s: %v", dup, err)
		}
	}
	if n := len(f.env.Executions(t, f.machine)); n != 1 {
		t.Fatalf("%d executions after duplicates", n)
	}
	if got := f.actions(t); !slices.Equal(got, []string{"invite", "bootstrap.complete", "bootstrap.complete"}) {
		t.Fatalf("audit %v: want one entry per distinct event", got)
	}
}

func TestConcurrentDuplicatesStartOneWorkflowAndAuditOnce(t *testing.T) {
	f := newFixture(t)
	f.invite(t)
	ev := sample(t, "bootstrap-create-complete.json")
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = f.h.Handle(context.Background(), ev) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.env.Executions(t, f.machine)); n != 1 {
		t.Fatalf("%d executions", n)
	}
	if got := f.actions(t); !slices.Equal(got, []string{"invite", "bootstrap.complete"}) {
		t.Fatalf("audit %v", got)
	}
}

func TestBootstrapRollbackIsAuditedAndTheDeploymentStaysInvited(t *testing.T) {
	f := newFixture(t)
	f.invite(t)
	ev := sample(t, "bootstrap-rollback-complete.json")
	for range 2 { // the second is a duplicate delivery
		if err := f.h.Handle(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.actions(t); !slices.Equal(got, []string{"invite", "bootstrap.failed"}) {
		t.Fatalf("audit %v", got)
	}
	trail, _ := f.h.Store.AuditTrail(context.Background(), deploymentID)
	if !strings.Contains(trail[1].Detail, "ROLLBACK_COMPLETE") || trail[1].EventID != ev.ID {
		t.Fatalf("audit entry %+v", trail[1])
	}
	d, _ := f.h.Store.Get(context.Background(), deploymentID)
	if d.Status != lifecycle.Invited || d.Version != 1 {
		t.Fatalf("deployment %s v%d", d.Status, d.Version)
	}
	if n := len(f.env.Executions(t, f.machine)); n != 0 {
		t.Fatal("a failed bootstrap started provisioning")
	}
}

// Events that are not for onboard are ignored without error and write nothing.
func TestIgnoredEventsWriteNothing(t *testing.T) {
	for _, name := range []string{"unknown-account.json", "wrong-stack-name.json", "bootstrap-create-in-progress.json", "stackevents/resource-status-change.json"} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.invite(t)
			before := f.env.Keys(t, f.table)
			if err := f.h.Handle(context.Background(), sample(t, name)); err != nil {
				t.Fatalf("err = %v, want the event ignored", err)
			}
			if after := f.env.Keys(t, f.table); len(after) != len(before) {
				t.Fatalf("wrote %v", after)
			}
			if n := len(f.env.Executions(t, f.machine)); n != 0 {
				t.Fatal("started a workflow")
			}
		})
	}
}

func TestMalformedEventIsAnErrorAndWritesNothing(t *testing.T) {
	f := newFixture(t)
	f.invite(t)
	before := f.env.Keys(t, f.table)
	err := f.h.Handle(context.Background(), sample(t, "malformed.json"))
	var m *stackevent.MalformedError
	if !errors.As(err, &m) || m.Field != "detail.stack-id" {
		t.Fatalf("err = %v, want a MalformedError about detail.stack-id", err)
	}
	if typ := reflect.TypeOf(err).Elem().Name(); typ != "MalformedError" {
		t.Fatalf("errorType %s", typ)
	}
	if after := f.env.Keys(t, f.table); len(after) != len(before) {
		t.Fatal("a malformed event wrote")
	}
}

func TestADeploymentPastInvitedIsNotStartedAgain(t *testing.T) {
	f := newFixture(t)
	d := f.invite(t)
	next := d
	next.Status = lifecycle.Provisioning
	if _, err := f.h.Store.Update(context.Background(), d, next, store.Audit{Actor: "test", Action: "provision.start"}); err != nil {
		t.Fatal(err)
	}
	if err := f.h.Handle(context.Background(), sample(t, "bootstrap-create-complete.json")); err != nil {
		t.Fatal(err)
	}
	if n := len(f.env.Executions(t, f.machine)); n != 0 {
		t.Fatal("started a second provisioning")
	}
}

// When the workflow cannot be started, nothing is recorded, so EventBridge's retry of the
// same event starts it.
func TestAFailedStartRecordsNothingSoTheRetryStarts(t *testing.T) {
	f := newFixture(t)
	f.invite(t)
	f.h.Config.ProvisionMachineArn = "arn:aws:states:us-east-1:000000000000:stateMachine:missing"
	ev := sample(t, "bootstrap-create-complete.json")
	err := f.h.Handle(context.Background(), ev)
	if err == nil || !strings.Contains(err.Error(), "provision-"+deploymentID+"-1") {
		t.Fatalf("err = %v", err)
	}
	if got := f.actions(t); !slices.Equal(got, []string{"invite"}) {
		t.Fatalf("audit %v after a failed start", got)
	}
	f.h.Config.ProvisionMachineArn = f.machine
	if err := f.h.Handle(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if n := len(f.env.Executions(t, f.machine)); n != 1 {
		t.Fatalf("%d executions after the retry", n)
	}
}

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{contract.EnvTableName: "t", contract.EnvProvisionMachineArn: "arn:sm"}
	if c, err := ConfigFromEnv(func(k string) string { return env[k] }); err != nil || c.ProvisionMachineArn != "arn:sm" {
		t.Fatalf("%+v %v", c, err)
	}
	for _, missing := range []string{contract.EnvTableName, contract.EnvProvisionMachineArn} {
		_, err := ConfigFromEnv(func(k string) string {
			if k == missing {
				return ""
			}
			return env[k]
		})
		if err == nil || !strings.Contains(err.Error(), missing) {
			t.Fatalf("missing %s: err = %v", missing, err)
		}
	}
}

// Another customer's account (its envelope account is EventBridge's, not the sender's to
// choose) claims this customer's bootstrap stack completed: nothing starts, the deployment is
// unchanged, the forgery is audited once (a redelivery adds nothing) and not retried.
func TestForgedEventAboutAnotherAccountIsRejectedAndAudited(t *testing.T) {
	f := newFixture(t)
	f.invite(t)
	ev := sample(t, "forged-other-account.json")
	for range 2 {
		if err := f.h.Handle(context.Background(), ev); err != nil {
			t.Fatalf("err = %v, want the forgery refused without a retry", err)
		}
	}
	if n := len(f.env.Executions(t, f.machine)); n != 0 {
		t.Fatal("a forged event started provisioning")
	}
	d, _ := f.h.Store.Get(context.Background(), deploymentID)
	if d.Status != lifecycle.Invited || d.Version != 1 {
		t.Fatalf("deployment %s v%d, want it untouched", d.Status, d.Version)
	}
	trail, _ := f.h.Store.AuditTrail(context.Background(), deploymentID)
	if len(trail) != 2 || trail[1].Action != "security.forged-event" || trail[1].EventID != ev.ID || !strings.Contains(trail[1].Detail, "444455556666") {
		t.Fatalf("audit %+v, want one security.forged-event naming the sender", trail)
	}
}

// A forgery between accounts byoc does not know has no trail to write: ignored, logged.
func TestForgedEventBetweenUnknownAccountsWritesNothing(t *testing.T) {
	f := newFixture(t)
	before := f.env.Keys(t, f.table)
	if err := f.h.Handle(context.Background(), sample(t, "forged-other-account.json")); err != nil {
		t.Fatal(err)
	}
	if after := f.env.Keys(t, f.table); len(after) != len(before) {
		t.Fatalf("wrote %v", after)
	}
}

// The customer fixes a failed deployment (here: provisioning could not assume the role) by
// updating the bootstrap stack: its UPDATE_COMPLETE starts the next provision execution,
// once, whatever duplicates arrive; a ready deployment is not provisioned again.
func TestBootstrapUpdateRestartsAFailedDeployment(t *testing.T) {
	f := newFixture(t)
	d := f.invite(t)
	ctx := context.Background()
	f.failedBy(t, d, "arn:aws:states:us-east-1:000000000000:execution:provision:"+ExecutionName(deploymentID, 1))
	ev := sample(t, "bootstrap-update-complete.json")
	for range 2 {
		if err := f.h.Handle(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	execs := f.env.Executions(t, f.machine)
	if len(execs) != 1 || !strings.HasSuffix(aws.ToString(execs[0].Name), ExecutionName(deploymentID, 2)) {
		t.Fatalf("executions %v, want %s alone", execs, ExecutionName(deploymentID, 2))
	}
	if got := f.actions(t); got[len(got)-1] != "bootstrap.restart" || slices.Index(got, "bootstrap.restart") != len(got)-1 {
		t.Fatalf("audit %v, want one bootstrap.restart", got)
	}
}

// The documented retry provision-<id>-2 was started while -1 still ran, was refused and
// closed; -1 then failed. The customer's bootstrap update must start a free name (-3), not
// take the closed -2 for a running restart.
func TestBootstrapUpdateRestartStepsOverClosedExecutions(t *testing.T) {
	f := newFixture(t)
	d := f.invite(t)
	ctx := context.Background()
	sf := f.env.StepFunctions()
	closed, err := sf.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(f.machine), Name: aws.String(ExecutionName(deploymentID, 2)), Input: aws.String(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sf.StopExecution(ctx, &sfn.StopExecutionInput{ExecutionArn: closed.ExecutionArn}); err != nil {
		t.Fatal(err)
	}
	f.failedBy(t, d, strings.Replace(f.machine, ":stateMachine:", ":execution:", 1)+":"+ExecutionName(deploymentID, 1))
	if err := f.h.Handle(ctx, sample(t, "bootstrap-update-complete.json")); err != nil {
		t.Fatal(err)
	}
	var running []string
	for _, e := range f.env.Executions(t, f.machine) {
		if e.Status == "RUNNING" {
			running = append(running, aws.ToString(e.Name))
		}
	}
	if len(running) != 1 || running[0] != ExecutionName(deploymentID, 3) {
		t.Fatalf("running executions %v, want %s alone", running, ExecutionName(deploymentID, 3))
	}
}

// failedBy walks the invited deployment d through provisioning by execution to failed.
func (f fixture) failedBy(t *testing.T, d store.Deployment, execution string) {
	t.Helper()
	ctx := context.Background()
	provisioning := d
	provisioning.Status, provisioning.Execution = lifecycle.Provisioning, execution
	stored, err := f.h.Store.Update(ctx, d, provisioning, store.Audit{Actor: "test", Action: "provision.start"})
	if err != nil {
		t.Fatal(err)
	}
	failed := stored
	failed.Status = lifecycle.Failed
	if _, err := f.h.Store.Update(ctx, stored, failed, store.Audit{Actor: "test", Action: "provision.failed"}); err != nil {
		t.Fatal(err)
	}
}

// A deployment whose teardown stopped is the operator's to resume (by deleting it again): the
// customer's bootstrap update does not provision it again, and writes nothing.
func TestBootstrapUpdateLeavesAStoppedTeardownAlone(t *testing.T) {
	f := newFixture(t)
	d := f.invite(t)
	ctx := context.Background()
	deleting := d
	deleting.Status, deleting.Execution = lifecycle.Deleting, "arn:aws:states:us-east-1:000000000000:execution:teardown:teardown-"+deploymentID+"-1"
	stored, err := f.h.Store.Update(ctx, d, deleting, store.Audit{Actor: "test", Action: "teardown.start"})
	if err != nil {
		t.Fatal(err)
	}
	failed := stored
	failed.Status, failed.Failure = lifecycle.Failed, &store.Failure{Status: contract.FailureTeardown, Resource: "Vpc", Reason: "in use"}
	if stored, err = f.h.Store.Update(ctx, stored, failed, store.Audit{Actor: "test", Action: "teardown.failed"}); err != nil {
		t.Fatal(err)
	}
	if err := f.h.Handle(ctx, sample(t, "bootstrap-update-complete.json")); err != nil {
		t.Fatal(err)
	}
	if execs := f.env.Executions(t, f.machine); len(execs) != 0 {
		t.Fatalf("a stopped teardown was provisioned again: %v", execs)
	}
	if after, _ := f.h.Store.Get(ctx, deploymentID); after.Version != stored.Version {
		t.Fatalf("the deployment was written: v%d, want v%d", after.Version, stored.Version)
	}
}
