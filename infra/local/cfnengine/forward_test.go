package cfnengine

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/byocloud/byoc/infra/local/accounts"
)

// forwardedStatuses lists "<stack name> <status>" of the forwarded Stack Status Change events.
func forwardedStatuses(events []forwardedEvent) []string {
	var out []string
	for _, ev := range events {
		detail := ev.body["detail"].(map[string]any)
		status := detail["status-details"].(map[string]any)["status"].(string)
		stackID := detail["stack-id"].(string)
		out = append(out, stackNameOf(stackID)+" "+status)
	}
	return out
}

func TestBootstrapForwardsStackEventsToTheVendorBus(t *testing.T) {
	f := newFixture(t)
	f.admit(customer)
	bootstrapID := f.createBootstrap(t)
	s := f.describe(t, f.customerCFN(), "clickhouse-byoc-bootstrap")
	if s.StackStatus != cfntypes.StackStatusCreateComplete {
		t.Fatalf("bootstrap: %s %q", s.StackStatus, aws.ToString(s.StackStatusReason))
	}
	if got := outputsOf(s)["ManagementRoleArn"]; got != "arn:aws:iam::111111111111:role/ClickHouseManagementRole" {
		t.Errorf("ManagementRoleArn = %q", got)
	}
	for _, p := range s.Parameters {
		if aws.ToString(p.ParameterKey) == "ExternalId" && aws.ToString(p.ParameterValue) != "****" {
			t.Errorf("NoEcho parameter shown as %q", aws.ToString(p.ParameterValue))
		}
	}

	// The rule exists once its resource is created, so the bootstrap stack's own
	// CREATE_COMPLETE is forwarded; its CREATE_IN_PROGRESS came before the rule.
	got := f.forwardedEvents()
	if !reflect.DeepEqual(forwardedStatuses(got), []string{"clickhouse-byoc-bootstrap CREATE_COMPLETE"}) {
		t.Fatalf("forwarded = %v", forwardedStatuses(got))
	}
	ev := got[0]
	if ev.busArn != vendorBusArn {
		t.Errorf("delivered to %s", ev.busArn)
	}
	// AWS's exact shape: envelope fields in order, detail with stack-id, status-details and
	// client-request-token.
	var keys []string
	dec := json.NewDecoder(strings.NewReader(string(ev.raw)))
	_, _ = dec.Token()
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var skip json.RawMessage
		_ = dec.Decode(&skip)
	}
	if want := []string{"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("envelope keys = %v, want %v", keys, want)
	}
	want := map[string]any{
		"version": "0", "detail-type": "CloudFormation Stack Status Change", "source": "aws.cloudformation",
		"account": customer, "region": "us-east-1", "resources": []any{bootstrapID},
		"detail": map[string]any{"stack-id": bootstrapID, "status-details": map[string]any{"status": "CREATE_COMPLETE", "status-reason": ""}, "client-request-token": ""},
	}
	for k, v := range want {
		if !reflect.DeepEqual(ev.body[k], v) {
			t.Errorf("event %s = %#v, want %#v", k, ev.body[k], v)
		}
	}
	if ts, err := time.Parse(time.RFC3339, ev.body["time"].(string)); err != nil || time.Since(ts) > time.Minute {
		t.Errorf("time = %v", ev.body["time"])
	}

	// Stacks named with the prefix are forwarded with every status; others are not.
	client := f.customerCFN()
	createInfra(t, f, client, "clickhouse-cloud-d1-infra")
	createInfra(t, f, client, "unrelated")
	f.engine.Wait()
	statuses := forwardedStatuses(f.forwardedEvents())
	wantStatuses := []string{"clickhouse-byoc-bootstrap CREATE_COMPLETE", "clickhouse-cloud-d1-infra CREATE_IN_PROGRESS", "clickhouse-cloud-d1-infra CREATE_COMPLETE"}
	if !reflect.DeepEqual(statuses, wantStatuses) {
		t.Errorf("forwarded = %v, want %v", statuses, wantStatuses)
	}

	// Deleting the bootstrap stack removes the rule: later events stall, as on AWS.
	if _, err := client.DeleteStack(context.Background(), &cloudformation.DeleteStackInput{StackName: aws.String("clickhouse-byoc-bootstrap")}); err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	before := len(f.forwardedEvents())
	if _, err := client.DeleteStack(context.Background(), &cloudformation.DeleteStackInput{StackName: aws.String("clickhouse-cloud-d1-infra")}); err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	after := forwardedStatuses(f.forwardedEvents())
	if !reflect.DeepEqual(after[before-1:], []string{"clickhouse-byoc-bootstrap DELETE_IN_PROGRESS"}) || len(after) != before {
		t.Errorf("after deleting the rule's stack, forwarded = %v", after[len(wantStatuses):])
	}
}

func TestNoDeliveryWithoutRuleOrAdmission(t *testing.T) {
	t.Run("rule removed from the template: onboarding stalls", func(t *testing.T) {
		f := newFixture(t)
		f.admit(customer)
		var tpl map[string]any
		_ = json.Unmarshal([]byte(readFile(t, "testdata/bootstrap.json")), &tpl)
		delete(tpl["Resources"].(map[string]any), "ForwardStackEvents")
		body, _ := json.Marshal(tpl)
		_, err := f.customerCFN().CreateStack(context.Background(), &cloudformation.CreateStackInput{
			StackName: aws.String("clickhouse-byoc-bootstrap"), TemplateBody: aws.String(string(body)), Parameters: bootstrapParams(),
			Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityNamedIam},
		})
		if err != nil {
			t.Fatal(err)
		}
		f.engine.Wait()
		if s := f.describe(t, f.customerCFN(), "clickhouse-byoc-bootstrap"); s.StackStatus != cfntypes.StackStatusCreateComplete {
			t.Fatalf("status %s", s.StackStatus)
		}
		if got := f.forwardedEvents(); len(got) != 0 {
			t.Errorf("forwarded without a rule: %v", forwardedStatuses(got))
		}
	})
	t.Run("vendor bus does not admit the account", func(t *testing.T) {
		f := newFixture(t)
		f.admit(otherCustomer)
		f.createBootstrap(t)
		if got := f.forwardedEvents(); len(got) != 0 {
			t.Errorf("forwarded to a bus that does not admit the account: %v", forwardedStatuses(got))
		}
		// Admitting it later lets the next events through; removing the permission stops them.
		f.admit(customer)
		createInfra(t, f, f.customerCFN(), "clickhouse-cloud-x")
		f.engine.Wait()
		if n := len(f.forwardedEvents()); n != 2 {
			t.Errorf("%d events forwarded after admission, want 2", n)
		}
		_, err := f.events().RemovePermission(context.Background(), &eventbridge.RemovePermissionInput{EventBusName: aws.String("byoc"), StatementId: aws.String("customer-" + customer)})
		if err != nil {
			t.Fatal(err)
		}
		createInfra(t, f, f.customerCFN(), "clickhouse-cloud-y")
		f.engine.Wait()
		if n := len(f.forwardedEvents()); n != 2 {
			t.Errorf("%d events forwarded after the permission was removed, want still 2", n)
		}
	})
	t.Run("target role may not put events on the bus", func(t *testing.T) {
		f := newFixture(t)
		f.admit(customer)
		body := strings.Replace(readFile(t, "testdata/bootstrap.json"), `"Resource": {"Ref": "VendorEventBusArn"}`,
			`"Resource": "arn:aws:events:us-east-1:000000000000:event-bus/other"`, 1)
		_, err := f.customerCFN().CreateStack(context.Background(), &cloudformation.CreateStackInput{
			StackName: aws.String("clickhouse-byoc-bootstrap"), TemplateBody: aws.String(body), Parameters: bootstrapParams(),
			Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityNamedIam},
		})
		if err != nil {
			t.Fatal(err)
		}
		f.engine.Wait()
		if got := f.forwardedEvents(); len(got) != 0 {
			t.Errorf("forwarded through a role without events:PutEvents on the bus: %v", forwardedStatuses(got))
		}
	})
}

func TestInvalidEventPatternFailsTheRule(t *testing.T) {
	f := newFixture(t)
	body := strings.Replace(readFile(t, "testdata/bootstrap.json"), `"source": ["aws.cloudformation"]`, `"source": "aws.cloudformation"`, 1)
	_, err := f.customerCFN().CreateStack(context.Background(), &cloudformation.CreateStackInput{
		StackName: aws.String("clickhouse-byoc-bootstrap"), TemplateBody: aws.String(body), Parameters: bootstrapParams(),
		Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityNamedIam},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	var reason string
	for _, ev := range f.observedEvents() {
		if ev.ResourceStatus == "CREATE_FAILED" {
			reason = ev.LogicalResourceID + ": " + ev.ResourceStatusReason
		}
	}
	if reason != `ForwardStackEvents: Event pattern is not valid. Reason: "source" must be an object or an array` {
		t.Errorf("failure = %q", reason)
	}
	if s := f.describe(t, f.customerCFN(), "clickhouse-byoc-bootstrap"); s.StackStatus != cfntypes.StackStatusRollbackComplete {
		t.Errorf("status = %s", s.StackStatus)
	}
	// The rollback removed the roles: the control plane cannot assume the management role.
	if _, ok := f.accounts.LookupRole(customer, "ClickHouseManagementRole"); ok {
		t.Errorf("the management role survived the rollback")
	}
}

func TestAssumeRoleFollowsTheBootstrapStack(t *testing.T) {
	f := newFixture(t)
	provisioner, err := f.accounts.FunctionCredentials(controlPlane, "byoc-provision", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	assume := func(externalID string) (*sts.AssumeRoleOutput, error) {
		return f.sts(provisioner).AssumeRole(context.Background(), &sts.AssumeRoleInput{
			RoleArn: aws.String("arn:aws:iam::111111111111:role/ClickHouseManagementRole"), RoleSessionName: aws.String("d1"),
			ExternalId: aws.String(externalID),
		})
	}
	if _, err := assume(externalID); err == nil {
		t.Fatal("AssumeRole succeeded before the bootstrap stack created the role")
	}
	f.createBootstrap(t)
	_, err = assume("ext-wrongwrongwrongwrongwrongwrongwrong")
	assertAPIError(t, err, "AccessDenied", "is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::111111111111:role/ClickHouseManagementRole")
	out, err := assume(externalID)
	if err != nil {
		t.Fatal(err)
	}
	// CloudFormation calls made with the assumed role act in the customer account.
	assumed := f.cfn(aws.Credentials{AccessKeyID: aws.ToString(out.Credentials.AccessKeyId), SecretAccessKey: aws.ToString(out.Credentials.SecretAccessKey),
		SessionToken: aws.ToString(out.Credentials.SessionToken)})
	createInfra(t, f, assumed, "clickhouse-cloud-d1")
	f.engine.Wait()
	if s := f.describe(t, f.customerCFN(), "clickhouse-cloud-d1"); s.StackStatus != cfntypes.StackStatusCreateComplete ||
		!strings.Contains(aws.ToString(s.StackId), ":111111111111:stack/") {
		t.Errorf("stack made with the assumed role: %s %s", s.StackStatus, aws.ToString(s.StackId))
	}
	vendor := f.cfn(aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"})
	if _, err := vendor.DescribeStacks(context.Background(), &cloudformation.DescribeStacksInput{StackName: aws.String("clickhouse-cloud-d1")}); err == nil {
		t.Errorf("the vendor account sees the customer's stack")
	}
	// Deleting the bootstrap stack removes the role: no more AssumeRole.
	if _, err := f.customerCFN().DeleteStack(context.Background(), &cloudformation.DeleteStackInput{StackName: aws.String("clickhouse-byoc-bootstrap")}); err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	_, err = assume(externalID)
	assertAPIError(t, err, "AccessDenied", "is not authorized")
}

func TestBusPermissionRejectsBadInput(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name     string
		in       *eventbridge.PutPermissionInput
		contains string
	}{
		{"bad action", &eventbridge.PutPermissionInput{EventBusName: aws.String("byoc"), Action: aws.String("events:*"), Principal: aws.String(customer), StatementId: aws.String("s")}, "Action"},
		{"bad principal", &eventbridge.PutPermissionInput{EventBusName: aws.String("byoc"), Action: aws.String("events:PutEvents"), Principal: aws.String("bob"), StatementId: aws.String("s")}, "Principal"},
		{"bad statement id", &eventbridge.PutPermissionInput{EventBusName: aws.String("byoc"), Action: aws.String("events:PutEvents"), Principal: aws.String(customer), StatementId: aws.String("no spaces")}, "StatementId"},
		{"policy and statement", &eventbridge.PutPermissionInput{EventBusName: aws.String("byoc"), Policy: aws.String(`{"Statement":[]}`), StatementId: aws.String("s")}, "Policy cannot be combined"},
		{"bad policy", &eventbridge.PutPermissionInput{EventBusName: aws.String("byoc"), Policy: aws.String(`{"Statement":[]}`)}, "Policy: policy document has no Statement"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.events().PutPermission(context.Background(), c.in)
			assertAPIError(t, err, "ValidationException", c.contains)
			if ok, _ := f.engine.busAdmits(vendorBusArn, accounts.RootPrincipal(customer), "aws.cloudformation"); ok {
				t.Errorf("a rejected PutPermission admitted the account")
			}
		})
	}
	_, err := f.events().RemovePermission(context.Background(), &eventbridge.RemovePermissionInput{EventBusName: aws.String("byoc"), StatementId: aws.String("nope")})
	assertAPIError(t, err, "ResourceNotFoundException", "Statement with the provided id does not exist.")

	// A customer account may not change the vendor bus's policy.
	customerEvents := eventbridge.New(eventbridge.Options{Region: "us-east-1", BaseEndpoint: aws.String(f.url),
		Credentials: credentials.StaticCredentialsProvider{Value: accounts.AdminCredentials(otherCustomer)}})
	_, err = customerEvents.PutPermission(context.Background(), &eventbridge.PutPermissionInput{EventBusName: aws.String("byoc"),
		Action: aws.String("events:PutEvents"), Principal: aws.String(otherCustomer), StatementId: aws.String("self")})
	assertAPIError(t, err, "AccessDeniedException", "is not authorized to perform: PutPermission")
	if f.engine.BusAdmits(vendorBusArn, otherCustomer, "aws.cloudformation") {
		t.Errorf("a customer admitted itself to the vendor bus")
	}

	// What the local EventBridge asks before a cross-account PutEvents.
	f.admit(customer)
	if !f.engine.BusAdmits(vendorBusArn, customer, "aws.cloudformation") || f.engine.BusAdmits(vendorBusArn, otherCustomer, "aws.cloudformation") ||
		f.engine.BusAdmits("arn:aws:events:us-east-1:000000000000:event-bus/other", customer, "aws.cloudformation") {
		t.Errorf("BusAdmits does not follow the PutPermission statements")
	}
}
