// Package vendortest deploys templates into the vendor account of the local cloud: real
// kumo behind a front door that routes CloudFormation, STS and bus permissions to the stack
// engine and accounts, as the local cloud does. It is the only package of the stack engine
// whose tests import kumo (through cloudtest), because kumo is a heavy build.
package vendortest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/byocloud/byoc/infra/local/accounts"
	"github.com/byocloud/byoc/infra/local/cfnengine"
	"github.com/byocloud/byoc/infra/local/eventsources/eventbus"
	"github.com/byocloud/byoc/shared/cloud/cloudtest"
)

const customer = "111111111111"

// recordingHost is the FunctionHost boundary: it records what the engine asks to run (the
// processes themselves are the lambdahost package's job and need built binaries).
type recordingHost struct {
	mu      sync.Mutex
	running map[string]cfnengine.FunctionSpec
	started []string
	stopped []string
}

func (h *recordingHost) StartFunction(_ context.Context, spec cfnengine.FunctionSpec) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.running[spec.Name] = spec
	h.started = append(h.started, spec.Name)
	return nil
}

func (h *recordingHost) StopFunction(name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.running, name)
	h.stopped = append(h.stopped, name)
	return nil
}

type cloud struct {
	engine   *cfnengine.Engine
	accounts *accounts.Accounts
	host     *recordingHost
	kumoURL  string
	cfg      aws.Config // vendor credentials, front door endpoint
	bus      *eventbus.Bus
}

// newCloud starts kumo behind a front door: CloudFormation, STS and bus permissions go to
// the engine and accounts, everything else to kumo (Step Functions included, until the
// local cloud's own engine replaces it there).
func newCloud(t testing.TB) *cloud {
	t.Helper()
	env := cloudtest.Start(t)
	kumoURL, err := url.Parse(env.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(kumoURL)
	c := &cloud{accounts: accounts.New(), host: &recordingHost{running: map[string]cfnengine.FunctionSpec{}}, kumoURL: env.URL}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	c.accounts.SetLogger(quiet)
	door := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scope, _ := accounts.SigningScope(r)
		switch {
		case scope.Service == "cloudformation":
			c.engine.ServeHTTP(w, r)
		case scope.Service == "sts":
			c.accounts.ServeHTTP(w, r)
		case cfnengine.IsBusPermissionRequest(r):
			c.engine.BusPermissions().ServeHTTP(w, r)
		default:
			proxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(door.Close)
	c.cfg = aws.Config{
		Region: "us-east-1", BaseEndpoint: aws.String(door.URL), RetryMaxAttempts: 2,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	}
	// Forwarded events reach the vendor bus through the local cloud's own EventBridge
	// delivery, as in the assembled cloud.
	c.engine = cfnengine.New(cfnengine.Config{Accounts: c.accounts, AWS: c.cfg, Functions: c.host, Logger: quiet,
		DeliverEvent: func(ctx context.Context, busArn string, event []byte) error { return c.bus.Deliver(ctx, busArn, event) }})
	c.bus = eventbus.New(eventbus.Config{AWS: c.cfg, Account: accounts.VendorAccount, Region: "us-east-1", Admits: c.engine.BusAdmits, Logger: quiet})
	t.Cleanup(c.engine.Wait)
	return c
}

// template returns the control-plane test template with names made unique per test: kumo
// keeps one state per process.
func controlPlane(t *testing.T, suffix string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/controlplane.json")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "ByocControlPlaneVendorBusTEST", "ByocVendorBus"+suffix)
	s = strings.ReplaceAll(s, "byoc-maintenance-test", "byoc-maintenance-"+suffix)
	return []byte(s)
}

func uniqueSuffix() string {
	return strings.ToLower(strings.ReplaceAll(time.Now().Format("150405.000000"), ".", ""))
}

func TestDeployControlPlaneIntoKumo(t *testing.T) {
	suffix := uniqueSuffix()
	c := newCloud(t)
	ctx := context.Background()
	stackName := "ByocControlPlane" + suffix
	outputs, warnings, err := c.engine.DeployTemplate(ctx, accounts.VendorAccount, stackName, controlPlane(t, suffix), nil)
	if err != nil {
		t.Fatalf("DeployTemplate: %v (warnings %v)", err, warnings)
	}
	if len(warnings) != 1 || warnings[0] != "Custom::LogRetention LogRetentionDDDD is not deployed by the local cloud (recorded only)" {
		t.Errorf("warnings = %q, want only the custom resource", warnings)
	}

	// Queues: the DLQ exists first, and the queue's redrive policy names it.
	sqsc := sqs.NewFromConfig(c.cfg)
	queueURL := outputs["StateQueueUrl"]
	attrs, err := sqsc.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(queueURL), AttributeNames: []sqstypes.QueueAttributeName{"All"}})
	if err != nil {
		t.Fatalf("state queue %s: %v", queueURL, err)
	}
	if attrs.Attributes["VisibilityTimeout"] != "180" || !strings.Contains(attrs.Attributes["RedrivePolicy"], `"maxReceiveCount":5`) ||
		!strings.Contains(attrs.Attributes["RedrivePolicy"], ":"+stackName+"-StateDLQ") {
		t.Errorf("state queue attributes = %v", attrs.Attributes)
	}

	// Table with its index and TTL.
	ddb := dynamodb.NewFromConfig(c.cfg, func(o *dynamodb.Options) { o.DisableValidateResponseChecksum = true })
	table, err := ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(outputs["TableName"])})
	if err != nil {
		t.Fatal(err)
	}
	if len(table.Table.KeySchema) != 2 || len(table.Table.GlobalSecondaryIndexes) != 1 || aws.ToString(table.Table.GlobalSecondaryIndexes[0].IndexName) != "gsi1" {
		t.Errorf("table = %+v", table.Table)
	}
	ttl, err := ddb.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(outputs["TableName"])})
	if err != nil || aws.ToString(ttl.TimeToLiveDescription.AttributeName) != "expiresAt" {
		t.Errorf("TTL = %+v, %v", ttl, err)
	}

	// Bus, rule and targets.
	events := eventbridge.NewFromConfig(c.cfg)
	bus := outputs["VendorEventBusName"]
	if _, err := events.DescribeEventBus(ctx, &eventbridge.DescribeEventBusInput{Name: aws.String(bus)}); err != nil {
		t.Errorf("bus %s: %v", bus, err)
	}
	if !strings.HasSuffix(outputs["VendorEventBusArn"], ":event-bus/"+bus) {
		t.Errorf("VendorEventBusArn = %q", outputs["VendorEventBusArn"])
	}
	rules, err := events.ListRules(ctx, &eventbridge.ListRulesInput{EventBusName: aws.String(bus)})
	if err != nil || len(rules.Rules) != 1 {
		t.Fatalf("rules on %s: %+v, %v", bus, rules, err)
	}
	if !strings.Contains(aws.ToString(rules.Rules[0].EventPattern), `"aws.cloudformation"`) {
		t.Errorf("rule pattern = %s", aws.ToString(rules.Rules[0].EventPattern))
	}
	targets, err := events.ListTargetsByRule(ctx, &eventbridge.ListTargetsByRuleInput{Rule: rules.Rules[0].Name, EventBusName: aws.String(bus)})
	if err != nil || len(targets.Targets) != 2 {
		t.Fatalf("targets = %+v, %v", targets, err)
	}

	// The function in kumo, with the template's environment, and its host process.
	fnName := c.physical(t, stackName, "StackEventsFunction3333")
	lam := lambda.NewFromConfig(c.cfg)
	fn, err := lam.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(fnName)})
	if err != nil {
		t.Fatal(err)
	}
	if fn.Environment.Variables["TABLE_NAME"] != outputs["TableName"] || aws.ToInt32(fn.MemorySize) != 256 || aws.ToInt32(fn.Timeout) != 30 {
		t.Errorf("function configuration = env %v, memory %d, timeout %d", fn.Environment.Variables, aws.ToInt32(fn.MemorySize), aws.ToInt32(fn.Timeout))
	}
	spec, ok := c.host.running[fnName]
	if !ok {
		t.Fatalf("no host process for %s (running %v)", fnName, c.host.running)
	}
	if spec.ByocName != "stackevents" || spec.Timeout != 30*time.Second || spec.MemoryMB != 256 || spec.Env["EVENT_BUS_NAME"] != bus ||
		spec.Arn != aws.ToString(fn.FunctionArn) || !strings.Contains(spec.RoleArn, ":role/"+stackName+"-StackEventsFunction") {
		t.Errorf("function spec = %+v", spec)
	}
	if p := c.accounts.PrincipalForAccessKey(spec.Credentials.AccessKeyID); p.RoleArn != spec.RoleArn {
		t.Errorf("the function's credentials act as %s, want its role %s", p.Arn, spec.RoleArn)
	}
	mappings, err := lam.ListEventSourceMappings(ctx, &lambda.ListEventSourceMappingsInput{FunctionName: aws.String(fnName)})
	if err != nil || len(mappings.EventSourceMappings) != 1 {
		t.Fatalf("event source mappings = %+v, %v", mappings, err)
	}
	m := mappings.EventSourceMappings[0]
	if aws.ToInt32(m.BatchSize) != 10 || !strings.HasSuffix(aws.ToString(m.EventSourceArn), ":"+c.physical(t, stackName, "StateQueue0A1B2C3D")) {
		t.Errorf("mapping = batch %d source %s", aws.ToInt32(m.BatchSize), aws.ToString(m.EventSourceArn))
	}

	// The state machine, with its definition substituted.
	machine, err := sfn.NewFromConfig(c.cfg).DescribeStateMachine(ctx, &sfn.DescribeStateMachineInput{StateMachineArn: aws.String(outputs["ProvisionStateMachineArn"])})
	if err != nil {
		t.Fatal(err)
	}
	if def := aws.ToString(machine.Definition); !strings.Contains(def, aws.ToString(fn.FunctionArn)) || strings.Contains(def, "${") {
		t.Errorf("definition = %s", def)
	}

	// Schedule group and bucket.
	if _, err := scheduler.NewFromConfig(c.cfg).GetScheduleGroup(ctx, &scheduler.GetScheduleGroupInput{Name: aws.String("byoc-maintenance-" + suffix)}); err != nil {
		t.Errorf("schedule group: %v", err)
	}
	if status := c.s3Status(t, http.MethodHead, "/"+outputs["TemplatesBucketName"], nil); status != http.StatusOK {
		t.Errorf("HEAD bucket %s = %d", outputs["TemplatesBucketName"], status)
	}

	// An update changes the function in place and restarts its process.
	updated := strings.Replace(string(controlPlane(t, suffix)), `"MemorySize": 256`, `"MemorySize": 512`, 1)
	if _, _, err := c.engine.DeployTemplate(ctx, accounts.VendorAccount, stackName, []byte(updated), nil); err != nil {
		t.Fatal(err)
	}
	fn, err = lam.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(fnName)})
	if err != nil || aws.ToInt32(fn.MemorySize) != 512 {
		t.Errorf("memory after update = %d (%v)", aws.ToInt32(fn.MemorySize), err)
	}
	if c.host.running[fnName].MemoryMB != 512 || !slices.Contains(c.host.stopped, fnName) {
		t.Errorf("host after update: running %+v, stopped %v", c.host.running[fnName], c.host.stopped)
	}
	// Deploying the same template again changes nothing and succeeds.
	if _, _, err := c.engine.DeployTemplate(ctx, accounts.VendorAccount, stackName, []byte(updated), nil); err != nil {
		t.Errorf("redeploy of the same template: %v", err)
	}

	// Deleting the stack through the API removes what it created, except what it retains.
	cfn := cloudformation.NewFromConfig(c.cfg)
	if _, err := cfn.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: aws.String(stackName)}); err != nil {
		t.Fatal(err)
	}
	c.engine.Wait()
	if _, err := sqsc.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(queueURL)}); err == nil {
		t.Errorf("the state queue survived the stack")
	}
	if _, err := lam.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(fnName)}); err == nil {
		t.Errorf("the function survived the stack")
	}
	if _, running := c.host.running[fnName]; running {
		t.Errorf("the function's process was not stopped")
	}
	if _, err := ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(outputs["TableName"])}); err != nil {
		t.Errorf("the retained table was deleted: %v", err)
	}
}

func TestDeployFailureRollsBackKumoResources(t *testing.T) {
	suffix := uniqueSuffix()
	c := newCloud(t)
	stackName := "Failing" + suffix
	c.engine.InjectFailure(accounts.VendorAccount, stackName, "ProvisionWorkflow9999", "injected: state machine refused")
	_, _, err := c.engine.DeployTemplate(context.Background(), accounts.VendorAccount, stackName, controlPlane(t, suffix), nil)
	if err == nil || !strings.Contains(err.Error(), "ROLLBACK_COMPLETE") || !strings.Contains(err.Error(), "ProvisionWorkflow9999 (AWS::StepFunctions::StateMachine): injected: state machine refused") {
		t.Fatalf("DeployTemplate error = %v", err)
	}
	if _, err := eventbridge.NewFromConfig(c.cfg).DescribeEventBus(context.Background(), &eventbridge.DescribeEventBusInput{Name: aws.String("ByocVendorBus" + suffix)}); err == nil {
		t.Errorf("the bus survived the rollback")
	}
	if len(c.host.running) != 0 {
		t.Errorf("functions still running after rollback: %v", c.host.running)
	}
}

// TestForwardedEventReachesTheVendorBus deploys the control plane, admits a customer with
// PutPermission, and applies the bootstrap stack in the customer account: its
// CREATE_COMPLETE travels through the customer rule and PutEvents into kumo's vendor bus,
// where the control plane's rule matches it.
func TestForwardedEventReachesTheVendorBus(t *testing.T) {
	suffix := uniqueSuffix()
	c := newCloud(t)
	ctx := context.Background()
	outputs, _, err := c.engine.DeployTemplate(ctx, accounts.VendorAccount, "Fwd"+suffix, controlPlane(t, suffix), nil)
	if err != nil {
		t.Fatal(err)
	}
	bus := outputs["VendorEventBusName"]
	if _, err := eventbridge.NewFromConfig(c.cfg).PutPermission(ctx, &eventbridge.PutPermissionInput{
		EventBusName: aws.String(bus), Action: aws.String("events:PutEvents"), Principal: aws.String(customer), StatementId: aws.String("customer-" + customer),
	}); err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile("../testdata/bootstrap.json")
	if err != nil {
		t.Fatal(err)
	}
	customerCfg := c.cfg.Copy()
	customerCfg.Credentials = credentials.StaticCredentialsProvider{Value: accounts.AdminCredentials(customer)}
	out, err := cloudformation.NewFromConfig(customerCfg).CreateStack(ctx, &cloudformation.CreateStackInput{
		StackName: aws.String("clickhouse-byoc-bootstrap"), TemplateBody: aws.String(string(body)),
		Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityNamedIam},
		Parameters: []cfntypes.Parameter{
			{ParameterKey: aws.String("ExternalId"), ParameterValue: aws.String("ext-0123456789abcdef0123456789abcdef")},
			{ParameterKey: aws.String("ControlPlaneRoleArn"), ParameterValue: aws.String("arn:aws:iam::000000000000:role/Provisioner")},
			{ParameterKey: aws.String("VendorEventBusArn"), ParameterValue: aws.String(outputs["VendorEventBusArn"])},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.engine.Wait()
	// The control plane's rule sends it to the state queue too: the message is the event as
	// CloudFormation emitted it in the customer account.
	got, err := sqs.NewFromConfig(c.cfg).ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(outputs["StateQueueUrl"]), WaitTimeSeconds: 2})
	if err != nil || len(got.Messages) != 1 {
		t.Fatalf("state queue: %+v, %v", got, err)
	}
	var event map[string]any
	if err := json.Unmarshal([]byte(aws.ToString(got.Messages[0].Body)), &event); err != nil {
		t.Fatal(err)
	}
	stackID := aws.ToString(out.StackId)
	if event["account"] != customer || event["source"] != "aws.cloudformation" || !reflect.DeepEqual(event["resources"], []any{stackID}) ||
		event["detail"].(map[string]any)["stack-id"] != stackID {
		t.Errorf("event on the state queue = %v", event)
	}
}

func (c *cloud) physical(t *testing.T, stackName, logicalID string) string {
	t.Helper()
	out, err := cloudformation.NewFromConfig(c.cfg).DescribeStackResource(context.Background(), &cloudformation.DescribeStackResourceInput{
		StackName: aws.String(stackName), LogicalResourceId: aws.String(logicalID)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.StackResourceDetail.PhysicalResourceId)
}

// s3Status sends a signed S3 request through the front door (the module has no S3 client)
// and returns its status.
func (c *cloud) s3Status(t *testing.T, method, path string, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(method, aws.ToString(c.cfg.BaseEndpoint)+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	creds, _ := c.cfg.Credentials.Retrieve(context.Background())
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hash, "s3", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
