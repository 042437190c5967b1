package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/cloud/cloudtest"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/customerstack"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/maintenance"
	"github.com/byocloud/byoc/shared/release"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/stackevent"
	"github.com/byocloud/byoc/shared/steperr"
	"github.com/byocloud/byoc/shared/store"
)

const (
	deploymentID = "k3q9x2m7p4w8z"
	account      = "111122223333"
	region       = "us-west-2"
	stackName    = "clickhouse-cloud-k3q9x2m7p4w8z-infra"
	execution    = "arn:aws:states:us-east-1:999999999999:execution:provision:provision-k3q9x2m7p4w8z-1"
	template     = `{"Resources":{"Vpc":{"Type":"AWS::EC2::VPC"}}}`
)

var ctx = context.Background()

type fixture struct {
	h       *Handler
	cfn     *fakeCFN
	env     *cloudtest.Env
	table   string
	sqs     *flakySQS
	mu      sync.Mutex
	assumed []aws.Config // configurations the CloudFormation clients were built from
	// schedules is where the maintenance schedules go.
	schedules maintenance.Schedules
}

// refusingSTS is the customer's STS when the ExternalId is wrong; kumo's STS grants everything.
type refusingSTS struct{}

func (refusingSTS) AssumeRole(context.Context, *sts.AssumeRoleInput, ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	return nil, &smithy.GenericAPIError{Code: "AccessDenied", Message: "User: arn:aws:sts::999999999999:assumed-role/byoc-provisioner/x is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::111122223333:role/ClickHouseManagementRole"}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := cloudtest.Start(t)
	// The control-plane table as the stack declares it: the store's keys and the sweep index.
	table := env.CreateTable(t, store.TableDefinition(""), store.TTLAttribute)
	f := &fixture{cfn: newFakeCFN(account, region), env: env, table: table, sqs: &flakySQS{Client: sqs.NewFromConfig(env.Config)}}
	q, err := f.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(cloudtest.UniqueName("byoc-state"))})
	if err != nil {
		t.Fatal(err)
	}
	// kumo is one process-wide emulator and the deployment id is fixed: each test starts
	// without the deployment's command queue.
	t.Cleanup(func() { _ = channel.Close(ctx, f.sqs.Client, deploymentID) })
	f.h = &Handler{
		Store: store.New(env.DynamoDB(), table),
		State: servicestate.New(env.DynamoDB(), table),
		SQS:   f.sqs,
		Tasks: env.StepFunctions(),
		Customers: customerstack.Customers{STS: env.STS(), Base: env.Config, NewCloudFormation: func(cfg aws.Config) cloud.CloudFormation {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.assumed = append(f.assumed, cfg)
			return f.cfn
		}},
		Config: Config{MaxAttempts: 3, TemplateBody: template, StateQueueArn: "arn:aws:sqs:us-east-1:999999999999:byoc-state", ControlPlaneAccountID: "999999999999",
			ControlPlaneRoleArn: "arn:aws:iam::999999999999:role/byoc-provisioner",
			StateQueueURL:       aws.ToString(q.QueueUrl)},
		Log: slog.New(slog.NewJSONHandler(io.Discard, nil)),
	}
	// Maintenance schedules go to kumo's Scheduler, in a group of this test's own.
	f.schedules = maintenance.Schedules{Client: scheduler.NewFromConfig(env.Config), Group: cloudtest.UniqueName("byoc-maintenance"),
		TargetArn: "arn:aws:lambda:us-east-1:999999999999:function:byoc-maintenance", RoleArn: "arn:aws:iam::999999999999:role/byoc-scheduler",
		DLQArn: "arn:aws:sqs:us-east-1:999999999999:byoc-events-dlq"}
	if _, err := scheduler.NewFromConfig(env.Config).CreateScheduleGroup(ctx, &scheduler.CreateScheduleGroupInput{Name: aws.String(f.schedules.Group)}); err != nil {
		t.Fatal(err)
	}
	f.h.Maintenance = &maintenance.Service{Store: f.h.Store, Schedules: f.schedules, Log: f.h.Log}
	m, err := maintenance.New(nil, region, "", false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.h.Store.Create(ctx, store.Deployment{Maintenance: &m,
		ID: deploymentID,
		Settings: settings.Settings{CustomerID: "acme", AccountID: account, Region: region, VPCCIDR: "10.0.0.0/16",
			ZoneIDs: []string{"usw2-az1", "usw2-az2", "usw2-az3"}, ResourcePrefix: "clickhouse-cloud"},
		Status: lifecycle.Invited, ExternalID: "0123456789abcdef0123456789abcdef01234567", StackName: stackName,
	}, store.Audit{Actor: "test", Action: "invite"})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// step invokes the handler the way Lambda does (JSON in, JSON out) and decodes the output.
func step[T any](t *testing.T, f *fixture, in Input) (T, error) {
	t.Helper()
	if in.DeploymentID == "" {
		in.DeploymentID = deploymentID
	}
	if in.Execution == "" {
		in.Execution = execution
	}
	payload, _ := json.Marshal(in)
	var out T
	raw, err := lambda.NewHandler(f.h.Handle).Invoke(ctx, payload)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("output %s: %v", raw, err)
	}
	return out, nil
}

func must[T any](t *testing.T, f *fixture, in Input) T {
	t.Helper()
	out, err := step[T](t, f, in)
	if err != nil {
		t.Fatalf("step %s: %v", in.Step, err)
	}
	return out
}

func (f *fixture) deployment(t *testing.T) store.Deployment {
	t.Helper()
	d, err := f.h.Store.Get(ctx, deploymentID)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (f *fixture) actions(t *testing.T) []string {
	t.Helper()
	trail, err := f.h.Store.AuditTrail(ctx, deploymentID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range trail {
		out = append(out, e.Action)
	}
	return out
}

// errorType is what Lambda reports as the error name, and what the workflow's Retry and
// Catch match: aws-lambda-go uses the Go type name.
func errorType(err error) string {
	t := reflect.TypeOf(err)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

var wantParameters = map[string]string{
	"DeploymentId": deploymentID, "ResourcePrefix": "clickhouse-cloud", "VpcCidr": "10.0.0.0/16",
	"StateQueueArn": "arn:aws:sqs:us-east-1:999999999999:byoc-state", "ControlPlaneAccountId": "999999999999",
	"ControlPlaneRoleArn": "arn:aws:iam::999999999999:role/byoc-provisioner", "ExternalId": "0123456789abcdef0123456789abcdef01234567",
	"ZoneId1": "usw2-az1", "ZoneId2": "usw2-az2", "ZoneId3": "usw2-az3",
	"PrivateSubnet1Cidr": "10.0.0.0/18", "PrivateSubnet2Cidr": "10.0.64.0/18", "PrivateSubnet3Cidr": "10.0.128.0/18",
	"PublicSubnet1Cidr": "10.0.192.0/20", "PublicSubnet2Cidr": "10.0.208.0/20", "PublicSubnet3Cidr": "10.0.224.0/20",
	// An empty catalogue: the baseline Kubernetes minor, EKS's choice of node AMI and add-ons.
	"KubernetesVersion": "1.33", "NodeKubernetesVersion": "1.33", "NodeReleaseVersion": "",
	"AddonVersionVpcCni": "", "AddonVersionKubeProxy": "", "AddonVersionEksPodIdentityAgent": "", "AddonVersionCoredns": "", "AddonVersionAwsEbsCsiDriver": "",
}

// A new deployment is created on the catalogue's current versions, and keeps them for its
// later attempts whatever is published meanwhile (upgrades move it on).
func TestPrepareCreatesOnTheCataloguesVersions(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	publish := func(r release.Release) {
		t.Helper()
		rs, err := f.h.Store.Releases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cat := store.Catalogue(rs)
		v, err := cat.Validate(r, now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.h.Store.PublishRelease(ctx, v, cat[r.Component].Version); err != nil {
			t.Fatal(err)
		}
	}
	publish(release.Release{Component: release.Kubernetes, Version: "1.34"})
	publish(release.Release{Component: release.Nodes, Version: "1.34.2-20260101"})
	publish(release.Release{Component: "coredns", Version: "v1.12.0-eksbuild.1", KubernetesVersions: []string{"1.34"}})
	p := must[PrepareResult](t, f, Input{Step: StepPrepare})
	if p.Parameters["KubernetesVersion"] != "1.34" || p.Parameters["NodeKubernetesVersion"] != "1.34" || p.Parameters["NodeReleaseVersion"] != "1.34.2-20260101" ||
		p.Parameters["AddonVersionCoredns"] != "v1.12.0-eksbuild.1" || p.Parameters["AddonVersionVpcCni"] != "" {
		t.Fatalf("parameters %v", p.Parameters)
	}
	publish(release.Release{Component: release.ClickHouse, Version: "25.4.1.1"})
	again := must[PrepareResult](t, f, Input{Step: StepPrepare})
	if !reflect.DeepEqual(again.Parameters, p.Parameters) {
		t.Fatalf("a retried prepare planned other versions: %v", again.Parameters)
	}
}

// ---- prepare ----

func TestPrepareStartsAnAttempt(t *testing.T) {
	f := newFixture(t)
	out := must[PrepareResult](t, f, Input{Step: StepPrepare})
	if out.StackName != stackName || out.Attempt != 1 || !reflect.DeepEqual(out.Parameters, wantParameters) {
		t.Fatalf("prepare = %+v", out)
	}
	d := f.deployment(t)
	if d.Status != lifecycle.Provisioning || d.ProvisionAttempts != 1 || d.RunAttempts != 1 || d.Execution != execution || d.Version != 2 {
		t.Fatalf("deployment %+v", d)
	}
	// A retried invocation of the same execution changes nothing and answers the same.
	again := must[PrepareResult](t, f, Input{Step: StepPrepare})
	if !reflect.DeepEqual(again, out) || f.deployment(t).Version != 2 {
		t.Fatalf("retried prepare = %+v, version %d", again, f.deployment(t).Version)
	}
	if got := f.actions(t); !slices.Equal(got, []string{"invite", "provision.start"}) {
		t.Fatalf("audit %v", got)
	}
}

func TestPrepareOfANewExecutionStartsANewRunBudget(t *testing.T) {
	f := newFixture(t)
	d := f.deployment(t)
	failed := d
	failed.Status, failed.ProvisionAttempts, failed.RunAttempts, failed.Execution = lifecycle.Provisioning, 3, 3, execution
	d2, _ := f.h.Store.Update(ctx, d, failed, store.Audit{Actor: "t", Action: "x"})
	failed2 := d2
	failed2.Status = lifecycle.Failed
	if _, err := f.h.Store.Update(ctx, d2, failed2, store.Audit{Actor: "t", Action: "x"}); err != nil {
		t.Fatal(err)
	}
	out := must[PrepareResult](t, f, Input{Step: StepPrepare, Execution: strings.TrimSuffix(execution, "-1") + "-2"})
	got := f.deployment(t)
	if out.Attempt != 1 || got.RunAttempts != 1 || got.ProvisionAttempts != 4 || got.Status != lifecycle.Provisioning {
		t.Fatalf("operator retry: result %+v, deployment %+v", out, got)
	}
}

func TestPrepareOfAReadyDeploymentIsAnUpdate(t *testing.T) {
	f := newFixture(t)
	f.advance(t, lifecycle.Provisioning, lifecycle.Ready)
	must[PrepareResult](t, f, Input{Step: StepPrepare, Execution: execution + "-update"})
	if s := f.deployment(t).Status; s != lifecycle.Updating {
		t.Fatalf("status %s, want updating", s)
	}
}

func TestPrepareRefusesADeploymentBeingDeleted(t *testing.T) {
	f := newFixture(t)
	f.advance(t, lifecycle.Deleting)
	before := f.env.Keys(t, f.table)
	_, err := step[PrepareResult](t, f, Input{Step: StepPrepare})
	var bad *InvalidState
	if !errors.As(err, &bad) || errorType(err) != "InvalidState" || !strings.Contains(err.Error(), "deleting") {
		t.Fatalf("err = %v", err)
	}
	if after := f.env.Keys(t, f.table); len(after) != len(before) {
		t.Fatal("refused prepare wrote")
	}
}

// Settings that stopped validating (the operator removed the region) fail the attempt with a
// ValidationError naming the rule, and the failure is recorded on the deployment.
func TestPrepareWithSettingsNoLongerValid(t *testing.T) {
	f := newFixture(t)
	f.h.Config.Rules = settings.Rules{SupportedRegions: []string{"eu-west-1"}}
	_, err := step[PrepareResult](t, f, Input{Step: StepPrepare})
	var verr *settings.ValidationError
	if !errors.As(err, &verr) || errorType(err) != "ValidationError" {
		t.Fatalf("err = %v (%T)", err, err)
	}
	if fe, ok := verr.Field("region"); !ok || !strings.Contains(fe.Rule, "eu-west-1") {
		t.Fatalf("field errors %v", verr.Errors)
	}
	caught := lambdaCatch(err)
	out := must[FailResult](t, f, Input{Step: StepFail, Error: &caught})
	d := f.deployment(t)
	if out.Retry || d.Status != lifecycle.Failed || d.Failure == nil || d.Failure.Status != "ValidationError" || !strings.Contains(d.Failure.Reason, "region") {
		t.Fatalf("fail = %+v, deployment %s %+v", out, d.Status, d.Failure)
	}
}

// ---- apply ----

func TestApplyCreatesTheStackAsTheManagementRole(t *testing.T) {
	f := newFixture(t)
	must[PrepareResult](t, f, Input{Step: StepPrepare})
	out := must[ApplyResult](t, f, Input{Step: StepApply})
	s := f.cfn.live(stackName)
	if s == nil {
		t.Fatal("no stack created")
	}
	if out.Action != ActionCreate || out.Operation != "create" || out.StackID != s.id || out.RequestToken != "byoc-"+deploymentID+"-1-create" || out.Status != "CREATE_IN_PROGRESS" {
		t.Fatalf("apply = %+v", out)
	}
	if !reflect.DeepEqual(s.params, wantParameters) || s.template != template || !s.protected || s.token != out.RequestToken {
		t.Fatalf("stack %+v", s)
	}
	if s.tags[contract.ManagedByTagKey] != contract.ManagedByTagValue || s.tags[DeploymentTagKey] != deploymentID {
		t.Fatalf("tags %v", s.tags)
	}
	if !slices.Contains(s.capabilities, "CAPABILITY_NAMED_IAM") {
		t.Fatalf("capabilities %v", s.capabilities)
	}
	if d := f.deployment(t); d.StackID != s.id {
		t.Fatalf("stack id %q not recorded", d.StackID)
	}
	// The client acted in the customer's region with the assumed role's credentials.
	cfg := f.assumed[0]
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vendor, _ := f.env.Config.Credentials.Retrieve(ctx)
	if cfg.Region != region || creds.AccessKeyID == "" || creds.AccessKeyID == vendor.AccessKeyID {
		t.Fatalf("CloudFormation client in %s with key %s (vendor key %s)", cfg.Region, creds.AccessKeyID, vendor.AccessKeyID)
	}
}

func TestApplyOnAnUnchangedStackHasNothingToDo(t *testing.T) {
	f := newFixture(t)
	f.createdEarlier(t, "CREATE_COMPLETE")
	f.cfn.live(stackName).protected = false // someone turned protection off
	out := must[ApplyResult](t, f, Input{Step: StepApply})
	if out.Action != ActionNone || out.StackID != f.cfn.live(stackName).id {
		t.Fatalf("apply = %+v", out)
	}
	if !f.cfn.live(stackName).protected {
		t.Fatal("termination protection not restored")
	}
}

func TestApplyUpdatesAChangedStack(t *testing.T) {
	f := newFixture(t)
	f.createdEarlier(t, "CREATE_COMPLETE")
	f.h.Config.StateQueueArn = "arn:aws:sqs:us-east-1:999999999999:byoc-state-v2"
	out := must[ApplyResult](t, f, Input{Step: StepApply})
	s := f.cfn.live(stackName)
	if out.Action != ActionUpdate || out.Operation != "update" || out.RequestToken != "byoc-"+deploymentID+"-1-update" || s.status != "UPDATE_IN_PROGRESS" || s.params["StateQueueArn"] != f.h.Config.StateQueueArn {
		t.Fatalf("apply = %+v, stack %s %v", out, s.status, s.params)
	}
}

func TestApplyDeletesARolledBackStack(t *testing.T) {
	f := newFixture(t)
	old := f.createdEarlier(t, "ROLLBACK_COMPLETE")
	out := must[ApplyResult](t, f, Input{Step: StepApply})
	if out.Action != ActionDelete || out.Operation != "delete" || out.StackID != old.id || out.RequestToken != "byoc-"+deploymentID+"-1-delete" {
		t.Fatalf("apply = %+v", out)
	}
	if old.status != "DELETE_IN_PROGRESS" || old.protected {
		t.Fatalf("stack %s protected=%v", old.status, old.protected)
	}
	i := slices.Index(f.cfn.calls, "UpdateTerminationProtection "+old.id+" false")
	j := slices.Index(f.cfn.calls, "DeleteStack "+old.id+" "+out.RequestToken)
	if i < 0 || j < i {
		t.Fatalf("calls %v: protection must be lifted before the delete", f.cfn.calls)
	}
	if got := f.actions(t); !slices.Contains(got, "stack.delete") {
		t.Fatalf("audit %v", got)
	}
}

// A retried apply (its first answer lost, or its process killed after the create) finds
// its own create running, and answers that create: one stack, one stack.create entry
// (make chaos found it recreating a rolled-back stack in the same attempt: infra-fails,
// crash, seed 1).
func TestApplyAgainAnswersItsOwnCreate(t *testing.T) {
	f := newFixture(t)
	must[PrepareResult](t, f, Input{Step: StepPrepare})
	first := must[ApplyResult](t, f, Input{Step: StepApply})
	for _, status := range []string{"CREATE_IN_PROGRESS", "ROLLBACK_COMPLETE"} {
		if status != "CREATE_IN_PROGRESS" {
			f.cfn.settle(stackName, status)
		}
		out := must[ApplyResult](t, f, Input{Step: StepApply})
		if out.Action != ActionCreate || out.StackID != first.StackID || out.RequestToken != first.RequestToken || out.Status != status {
			t.Fatalf("apply again with the stack %s = %+v, want its own create", status, out)
		}
	}
	if n := len(f.cfn.stacks); n != 1 {
		t.Fatalf("%d stacks", n)
	}
	got := f.actions(t)
	creates := len(slices.DeleteFunc(slices.Clone(got), func(a string) bool { return a != "stack.create" }))
	if creates != 1 || slices.Contains(got, "stack.delete") {
		t.Fatalf("audit %v: want one stack.create and no delete", got)
	}
}

func TestApplyWaitsForABusyStack(t *testing.T) {
	f := newFixture(t)
	s := f.createdEarlier(t, "CREATE_COMPLETE")
	f.cfn.settle(stackName, "UPDATE_IN_PROGRESS") // an operator's update, say
	out := must[ApplyResult](t, f, Input{Step: StepApply})
	if out.Action != ActionWait || out.Operation != "update" || out.Status != "UPDATE_IN_PROGRESS" || out.StackID != s.id {
		t.Fatalf("apply = %+v", out)
	}
	if n := len(f.cfn.stacks); n != 1 {
		t.Fatalf("%d stacks", n)
	}
}

func TestApplyRefusesAStackAnOperatorMustRepair(t *testing.T) {
	f := newFixture(t)
	f.createdAndSettled(t, "UPDATE_ROLLBACK_FAILED")
	_, err := step[ApplyResult](t, f, Input{Step: StepApply})
	if errorType(err) != "StackBlocked" || !strings.Contains(err.Error(), "continue-update-rollback") {
		t.Fatalf("err = %v", err)
	}
}

func TestApplyWithAWrongExternalIdIsAccessDeniedAndFailsWithoutRetry(t *testing.T) {
	f := newFixture(t)
	must[PrepareResult](t, f, Input{Step: StepPrepare})
	c := f.h.Customers.(customerstack.Customers)
	c.STS = refusingSTS{}
	f.h.Customers = c
	_, err := step[ApplyResult](t, f, Input{Step: StepApply})
	if errorType(err) != "AccessDenied" || !strings.Contains(err.Error(), "ExternalId") || !strings.Contains(err.Error(), "ClickHouseManagementRole") {
		t.Fatalf("err = %v (%s)", err, errorType(err))
	}
	if len(f.cfn.calls) != 0 {
		t.Fatal("CloudFormation was called without a role")
	}
	caught := lambdaCatch(err)
	out := must[FailResult](t, f, Input{Step: StepFail, Error: &caught})
	d := f.deployment(t)
	if out.Retry || d.Status != lifecycle.Failed || d.Failure.Status != "AccessDenied" || !strings.Contains(d.Failure.Reason, "ExternalId") {
		t.Fatalf("fail = %+v, failure %+v", out, d.Failure)
	}
}

func TestThrottlingIsATransientError(t *testing.T) {
	f := newFixture(t)
	must[PrepareResult](t, f, Input{Step: StepPrepare})
	f.cfn.err["CreateStack"] = &smithy.GenericAPIError{Code: "Throttling", Message: "Rate exceeded"}
	_, err := step[ApplyResult](t, f, Input{Step: StepApply})
	if errorType(err) != "TransientError" {
		t.Fatalf("err = %v (%s)", err, errorType(err))
	}
	// The workflow's retry then succeeds.
	if out := must[ApplyResult](t, f, Input{Step: StepApply}); out.Action != ActionCreate {
		t.Fatalf("retry: %+v", out)
	}
}

func TestUnknownStepAndMissingFieldsAreInvalidInput(t *testing.T) {
	f := newFixture(t)
	before := f.env.Keys(t, f.table)
	for _, in := range []Input{
		{Step: "dance", DeploymentID: deploymentID, Execution: execution},
		{Step: StepPrepare, DeploymentID: deploymentID, Execution: ""},
		{Step: StepAwait, DeploymentID: deploymentID, Execution: execution},
	} {
		payload, _ := json.Marshal(in)
		_, err := lambda.NewHandler(f.h.Handle).Invoke(ctx, payload)
		if errorType(err) != "InvalidInput" {
			t.Errorf("%+v: err = %v", in, err)
		}
	}
	if after := f.env.Keys(t, f.table); len(after) != len(before) {
		t.Fatal("invalid input wrote")
	}
}

// ---- helpers ----

// advance walks the deployment through statuses with plain store updates.
func (f *fixture) advance(t *testing.T, statuses ...lifecycle.Status) {
	t.Helper()
	for _, s := range statuses {
		d := f.deployment(t)
		next := d
		next.Status = s
		if _, err := f.h.Store.Update(ctx, d, next, store.Audit{Actor: "test", Action: "advance"}); err != nil {
			t.Fatal(err)
		}
	}
}

// createdAndSettled prepares, creates the stack and ends its creation with status.
func (f *fixture) createdAndSettled(t *testing.T, status string) *fakeStack {
	t.Helper()
	must[PrepareResult](t, f, Input{Step: StepPrepare})
	must[ApplyResult](t, f, Input{Step: StepApply})
	f.cfn.settle(stackName, status)
	return f.cfn.live(stackName)
}

// createdEarlier is createdAndSettled by an earlier request than this attempt's create (an
// earlier attempt, an earlier life of the deployment): the stack's events carry that
// request's token, so apply does not take the stack for its own create.
func (f *fixture) createdEarlier(t *testing.T, status string) *fakeStack {
	t.Helper()
	s := f.createdAndSettled(t, status)
	f.cfn.mu.Lock()
	defer f.cfn.mu.Unlock()
	for i := range s.events {
		s.events[i].ClientRequestToken = aws.String("byoc-" + deploymentID + "-0-create")
	}
	return s
}

// lambdaCatch is what a Catch puts at $.error for a Lambda function error: the errorType
// and, as the cause, the function's error payload.
func lambdaCatch(err error) steperr.Caught {
	cause, _ := json.Marshal(map[string]any{"errorMessage": err.Error(), "errorType": errorType(err), "stackTrace": []string{}})
	return steperr.Caught{Error: errorType(err), Cause: string(cause)}
}

// taskFailure is what a Catch puts at $.error when stackevents failed the task token.
func taskFailure(r stackevent.Result) steperr.Caught {
	cause, _ := json.Marshal(r)
	return steperr.Caught{Error: stackevent.ErrorStackFailed, Cause: string(cause)}
}
