package cfnengine

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	"github.com/byocloud/byoc/infra/local/accounts"
)

// namedTemplate has a fixed-name bucket with the given DeletionPolicy, created first, and a
// fixed-name role and cluster after it (where a failure is injected).
func namedTemplate(policy string) string {
	return `{"Resources":{
  "Bucket":{"Type":"AWS::S3::Bucket","DeletionPolicy":"` + policy + `","Properties":{"BucketName":"byoc-names-test-bucket"}},
  "Role":{"Type":"AWS::IAM::Role","DependsOn":"Bucket","Properties":{"RoleName":"byoc-names-test-role",
    "AssumeRolePolicyDocument":{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}}},
  "Cluster":{"Type":"AWS::EKS::Cluster","DependsOn":"Role","Properties":{"Name":"byoc-names-test","RoleArn":{"Fn::GetAtt":["Role","Arn"]},
    "ResourcesVpcConfig":{"SubnetIds":["subnet-1","subnet-2"]}}}}}`
}

func (f *fixture) createNamed(t *testing.T, client *cloudformation.Client, name, policy string) cfntypes.Stack {
	t.Helper()
	if _, err := client.CreateStack(context.Background(), &cloudformation.CreateStackInput{StackName: aws.String(name),
		TemplateBody: aws.String(namedTemplate(policy)), Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityNamedIam}}); err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	return f.describe(t, client, name)
}

func (f *fixture) deleteStack(t *testing.T, client *cloudformation.Client, name string) {
	t.Helper()
	if _, err := client.DeleteStack(context.Background(), &cloudformation.DeleteStackInput{StackName: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
}

// failedResource is the last CREATE_FAILED resource event: "<logical id>: <reason>".
func (f *fixture) failedResource() string {
	failed := ""
	for _, ev := range f.observedEvents() {
		if ev.ResourceStatus == "CREATE_FAILED" && !ev.IsStack() {
			failed = ev.LogicalResourceID + ": " + ev.ResourceStatusReason
		}
	}
	return failed
}

// Plain Retain keeps the bucket a failed create made, as CloudFormation does: the next
// create of the stack fails on the bucket's name, hiding the first fault.
func TestRetainedBucketOfARolledBackCreateHoldsItsName(t *testing.T) {
	f := newFixture(t)
	client := f.customerCFN()
	f.engine.InjectFailure(customer, "named", "Cluster", "insufficient capacity")
	if s := f.createNamed(t, client, "named", "Retain"); s.StackStatus != cfntypes.StackStatusRollbackComplete {
		t.Fatalf("status %s, want ROLLBACK_COMPLETE", s.StackStatus)
	}
	f.deleteStack(t, client, "named")
	if s := f.createNamed(t, client, "named", "Retain"); s.StackStatus != cfntypes.StackStatusRollbackComplete {
		t.Fatalf("recreated: status %s, want ROLLBACK_COMPLETE on the retained bucket's name", s.StackStatus)
	}
	if got := f.failedResource(); got != "Bucket: byoc-names-test-bucket already exists" {
		t.Errorf("failed resource %q, want the bucket's name taken", got)
	}
}

// RetainExceptOnCreate deletes what a failed create made, so the retry creates the bucket
// again; once the stack existed, deleting it keeps the bucket, and its name stays taken,
// in every account (S3 names are global).
func TestRetainExceptOnCreateFreesTheNameOnRollbackOnly(t *testing.T) {
	f := newFixture(t)
	client := f.customerCFN()
	f.engine.InjectFailure(customer, "named", "Cluster", "insufficient capacity")
	if s := f.createNamed(t, client, "named", "RetainExceptOnCreate"); s.StackStatus != cfntypes.StackStatusRollbackComplete {
		t.Fatalf("status %s, want ROLLBACK_COMPLETE", s.StackStatus)
	}
	f.deleteStack(t, client, "named")
	if s := f.createNamed(t, client, "named", "RetainExceptOnCreate"); s.StackStatus != cfntypes.StackStatusCreateComplete {
		t.Fatalf("retry after rollback: status %s (%s), want CREATE_COMPLETE", s.StackStatus, f.failedResource())
	}
	f.deleteStack(t, client, "named")

	other := f.cfn(accounts.AdminCredentials(otherCustomer))
	if s := f.createNamed(t, other, "named", "RetainExceptOnCreate"); s.StackStatus != cfntypes.StackStatusRollbackComplete ||
		f.failedResource() != "Bucket: byoc-names-test-bucket already exists" {
		t.Fatalf("another account: status %s (%s), want the retained bucket's global name refused", s.StackStatus, f.failedResource())
	}
}

// IAM role and EKS cluster names are per account: another account may use them, the same
// account may not while a stack holds them, and may again once that stack is deleted.
func TestRoleAndClusterNamesArePerAccount(t *testing.T) {
	f := newFixture(t)
	client := f.customerCFN()
	if s := f.createNamed(t, client, "first", "Delete"); s.StackStatus != cfntypes.StackStatusCreateComplete {
		t.Fatalf("first: %s", s.StackStatus)
	}
	// The same template under another stack name: the bucket's global name is taken first.
	if s := f.createNamed(t, client, "second", "Delete"); s.StackStatus != cfntypes.StackStatusRollbackComplete ||
		!strings.HasPrefix(f.failedResource(), "Bucket: ") {
		t.Fatalf("second: %s (%s), want the bucket refused", s.StackStatus, f.failedResource())
	}
	f.deleteStack(t, client, "second")
	f.deleteStack(t, client, "first")
	// With everything deleted (not retained), every name is free again.
	if s := f.createNamed(t, client, "third", "Delete"); s.StackStatus != cfntypes.StackStatusCreateComplete {
		t.Fatalf("after deleting the holder: %s (%s)", s.StackStatus, f.failedResource())
	}
	other := f.cfn(accounts.AdminCredentials(otherCustomer))
	body := strings.ReplaceAll(namedTemplate("Delete"), "byoc-names-test-bucket", "byoc-names-test-bucket-2")
	if _, err := other.CreateStack(context.Background(), &cloudformation.CreateStackInput{StackName: aws.String("other"),
		TemplateBody: aws.String(body), Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityNamedIam}}); err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	if s := f.describe(t, other, "other"); s.StackStatus != cfntypes.StackStatusCreateComplete {
		t.Fatalf("the role and cluster names in another account: %s (%s)", s.StackStatus, f.failedResource())
	}
	// The same account's role name is held by "third".
	body = strings.ReplaceAll(namedTemplate("Delete"), "byoc-names-test-bucket", "byoc-names-test-bucket-3")
	if _, err := client.CreateStack(context.Background(), &cloudformation.CreateStackInput{StackName: aws.String("fourth"),
		TemplateBody: aws.String(body), Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityNamedIam}}); err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	if got := f.failedResource(); got != "Role: Resource of type 'AWS::IAM::Role' with identifier 'byoc-names-test-role' already exists." {
		t.Fatalf("failed resource %q, want the role's name taken in this account", got)
	}
}

// Renaming a custom-named resource replaces it under the new name, which must be free, and
// lets the old name go (a rename onto a name another stack holds fails, and the update rolls
// back to the old name). A retained resource's name stays taken even for the stack that left
// it behind: removing the bucket from the template (retained) and declaring it again fails.
func TestRenamesAndRetainedNamesOnUpdate(t *testing.T) {
	f := newFixture(t)
	client := f.customerCFN()
	ctx := context.Background()
	if s := f.createNamed(t, client, "named", "Retain"); s.StackStatus != cfntypes.StackStatusCreateComplete {
		t.Fatalf("create: %s", s.StackStatus)
	}
	update := func(body string) cfntypes.Stack {
		t.Helper()
		if _, err := client.UpdateStack(ctx, &cloudformation.UpdateStackInput{StackName: aws.String("named"), TemplateBody: aws.String(body),
			Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityNamedIam}}); err != nil {
			t.Fatal(err)
		}
		f.engine.Wait()
		return f.describe(t, client, "named")
	}
	// Another stack holds byoc-names-test-role-held.
	held := `{"Resources":{"Role":{"Type":"AWS::IAM::Role","Properties":{"RoleName":"byoc-names-test-role-held",
    "AssumeRolePolicyDocument":{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"eks.amazonaws.com"},"Action":"sts:AssumeRole"}]}}}}}`
	if _, err := client.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: aws.String("holder"), TemplateBody: aws.String(held),
		Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityNamedIam}}); err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	if s := update(strings.ReplaceAll(namedTemplate("Retain"), "byoc-names-test-role", "byoc-names-test-role-held")); s.StackStatus != cfntypes.StackStatusUpdateRollbackComplete {
		t.Fatalf("rename onto a held name: %s, want UPDATE_ROLLBACK_COMPLETE", s.StackStatus)
	}
	if s := update(strings.ReplaceAll(namedTemplate("Retain"), "byoc-names-test-role", "byoc-names-test-role-2")); s.StackStatus != cfntypes.StackStatusUpdateComplete {
		t.Fatalf("rename onto a free name: %s, want UPDATE_COMPLETE", s.StackStatus)
	}
	// The old name is free again: another stack may take it.
	freed := strings.ReplaceAll(held, "byoc-names-test-role-held", "byoc-names-test-role")
	if _, err := client.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: aws.String("taker"), TemplateBody: aws.String(freed),
		Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityNamedIam}}); err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	if s := f.describe(t, client, "taker"); s.StackStatus != cfntypes.StackStatusCreateComplete {
		t.Fatalf("taking the renamed role's old name: %s (%s)", s.StackStatus, f.failedResource())
	}
	withoutBucket := `{"Resources":{"Other":{"Type":"AWS::S3::Bucket","Properties":{"BucketName":"byoc-names-test-other"}}}}`
	if s := update(withoutBucket); s.StackStatus != cfntypes.StackStatusUpdateComplete {
		t.Fatalf("removing the retained bucket: %s", s.StackStatus)
	}
	again := `{"Resources":{"Other":{"Type":"AWS::S3::Bucket","Properties":{"BucketName":"byoc-names-test-other"}},
  "Bucket":{"Type":"AWS::S3::Bucket","Properties":{"BucketName":"byoc-names-test-bucket"}}}}`
	if s := update(again); s.StackStatus != cfntypes.StackStatusUpdateRollbackComplete || f.failedResource() != "Bucket: byoc-names-test-bucket already exists" {
		t.Fatalf("declaring the retained bucket again: %s (%s), want its name refused", s.StackStatus, f.failedResource())
	}
}

// A resource that cannot be deleted stops the stack's deletion there, DELETE_FAILED naming
// it; the resources created after it are gone, it and those before it stay; the next
// DeleteStack carries on and completes.
func TestDeleteFailureStopsTheDeletionAndASecondDeleteResumes(t *testing.T) {
	f := newFixture(t)
	client := f.customerCFN()
	f.createNamed(t, client, "named", "Delete")
	f.engine.InjectDeleteFailure(customer, "named", "Role", "role is in use by the cluster's node group")
	f.deleteStack(t, client, "named")
	s := f.describe(t, client, "named")
	if s.StackStatus != cfntypes.StackStatusDeleteFailed || !strings.Contains(aws.ToString(s.StackStatusReason), "[Role]") {
		t.Fatalf("after the failed delete: %s %q", s.StackStatus, aws.ToString(s.StackStatusReason))
	}
	var failed, deleted []string
	for _, ev := range f.observedEvents() {
		switch {
		case ev.ResourceStatus == "DELETE_FAILED" && !ev.IsStack():
			failed = append(failed, ev.LogicalResourceID+": "+ev.ResourceStatusReason)
		case ev.ResourceStatus == "DELETE_COMPLETE" && !ev.IsStack():
			deleted = append(deleted, ev.LogicalResourceID)
		}
	}
	if len(failed) != 1 || failed[0] != "Role: role is in use by the cluster's node group" || !slices.Equal(deleted, []string{"Cluster"}) {
		t.Fatalf("failed %v, deleted %v: want Role failed after Cluster was deleted", failed, deleted)
	}
	f.deleteStack(t, client, aws.ToString(s.StackId))
	if s := f.describe(t, client, aws.ToString(s.StackId)); s.StackStatus != cfntypes.StackStatusDeleteComplete {
		t.Fatalf("after the second delete: %s", s.StackStatus)
	}
}
