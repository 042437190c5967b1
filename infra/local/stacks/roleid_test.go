package stacks

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	"github.com/byocloud/byoc/infra/local/accounts"
)

// The infrastructure stack outputs StateExporterRoleId, which byoc records and compares with
// SQS's SenderId: the role's RoleId must be the id its sessions carry in their UserID.
func TestRoleIdOutputIsTheIdOfTheRolesSessions(t *testing.T) {
	f := newFixture(t)
	client := f.customerCFN()
	tpl := `{"Resources": {"Exporter": {"Type": "AWS::IAM::Role", "Properties": {"Path": "/byoc/",
	    "AssumeRolePolicyDocument": {"Statement": [{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}]}}}},
	  "Outputs": {"RoleArn": {"Value": {"Fn::GetAtt": ["Exporter", "Arn"]}}, "RoleId": {"Value": {"Fn::GetAtt": ["Exporter", "RoleId"]}}}}`
	if _, err := client.CreateStack(context.Background(), &cloudformation.CreateStackInput{
		StackName: aws.String("roles"), TemplateBody: aws.String(tpl), Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityIam},
	}); err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	s := f.describe(t, client, "roles")
	if s.StackStatus != cfntypes.StackStatusCreateComplete {
		t.Fatalf("stack %s: %s", s.StackStatus, aws.ToString(s.StackStatusReason))
	}
	out := outputsOf(s)
	if !strings.HasPrefix(out["RoleArn"], "arn:aws:iam::"+customer+":role/byoc/roles-Exporter-") {
		t.Fatalf("RoleArn = %q", out["RoleArn"])
	}
	if want := accounts.RoleID(out["RoleArn"]); out["RoleId"] != want {
		t.Errorf("RoleId = %q, want accounts.RoleID(arn) = %q", out["RoleId"], want)
	}
	creds, err := f.accounts.WorkloadCredentials(out["RoleArn"], "state-exporter", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.accounts.PrincipalForAccessKey(creds.AccessKeyID).UserID; got != out["RoleId"]+":state-exporter" {
		t.Errorf("session UserID = %q, want the RoleId output + \":state-exporter\"", got)
	}
}
