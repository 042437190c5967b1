package vendortest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/byocloud/byoc/infra/local/accounts"
	"github.com/byocloud/byoc/infra/local/cdkout"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/servicestate"
)

// cdkTemplate reads a template the CDK app synthesized into cdk.out/ (cdkout.Template).
func cdkTemplate(t testing.TB, name string) []byte { return cdkout.Template(t, name) }

// deployCDKControlPlane deploys the synthesized control-plane template in the vendor
// account under unique names (kumo keeps one state per process) and returns its outputs
// and warnings.
func (c *cloud) deployCDKControlPlane(t *testing.T) (map[string]string, []string) {
	t.Helper()
	stackName := "ByocControlPlane" + uniqueSuffix()
	body := strings.ReplaceAll(string(cdkTemplate(t, "ByocControlPlane.template.json")), "VendorBus", "VendorBus"+uniqueSuffix())
	outputs, warnings, err := c.engine.DeployTemplate(context.Background(), accounts.VendorAccount, stackName, []byte(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	return outputs, warnings
}

// TestCDKControlPlaneOnboarding deploys the real control-plane template into kumo and runs
// the account side of onboarding on the real bootstrap template: the invite function's
// PutPermission admits the customer, the bootstrap stack's completion reaches the vendor
// bus and its onboard rule, and only the provision function's role may assume the
// management role, with the right ExternalId.
func TestCDKControlPlaneOnboarding(t *testing.T) {
	c := newCloud(t)
	ctx := context.Background()
	outputs, warnings := c.deployCDKControlPlane(t)
	if len(warnings) != 0 {
		t.Errorf("warnings deploying the control plane: %q", warnings)
	}
	byoc := map[string]bool{}
	for _, spec := range c.host.running {
		byoc[spec.ByocName] = true
		if spec.Credentials.AccessKeyID == "" || len(spec.Env) == 0 {
			t.Errorf("function %s started without credentials or environment", spec.ByocName)
		}
	}
	for _, fn := range contract.Functions {
		if !byoc[fn] {
			t.Errorf("function %s was not started (started: %v)", fn, byoc)
		}
	}
	// The state sweep's schedule is created in the cloud's Scheduler, with its input.
	sweepName := outputs["StatesweepFunctionName"]
	sched := scheduler.NewFromConfig(c.cfg)
	list, err := sched.ListSchedules(ctx, &scheduler.ListSchedulesInput{})
	if err != nil {
		t.Fatal(err)
	}
	var sweeps int
	for _, sum := range list.Schedules {
		if sum.Target == nil || !strings.HasSuffix(aws.ToString(sum.Target.Arn), ":function:"+sweepName) {
			continue
		}
		sweeps++
		got, err := sched.GetSchedule(ctx, &scheduler.GetScheduleInput{Name: sum.Name, GroupName: sum.GroupName})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(got.ScheduleExpression) != "rate(1 minute)" || aws.ToString(got.Target.Input) != contract.StateSweepScheduleInput {
			t.Errorf("sweep schedule = %s with input %s", aws.ToString(got.ScheduleExpression), aws.ToString(got.Target.Input))
		}
	}
	if sweeps != 1 {
		t.Errorf("%d schedules target statesweep (%s), want 1", sweeps, sweepName)
	}

	bus := outputs["VendorEventBusName"]
	if _, err := eventbridge.NewFromConfig(c.cfg).PutPermission(ctx, &eventbridge.PutPermissionInput{
		EventBusName: aws.String(bus), Action: aws.String("events:PutEvents"), Principal: aws.String(customer), StatementId: aws.String("customer-" + customer),
	}); err != nil {
		t.Fatal(err)
	}
	// Admitted, the customer may put CloudFormation's events (its forwarding rule's), and
	// nothing else: the template's statement denies every other source to other accounts.
	busArn := outputs["VendorEventBusArn"]
	if !c.engine.BusAdmits(busArn, customer, contract.SourceCloudFormation) {
		t.Errorf("the admitted customer may not forward its stack events")
	}
	for _, source := range []string{contract.SourceState, "byoc.anything", "custom"} {
		if c.engine.BusAdmits(busArn, customer, source) {
			t.Errorf("the admitted customer may put %s events on the vendor bus", source)
		}
	}
	const externalID = "ext-0123456789abcdef0123456789abcdef"
	c.registerRuntime(outputs["OnboardFunctionName"])
	customerCfg := c.cfg.Copy()
	customerCfg.Credentials = credentials.StaticCredentialsProvider{Value: accounts.AdminCredentials(customer)}
	created, err := cloudformation.NewFromConfig(customerCfg).CreateStack(ctx, &cloudformation.CreateStackInput{
		StackName: aws.String(contract.BootstrapStackName), TemplateBody: aws.String(string(cdkTemplate(t, "ByocBootstrap.template.json"))),
		Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityNamedIam},
		Parameters: []cfntypes.Parameter{
			{ParameterKey: aws.String(contract.BootstrapParamExternalID), ParameterValue: aws.String(externalID)},
			{ParameterKey: aws.String(contract.BootstrapParamControlPlaneRoleArn), ParameterValue: aws.String(outputs["ProvisionerRoleArn"])},
			{ParameterKey: aws.String(contract.BootstrapParamVendorEventBusArn), ParameterValue: aws.String(outputs["VendorEventBusArn"])},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.engine.Wait()
	// The onboard function receives the event exactly as CloudFormation emitted it in the
	// customer account (the test plays the function's runtime on kumo's Runtime API).
	event := c.nextInvocation(t, outputs["OnboardFunctionName"])
	detail, _ := event["detail"].(map[string]any)
	if event["account"] != customer || event["detail-type"] != contract.DetailTypeStackStatusChange || detail["stack-id"] != aws.ToString(created.StackId) ||
		detail["status-details"].(map[string]any)["status"] != "CREATE_COMPLETE" {
		t.Errorf("onboard received %v", event)
	}

	managementRole := "arn:aws:iam::" + customer + ":role/" + contract.ManagementRoleName
	assume := func(roleArn, externalID string) error {
		creds, err := c.accounts.FunctionCredentials(roleArn, "test", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		cfg := c.cfg.Copy()
		cfg.Credentials = credentials.StaticCredentialsProvider{Value: creds}
		_, err = sts.NewFromConfig(cfg).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(managementRole), RoleSessionName: aws.String("dep1abc"),
			ExternalId: aws.String(externalID), DurationSeconds: aws.Int32(900)})
		return err
	}
	if err := assume(outputs["ProvisionerRoleArn"], externalID); err != nil {
		t.Errorf("the provision role cannot assume the management role: %v", err)
	}
	var apiErr smithy.APIError
	if err := assume(outputs["ProvisionerRoleArn"], "ext-wrong-wrong-wrong-wrong-wrong-wrong"); !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" {
		t.Errorf("wrong ExternalId: %v, want AccessDenied", err)
	}
	// Other functions' roles are not trusted by the management role (nor allowed by their own policies).
	inviteRole := c.host.running[outputs["InviteFunctionName"]].RoleArn
	if err := assume(inviteRole, externalID); !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" {
		t.Errorf("the invite role assuming the management role: %v, want AccessDenied", err)
	}
}

// registerRuntime makes kumo see a Runtime API handler for the function (one poll), as the
// function's process does when the local cloud starts it: kumo drops asynchronous
// invocations of functions nobody has polled for.
func (c *cloud) registerRuntime(function string) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.kumoURL+"/_runtime/"+function+"/2018-06-01/runtime/invocation/next", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
}

// nextInvocation takes the next invocation of a function from kumo's Runtime API, as the
// function's bootstrap would, answers it, and returns its payload.
func (c *cloud) nextInvocation(t *testing.T, function string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	base := c.kumoURL + "/_runtime/" + function + "/2018-06-01/runtime/invocation/"
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"next", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("no invocation of %s: %v", function, err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
	done, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+id+"/response", strings.NewReader("null"))
	if resp, err := http.DefaultClient.Do(done); err == nil {
		resp.Body.Close()
	}
	var payload map[string]any
	if err := json.Unmarshal(data, &payload); err != nil {
		t.Fatalf("invocation payload of %s is not JSON: %s", function, data)
	}
	return payload
}

// TestCDKOperatorAlertsReachTheTopic deploys the real control-plane template and puts the
// state functions' alerts on its vendor bus: the operator rules publish a critical
// deployment alert and a security rejection to the operator topic (created in kumo), whose
// SQS subscriber receives each event whole; a warning reaches nobody.
func TestCDKOperatorAlertsReachTheTopic(t *testing.T) {
	c := newCloud(t)
	ctx := context.Background()
	outputs, _ := c.deployCDKControlPlane(t)
	topicArn := outputs["OperatorTopicArn"]
	if topicArn == "" {
		t.Fatalf("the control plane has no OperatorTopicArn output (outputs %v): run make synth", outputs)
	}
	topics := sns.NewFromConfig(c.cfg)
	if _, err := topics.GetTopicAttributes(ctx, &sns.GetTopicAttributesInput{TopicArn: aws.String(topicArn)}); err != nil {
		t.Fatalf("the operator topic %s was not created: %v", topicArn, err)
	}
	queues := sqs.NewFromConfig(c.cfg)
	q, err := queues.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("operators-" + uniqueSuffix())})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := queues.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{"QueueArn"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := topics.Subscribe(ctx, &sns.SubscribeInput{TopicArn: aws.String(topicArn), Protocol: aws.String("sqs"),
		Endpoint: aws.String(attrs.Attributes["QueueArn"]), Attributes: map[string]string{"RawMessageDelivery": "true"}}); err != nil {
		t.Fatal(err)
	}

	envelopeFrom := func(account, id, detailType string, detail any) []byte {
		raw, _ := json.Marshal(map[string]any{"version": "0", "id": id, "detail-type": detailType, "source": contract.SourceState,
			"account": account, "time": "2026-11-25T12:00:00Z", "region": "us-east-1", "resources": []any{}, "detail": detail})
		return raw
	}
	envelope := func(id, detailType string, detail any) []byte {
		return envelopeFrom(accounts.VendorAccount, id, detailType, detail)
	}
	alert := func(from, to health.Health) health.Alert {
		a, _ := health.AlertFor(health.Transition{Scope: health.ScopeDeployment, DeploymentID: "dep1", From: from, To: to})
		return a
	}
	critical := envelope("e-critical", contract.DetailTypeDeploymentHealthChanged, alert(health.Healthy, health.Unhealthy))
	warning := envelope("e-warning", contract.DetailTypeDeploymentHealthChanged, alert(health.Healthy, health.Degraded))
	forged := envelope("e-forged", contract.DetailTypeStateMessageRejected, servicestate.Rejection{MessageID: "m-1", Reason: "forged-sender", Security: true})
	// The same alerts put by a customer account (had the bus policy let them in) match no
	// operator rule: every byoc.* rule names the vendor's account.
	fromCustomer := [][]byte{
		envelopeFrom(customer, "e-customer-critical", contract.DetailTypeDeploymentHealthChanged, alert(health.Healthy, health.Unhealthy)),
		envelopeFrom(customer, "e-customer-recovered", contract.DetailTypeDeploymentHealthChanged, alert(health.Unhealthy, health.Healthy)),
		envelopeFrom(customer, "e-customer-forged", contract.DetailTypeStateMessageRejected, servicestate.Rejection{MessageID: "m-2", Reason: "forged-sender", Security: true}),
	}
	busArn := outputs["VendorEventBusArn"]
	for _, e := range append([][]byte{warning, critical, forged}, fromCustomer...) {
		if err := c.bus.Deliver(ctx, busArn, e); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < 2 && time.Now().Before(deadline) {
		out, err := queues.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			got = append(got, aws.ToString(m.Body))
		}
	}
	// One more look: the warning must not arrive late either.
	if out, err := queues.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1}); err == nil {
		for _, m := range out.Messages {
			got = append(got, aws.ToString(m.Body))
		}
	}
	slices.Sort(got)
	want := []string{string(critical), string(forged)}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the operators' subscriber received %q, want exactly the vendor's critical alert and forged sender:\n%q", got, want)
	}
}
