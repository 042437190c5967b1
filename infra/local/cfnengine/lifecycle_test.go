package cfnengine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/smithy-go"

	"github.com/byocloud/byoc/infra/local/accounts"
)

func createInfra(t *testing.T, f *fixture, client *cloudformation.Client, name string, p ...string) string {
	t.Helper()
	out, err := client.CreateStack(context.Background(), &cloudformation.CreateStackInput{
		StackName: aws.String(name), TemplateBody: aws.String(readFile(t, "testdata/infra.json")),
		Parameters: params(append([]string{"DeploymentId", "d1"}, p...)...), ClientRequestToken: aws.String("token-" + name),
	})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.StackId)
}

func TestCreateStackCompletesWithOutputsEventsAndResources(t *testing.T) {
	f := newFixture(t)
	client := f.customerCFN()
	id := createInfra(t, f, client, "clickhouse-cloud-infra")
	if !strings.HasPrefix(id, "arn:aws:cloudformation:us-east-1:111111111111:stack/clickhouse-cloud-infra/") {
		t.Errorf("StackId = %q", id)
	}
	waiter := cloudformation.NewStackCreateCompleteWaiter(client, func(o *cloudformation.StackCreateCompleteWaiterOptions) {
		o.MinDelay, o.MaxDelay = 5*time.Millisecond, 20*time.Millisecond
	})
	if err := waiter.Wait(context.Background(), &cloudformation.DescribeStacksInput{StackName: aws.String(id)}, 5*time.Second); err != nil {
		t.Fatalf("SDK waiter: %v", err)
	}
	s := f.describe(t, client, "clickhouse-cloud-infra")
	if s.StackStatus != cfntypes.StackStatusCreateComplete || aws.ToString(s.Description) != "a small infrastructure-like stack" {
		t.Errorf("stack = %s %q", s.StackStatus, aws.ToString(s.Description))
	}
	out := outputsOf(s)
	if !strings.HasPrefix(out["VpcId"], "vpc-") || len(out["VpcId"]) != 21 {
		t.Errorf("VpcId output = %q, want vpc-<17 hex>", out["VpcId"])
	}
	want := map[string]string{"SubnetAz": "us-east-1a", "SubnetCidr": "10.0.0.0/20", "ClusterName": "clickhouse-cloud-d1"}
	for k, v := range want {
		if out[k] != v {
			t.Errorf("output %s = %q, want %q", k, out[k], v)
		}
	}
	if !strings.HasPrefix(out["ClusterEndpoint"], "https://") || !strings.HasSuffix(out["ClusterEndpoint"], ".gr7.us-east-1.eks.amazonaws.com") {
		t.Errorf("ClusterEndpoint = %q", out["ClusterEndpoint"])
	}
	if !strings.HasPrefix(out["BucketName"], "clickhouse-cloud-infra-bucket-") || strings.ToLower(out["BucketName"]) != out["BucketName"] {
		t.Errorf("BucketName = %q, want a lower-case generated name", out["BucketName"])
	}
	for _, o := range s.Outputs {
		if aws.ToString(o.OutputKey) == "ClusterName" && aws.ToString(o.ExportName) != "clickhouse-cloud-infra-cluster" {
			t.Errorf("ClusterName export = %q", aws.ToString(o.ExportName))
		}
	}
	if got := f.statuses(t, client, "clickhouse-cloud-infra"); !reflect.DeepEqual(got, []string{"CREATE_IN_PROGRESS", "CREATE_COMPLETE"}) {
		t.Errorf("stack statuses = %v", got)
	}
	events, err := client.DescribeStackEvents(context.Background(), &cloudformation.DescribeStackEventsInput{StackName: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	first := events.StackEvents[len(events.StackEvents)-1]
	if aws.ToString(first.ResourceStatusReason) != "User Initiated" || aws.ToString(first.ClientRequestToken) != "token-clickhouse-cloud-infra" {
		t.Errorf("first event = %+v", first)
	}
	res, err := client.DescribeStackResources(context.Background(), &cloudformation.DescribeStackResourcesInput{StackName: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range res.StackResources {
		order = append(order, aws.ToString(r.LogicalResourceId))
		if r.ResourceStatus != cfntypes.ResourceStatusCreateComplete || aws.ToString(r.PhysicalResourceId) == "" {
			t.Errorf("resource %+v", r)
		}
	}
	if !reflect.DeepEqual(order, []string{"Bucket", "Vpc", "Subnet1", "Cluster"}) {
		t.Errorf("resources in creation order = %v", order)
	}
	tpl, err := client.GetTemplate(context.Background(), &cloudformation.GetTemplateInput{StackName: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(tpl.TemplateBody) != readFile(t, "testdata/infra.json") {
		t.Errorf("GetTemplate did not return the template as given")
	}
	// Another account does not see the stack.
	if _, err := f.cfn(accounts.AdminCredentials(otherCustomer)).DescribeStacks(context.Background(),
		&cloudformation.DescribeStacksInput{StackName: aws.String("clickhouse-cloud-infra")}); err == nil {
		t.Errorf("another account can describe the stack")
	}
}

func TestConditionsSkipResourcesAndOutputs(t *testing.T) {
	f := newFixture(t)
	client := f.customerCFN()
	createInfra(t, f, client, "no-bucket", "WithBucket", "no")
	f.engine.Wait()
	s := f.describe(t, client, "no-bucket")
	if _, ok := outputsOf(s)["BucketName"]; ok {
		t.Errorf("output of a conditional resource is present: %v", outputsOf(s))
	}
	res, err := client.ListStackResources(context.Background(), &cloudformation.ListStackResourcesInput{StackName: aws.String("no-bucket")})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.StackResourceSummaries) != 3 {
		t.Errorf("%d resources, want 3 (no bucket)", len(res.StackResourceSummaries))
	}
}

func TestDelayKeepsStackInProgress(t *testing.T) {
	clock := newManualClock()
	f := newFixture(t, func(c *Config) { c.Delay, c.Clock = time.Minute, clock })
	client := f.customerCFN()
	createInfra(t, f, client, "slow")
	clock.awaitDelay(t)
	if s := f.describe(t, client, "slow"); s.StackStatus != cfntypes.StackStatusCreateInProgress || len(s.Outputs) != 0 {
		t.Errorf("during the delay: %s with %d outputs, want CREATE_IN_PROGRESS and none", s.StackStatus, len(s.Outputs))
	}
	// An update is refused while the create runs.
	_, err := client.UpdateStack(context.Background(), &cloudformation.UpdateStackInput{StackName: aws.String("slow"), UsePreviousTemplate: aws.Bool(true),
		Parameters: params("DeploymentId", "d2")})
	assertAPIError(t, err, "ValidationError", "is in CREATE_IN_PROGRESS state and can not be updated.")
	// A delete waits for the create and then runs.
	if _, err := client.DeleteStack(context.Background(), &cloudformation.DeleteStackInput{StackName: aws.String("slow")}); err != nil {
		t.Fatal(err)
	}
	clock.release()
	clock.awaitDelay(t)
	clock.release()
	f.engine.Wait()
	s := f.describe(t, client, f.observedEvents()[0].StackID)
	if s.StackStatus != cfntypes.StackStatusDeleteComplete {
		t.Errorf("status = %s, want DELETE_COMPLETE", s.StackStatus)
	}
	if got := f.statuses(t, client, f.observedEvents()[0].StackID); !reflect.DeepEqual(got, []string{"CREATE_IN_PROGRESS", "CREATE_COMPLETE", "DELETE_IN_PROGRESS", "DELETE_COMPLETE"}) {
		t.Errorf("statuses = %v", got)
	}
}

func TestInjectedFailureRollsBackThenRecreateSucceeds(t *testing.T) {
	f := newFixture(t)
	client := f.customerCFN()
	f.engine.InjectFailure(customer, "clickhouse-cloud-infra", "Cluster", "Resource handler returned message: \"Cannot create cluster: insufficient capacity\"")
	createInfra(t, f, client, "clickhouse-cloud-infra")
	f.engine.Wait()
	s := f.describe(t, client, "clickhouse-cloud-infra")
	if s.StackStatus != cfntypes.StackStatusRollbackComplete {
		t.Fatalf("status = %s, want ROLLBACK_COMPLETE", s.StackStatus)
	}
	if got := f.statuses(t, client, "clickhouse-cloud-infra"); !reflect.DeepEqual(got, []string{"CREATE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "ROLLBACK_COMPLETE"}) {
		t.Errorf("statuses = %v", got)
	}
	var failed, rollbackReason string
	for _, ev := range f.observedEvents() {
		if ev.ResourceStatus == "CREATE_FAILED" {
			failed = ev.LogicalResourceID + ": " + ev.ResourceStatusReason
		}
		if ev.ResourceStatus == "ROLLBACK_IN_PROGRESS" {
			rollbackReason = ev.ResourceStatusReason
		}
	}
	if failed != `Cluster: Resource handler returned message: "Cannot create cluster: insufficient capacity"` {
		t.Errorf("failed resource event = %q", failed)
	}
	if rollbackReason != "The following resource(s) failed to create: [Cluster]. Rollback requested by user." {
		t.Errorf("rollback reason = %q", rollbackReason)
	}
	res, _ := client.DescribeStackResources(context.Background(), &cloudformation.DescribeStackResourcesInput{StackName: aws.String("clickhouse-cloud-infra")})
	if len(res.StackResources) != 0 {
		t.Errorf("%d resources left after rollback", len(res.StackResources))
	}
	// ROLLBACK_COMPLETE cannot be updated, only deleted; then the name can be reused, and the
	// injection (one failure) is spent.
	_, err := client.UpdateStack(context.Background(), &cloudformation.UpdateStackInput{StackName: aws.String("clickhouse-cloud-infra"),
		UsePreviousTemplate: aws.Bool(true), Parameters: params("DeploymentId", "d2")})
	assertAPIError(t, err, "ValidationError", "is in ROLLBACK_COMPLETE state and can not be updated.")
	_, err = client.CreateStack(context.Background(), &cloudformation.CreateStackInput{StackName: aws.String("clickhouse-cloud-infra"),
		TemplateBody: aws.String(readFile(t, "testdata/infra.json")), Parameters: params("DeploymentId", "d1")})
	assertAPIError(t, err, "AlreadyExistsException", "Stack [clickhouse-cloud-infra] already exists")
	if _, err := client.DeleteStack(context.Background(), &cloudformation.DeleteStackInput{StackName: aws.String("clickhouse-cloud-infra")}); err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	second := createInfra(t, f, client, "clickhouse-cloud-infra")
	f.engine.Wait()
	if s := f.describe(t, client, second); s.StackStatus != cfntypes.StackStatusCreateComplete {
		t.Errorf("recreated stack status = %s", s.StackStatus)
	}
	if second == aws.ToString(s.StackId) {
		t.Errorf("the recreated stack kept the old stack id")
	}
}

func TestDisableRollbackAndOnFailureDelete(t *testing.T) {
	f := newFixture(t)
	client := f.customerCFN()
	f.engine.InjectFailure(customer, "keep", "", "boom")
	_, err := client.CreateStack(context.Background(), &cloudformation.CreateStackInput{StackName: aws.String("keep"),
		TemplateBody: aws.String(readFile(t, "testdata/infra.json")), Parameters: params("DeploymentId", "d1"), DisableRollback: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	f.engine.InjectFailure(customer, "drop", "Subnet1", "boom")
	_, err = client.CreateStack(context.Background(), &cloudformation.CreateStackInput{StackName: aws.String("drop"),
		TemplateBody: aws.String(readFile(t, "testdata/infra.json")), Parameters: params("DeploymentId", "d1"), OnFailure: cfntypes.OnFailureDelete})
	if err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	if s := f.describe(t, client, "keep"); s.StackStatus != cfntypes.StackStatusCreateFailed ||
		aws.ToString(s.StackStatusReason) != "The following resource(s) failed to create: [Bucket]. " {
		t.Errorf("keep: %s %q", s.StackStatus, aws.ToString(s.StackStatusReason))
	}
	if got := f.statuses(t, client, f.stackIDOf("drop")); !reflect.DeepEqual(got,
		[]string{"CREATE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "ROLLBACK_COMPLETE", "DELETE_IN_PROGRESS", "DELETE_COMPLETE"}) {
		t.Errorf("drop statuses = %v", got)
	}
}

func (f *fixture) stackIDOf(name string) string {
	for _, ev := range f.observedEvents() {
		if ev.StackName == name {
			return ev.StackID
		}
	}
	f.t.Fatalf("no events of stack %s", name)
	return ""
}

func TestUpdateStack(t *testing.T) {
	f := newFixture(t)
	client := f.customerCFN()
	createInfra(t, f, client, "infra")
	f.engine.Wait()
	before := outputsOf(f.describe(t, client, "infra"))

	// Changing the VPC CIDR updates the VPC and subnet; dropping the bucket deletes it in the
	// cleanup phase, but its DeletionPolicy Retain keeps it (DELETE_SKIPPED).
	_, err := client.UpdateStack(context.Background(), &cloudformation.UpdateStackInput{StackName: aws.String("infra"), UsePreviousTemplate: aws.Bool(true),
		Parameters: []cfntypes.Parameter{
			{ParameterKey: aws.String("DeploymentId"), UsePreviousValue: aws.Bool(true)},
			{ParameterKey: aws.String("VpcCidr"), ParameterValue: aws.String("10.1.0.0/16")},
			{ParameterKey: aws.String("WithBucket"), ParameterValue: aws.String("no")},
		}})
	if err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	s := f.describe(t, client, "infra")
	if s.StackStatus != cfntypes.StackStatusUpdateComplete {
		t.Fatalf("status = %s", s.StackStatus)
	}
	after := outputsOf(s)
	if after["SubnetCidr"] != "10.1.0.0/20" || after["VpcId"] != before["VpcId"] || after["ClusterName"] != before["ClusterName"] {
		t.Errorf("outputs after update = %v (before %v)", after, before)
	}
	if _, ok := after["BucketName"]; ok {
		t.Errorf("BucketName output remains after the bucket was removed")
	}
	var bucketStatus []string
	for _, ev := range f.observedEvents() {
		if ev.LogicalResourceID == "Bucket" {
			bucketStatus = append(bucketStatus, ev.ResourceStatus)
		}
	}
	if bucketStatus[len(bucketStatus)-1] != "DELETE_SKIPPED" {
		t.Errorf("bucket events = %v, want DELETE_SKIPPED last (DeletionPolicy Retain)", bucketStatus)
	}
	if got := f.statuses(t, client, "infra"); !reflect.DeepEqual(got, []string{"CREATE_IN_PROGRESS", "CREATE_COMPLETE",
		"UPDATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_COMPLETE"}) {
		t.Errorf("statuses = %v", got)
	}
	// The same template and parameters again: nothing to do.
	_, err = client.UpdateStack(context.Background(), &cloudformation.UpdateStackInput{StackName: aws.String("infra"), UsePreviousTemplate: aws.Bool(true),
		Parameters: []cfntypes.Parameter{
			{ParameterKey: aws.String("DeploymentId"), UsePreviousValue: aws.Bool(true)},
			{ParameterKey: aws.String("VpcCidr"), UsePreviousValue: aws.Bool(true)},
			{ParameterKey: aws.String("WithBucket"), UsePreviousValue: aws.Bool(true)},
		}})
	assertAPIError(t, err, "ValidationError", "No updates are to be performed.")
}

func TestUpdateFailureRollsBack(t *testing.T) {
	f := newFixture(t)
	client := f.customerCFN()
	createInfra(t, f, client, "infra")
	f.engine.Wait()
	before := f.describe(t, client, "infra")
	f.engine.InjectFailure(customer, "infra", "Subnet1", "subnet CIDR conflicts")
	_, err := client.UpdateStack(context.Background(), &cloudformation.UpdateStackInput{StackName: aws.String("infra"), UsePreviousTemplate: aws.Bool(true),
		Parameters: params("DeploymentId", "d1", "VpcCidr", "10.2.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	s := f.describe(t, client, "infra")
	if s.StackStatus != cfntypes.StackStatusUpdateRollbackComplete {
		t.Fatalf("status = %s", s.StackStatus)
	}
	if got := f.statuses(t, client, "infra"); !reflect.DeepEqual(got, []string{"CREATE_IN_PROGRESS", "CREATE_COMPLETE", "UPDATE_IN_PROGRESS",
		"UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE"}) {
		t.Errorf("statuses = %v", got)
	}
	if !reflect.DeepEqual(outputsOf(s), outputsOf(before)) {
		t.Errorf("outputs after rollback = %v, want %v", outputsOf(s), outputsOf(before))
	}
	for _, p := range s.Parameters {
		if aws.ToString(p.ParameterKey) == "VpcCidr" && aws.ToString(p.ParameterValue) != "10.0.0.0/16" {
			t.Errorf("VpcCidr after rollback = %s", aws.ToString(p.ParameterValue))
		}
	}
	var reason string
	for _, ev := range f.observedEvents() {
		if ev.ResourceStatus == "UPDATE_ROLLBACK_IN_PROGRESS" {
			reason = ev.ResourceStatusReason
		}
	}
	if reason != "The following resource(s) failed to update: [Subnet1]. " {
		t.Errorf("rollback reason = %q", reason)
	}
	// UPDATE_ROLLBACK_COMPLETE accepts a new update.
	if _, err := client.UpdateStack(context.Background(), &cloudformation.UpdateStackInput{StackName: aws.String("infra"), UsePreviousTemplate: aws.Bool(true),
		Parameters: params("DeploymentId", "d1", "VpcCidr", "10.2.0.0/16")}); err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	if s := f.describe(t, client, "infra"); s.StackStatus != cfntypes.StackStatusUpdateComplete || outputsOf(s)["SubnetCidr"] != "10.2.0.0/20" {
		t.Errorf("second update: %s %v", s.StackStatus, outputsOf(s))
	}
}

func TestDeleteStack(t *testing.T) {
	f := newFixture(t)
	client := f.customerCFN()
	id := createInfra(t, f, client, "infra")
	f.engine.Wait()
	if _, err := client.DeleteStack(context.Background(), &cloudformation.DeleteStackInput{StackName: aws.String("infra")}); err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	_, err := client.DescribeStacks(context.Background(), &cloudformation.DescribeStacksInput{StackName: aws.String("infra")})
	assertAPIError(t, err, "ValidationError", "Stack with id infra does not exist")
	if s := f.describe(t, client, id); s.StackStatus != cfntypes.StackStatusDeleteComplete || s.DeletionTime == nil {
		t.Errorf("by id: %s deleted at %v", s.StackStatus, s.DeletionTime)
	}
	list, err := client.ListStacks(context.Background(), &cloudformation.ListStacksInput{StackStatusFilter: []cfntypes.StackStatus{cfntypes.StackStatusDeleteComplete}})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.StackSummaries) != 1 || aws.ToString(list.StackSummaries[0].StackId) != id {
		t.Errorf("ListStacks(DELETE_COMPLETE) = %+v", list.StackSummaries)
	}
	// Deleting a stack that does not exist succeeds, as on AWS.
	if _, err := client.DeleteStack(context.Background(), &cloudformation.DeleteStackInput{StackName: aws.String("never")}); err != nil {
		t.Errorf("DeleteStack of a missing stack: %v", err)
	}
	// The export went with the stack: a new stack may export the same name.
	createInfra(t, f, client, "infra")
	f.engine.Wait()
	if s := f.describe(t, client, "infra"); s.StackStatus != cfntypes.StackStatusCreateComplete {
		t.Errorf("recreate: %s", s.StackStatus)
	}
}

func TestExportsAndImports(t *testing.T) {
	f := newFixture(t)
	client := f.customerCFN()
	createInfra(t, f, client, "infra")
	f.engine.Wait()
	importer := `{"Resources": {"P": {"Type": "AWS::SSM::Parameter", "Properties": {"Type": "String", "Value": {"Fn::ImportValue": "infra-cluster"}}}},
	  "Outputs": {"Imported": {"Value": {"Fn::GetAtt": ["P", "Value"]}}}}`
	if _, err := client.CreateStack(context.Background(), &cloudformation.CreateStackInput{StackName: aws.String("importer"), TemplateBody: aws.String(importer)}); err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	if got := outputsOf(f.describe(t, client, "importer"))["Imported"]; got != "clickhouse-cloud-d1" {
		t.Errorf("imported value = %q", got)
	}
	exports, err := client.ListExports(context.Background(), &cloudformation.ListExportsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(exports.Exports) != 1 || aws.ToString(exports.Exports[0].Name) != "infra-cluster" {
		t.Errorf("ListExports = %+v", exports.Exports)
	}
	// The exporter cannot be deleted while imported.
	if _, err := client.DeleteStack(context.Background(), &cloudformation.DeleteStackInput{StackName: aws.String("infra")}); err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	if s := f.describe(t, client, "infra"); s.StackStatus != cfntypes.StackStatusDeleteFailed ||
		aws.ToString(s.StackStatusReason) != "Export infra-cluster cannot be deleted as it is in use by importer" {
		t.Errorf("delete of an imported exporter: %s %q", s.StackStatus, aws.ToString(s.StackStatusReason))
	}
	_, err = client.CreateStack(context.Background(), &cloudformation.CreateStackInput{StackName: aws.String("missing-import"),
		TemplateBody: aws.String(strings.ReplaceAll(importer, "infra-cluster", "nope"))})
	if err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	if s := f.describe(t, client, "missing-import"); s.StackStatus != cfntypes.StackStatusRollbackComplete {
		t.Errorf("import of a missing export: %s", s.StackStatus)
	}
}

func TestDuplicateExportFails(t *testing.T) {
	f := newFixture(t)
	client := f.customerCFN()
	tpl := `{"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}, "Outputs": {"Url": {"Value": {"Ref": "Q"}, "Export": {"Name": "shared-url"}}}}`
	for _, name := range []string{"first", "second"} {
		if _, err := client.CreateStack(context.Background(), &cloudformation.CreateStackInput{StackName: aws.String(name), TemplateBody: aws.String(tpl)}); err != nil {
			t.Fatal(err)
		}
		f.engine.Wait()
	}
	s := f.describe(t, client, "second")
	if s.StackStatus != cfntypes.StackStatusRollbackComplete || aws.ToString(s.StackStatusReason) != "" {
		t.Errorf("second: %s %q", s.StackStatus, aws.ToString(s.StackStatusReason))
	}
	var reason string
	for _, ev := range f.observedEvents() {
		if ev.StackName == "second" && ev.ResourceStatus == "ROLLBACK_IN_PROGRESS" {
			reason = ev.ResourceStatusReason
		}
	}
	if reason != "Export with name shared-url is already exported by stack first" {
		t.Errorf("rollback reason = %q", reason)
	}
}

func TestDescribeStackEventsPages(t *testing.T) {
	f := newFixture(t)
	client := f.customerCFN()
	var b strings.Builder
	b.WriteString(`{"Resources": {`)
	for i := 0; i < 40; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"Q%d": {"Type": "AWS::SQS::Queue"}`, i)
	}
	b.WriteString(`}}`)
	if _, err := client.CreateStack(context.Background(), &cloudformation.CreateStackInput{StackName: aws.String("many"), TemplateBody: aws.String(b.String())}); err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	first, err := client.DescribeStackEvents(context.Background(), &cloudformation.DescribeStackEventsInput{StackName: aws.String("many")})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.StackEvents) != 100 || first.NextToken == nil {
		t.Fatalf("first page: %d events, next %v", len(first.StackEvents), first.NextToken)
	}
	if got := f.statuses(t, client, "many"); !reflect.DeepEqual(got, []string{"CREATE_IN_PROGRESS", "CREATE_COMPLETE"}) {
		t.Errorf("statuses over all pages = %v", got)
	}
	if n := len(f.observedEvents()); n != 40*3+2 {
		t.Errorf("%d events observed, want %d", n, 40*3+2)
	}
}

func assertAPIError(t *testing.T, err error, code, contains string) {
	t.Helper()
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("error = %v, want %s", err, code)
	}
	if apiErr.ErrorCode() != code || !strings.Contains(apiErr.ErrorMessage(), contains) {
		t.Errorf("error = %s: %s\nwant %s containing %q", apiErr.ErrorCode(), apiErr.ErrorMessage(), code, contains)
	}
}

func TestTerminationProtectionAndRetriedRequests(t *testing.T) {
	f := newFixture(t)
	client := f.customerCFN()
	ctx := context.Background()
	in := &cloudformation.CreateStackInput{StackName: aws.String("infra"), TemplateBody: aws.String(readFile(t, "testdata/infra.json")),
		Parameters: params("DeploymentId", "d1"), EnableTerminationProtection: aws.Bool(true), ClientRequestToken: aws.String("byoc-d1-1-create")}
	first, err := client.CreateStack(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	// The same request again (its answer was lost) is recognised by its token.
	again, err := client.CreateStack(ctx, in)
	if err != nil || aws.ToString(again.StackId) != aws.ToString(first.StackId) {
		t.Fatalf("retried CreateStack = %v, %v; want the same stack", again, err)
	}
	f.engine.Wait()
	if s := f.describe(t, client, "infra"); !aws.ToBool(s.EnableTerminationProtection) {
		t.Errorf("EnableTerminationProtection = false")
	}
	_, err = client.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: aws.String("infra")})
	assertAPIError(t, err, "ValidationError", "Stack [infra] cannot be deleted while TerminationProtection is enabled")
	if s := f.describe(t, client, "infra"); s.StackStatus != cfntypes.StackStatusCreateComplete {
		t.Errorf("a refused delete changed the stack: %s", s.StackStatus)
	}
	update := &cloudformation.UpdateStackInput{StackName: first.StackId, UsePreviousTemplate: aws.Bool(true),
		Parameters: params("DeploymentId", "d2"), ClientRequestToken: aws.String("byoc-d1-1-update")}
	if _, err := client.UpdateStack(ctx, update); err != nil {
		t.Fatal(err)
	}
	if out, err := client.UpdateStack(ctx, update); err != nil || aws.ToString(out.StackId) != aws.ToString(first.StackId) {
		t.Errorf("retried UpdateStack = %v, %v", out, err)
	}
	f.engine.Wait()
	if got := f.statuses(t, client, "infra"); !reflect.DeepEqual(got, []string{"CREATE_IN_PROGRESS", "CREATE_COMPLETE", "UPDATE_IN_PROGRESS",
		"UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_COMPLETE"}) {
		t.Errorf("statuses = %v (a retry must not start a second operation)", got)
	}
	if _, err := client.UpdateTerminationProtection(ctx, &cloudformation.UpdateTerminationProtectionInput{StackName: aws.String("infra"),
		EnableTerminationProtection: aws.Bool(false)}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: aws.String("infra")}); err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	_, err = client.UpdateTerminationProtection(ctx, &cloudformation.UpdateTerminationProtectionInput{StackName: first.StackId, EnableTerminationProtection: aws.Bool(true)})
	assertAPIError(t, err, "ValidationError", "is in DELETE_COMPLETE state")
}

func TestTemplateBodyLimit(t *testing.T) {
	f := newFixture(t)
	big := `{"Description": "` + strings.Repeat("x", maxTemplateBody) + `", "Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}`
	_, err := f.customerCFN().CreateStack(context.Background(), &cloudformation.CreateStackInput{StackName: aws.String("big"), TemplateBody: aws.String(big)})
	assertAPIError(t, err, "ValidationError", "Member must have length less than or equal to 51200")
	if len(f.observedEvents()) != 0 {
		t.Errorf("a rejected template created a stack")
	}
}
