package cfnengine

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
)

func TestCreateStackRejectsBadInputAndCreatesNothing(t *testing.T) {
	infra := readFile(t, "testdata/infra.json")
	bootstrap := readFile(t, "testdata/bootstrap.json")
	cases := []struct {
		name     string
		in       *cloudformation.CreateStackInput
		code     string
		contains string
	}{
		{"bad stack name", &cloudformation.CreateStackInput{StackName: aws.String("1bad_name"), TemplateBody: aws.String(infra)},
			"ValidationError", "Value '1bad_name' at 'stackName' failed to satisfy constraint"},
		{"no template", &cloudformation.CreateStackInput{StackName: aws.String("s")},
			"ValidationError", "Either Template URL or Template Body must be specified."},
		{"both body and url", &cloudformation.CreateStackInput{StackName: aws.String("s"), TemplateBody: aws.String(infra), TemplateURL: aws.String("https://b.s3.amazonaws.com/k")},
			"ValidationError", "Exactly one of TemplateBody or TemplateUrl must be specified."},
		{"url not S3", &cloudformation.CreateStackInput{StackName: aws.String("s"), TemplateURL: aws.String("https://example.com/t.json")},
			"ValidationError", "TemplateURL must reference a valid S3 object"},
		{"malformed template", &cloudformation.CreateStackInput{StackName: aws.String("s"), TemplateBody: aws.String(`{"Resources": `)},
			"ValidationError", "Template format error: JSON not well-formed"},
		{"yaml template", &cloudformation.CreateStackInput{StackName: aws.String("s"), TemplateBody: aws.String("Resources: {}\n")},
			"ValidationError", "JSON templates only"},
		{"missing parameter", &cloudformation.CreateStackInput{StackName: aws.String("s"), TemplateBody: aws.String(infra)},
			"ValidationError", "Parameters: [DeploymentId] must have values"},
		{"unknown parameter", &cloudformation.CreateStackInput{StackName: aws.String("s"), TemplateBody: aws.String(infra), Parameters: params("DeploymentId", "d", "Nope", "x")},
			"ValidationError", "Parameters: [Nope] do not exist in the template"},
		{"parameter not allowed", &cloudformation.CreateStackInput{StackName: aws.String("s"), TemplateBody: aws.String(infra), Parameters: params("DeploymentId", "d", "WithBucket", "maybe")},
			"ValidationError", "Parameter 'WithBucket' must be one of AllowedValues"},
		{"external id too short", &cloudformation.CreateStackInput{StackName: aws.String("s"), TemplateBody: aws.String(bootstrap),
			Parameters:   params("ExternalId", "short", "ControlPlaneRoleArn", controlPlane, "VendorEventBusArn", vendorBusArn),
			Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityNamedIam}},
			"ValidationError", "Parameter 'ExternalId' failed to satisfy constraint: must be the 32+ character ExternalId from the invitation"},
		{"missing IAM capability", &cloudformation.CreateStackInput{StackName: aws.String("s"), TemplateBody: aws.String(bootstrap), Parameters: bootstrapParams()},
			"InsufficientCapabilitiesException", "Requires capabilities : [CAPABILITY_NAMED_IAM]"},
		{"IAM capability not enough for named roles", &cloudformation.CreateStackInput{StackName: aws.String("s"), TemplateBody: aws.String(bootstrap), Parameters: bootstrapParams(),
			Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityIam}},
			"InsufficientCapabilitiesException", "Requires capabilities : [CAPABILITY_NAMED_IAM]"},
		{"both DisableRollback and OnFailure", &cloudformation.CreateStackInput{StackName: aws.String("s"), TemplateBody: aws.String(infra), Parameters: params("DeploymentId", "d"),
			DisableRollback: aws.Bool(false), OnFailure: cfntypes.OnFailureDelete},
			"ValidationError", "You cannot specify both DisableRollback and OnFailure."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			_, err := f.customerCFN().CreateStack(context.Background(), c.in)
			assertAPIError(t, err, c.code, c.contains)
			list, lerr := f.customerCFN().ListStacks(context.Background(), &cloudformation.ListStacksInput{})
			if lerr != nil {
				t.Fatal(lerr)
			}
			if len(list.StackSummaries) != 0 || len(f.observedEvents()) != 0 {
				t.Errorf("a rejected CreateStack left %d stacks and %d events", len(list.StackSummaries), len(f.observedEvents()))
			}
		})
	}
}

func TestUpdateStackRejectsBadInputAndChangesNothing(t *testing.T) {
	f := newFixture(t)
	client := f.customerCFN()
	createInfra(t, f, client, "infra")
	f.engine.Wait()
	events := len(f.observedEvents())
	cases := []struct {
		name     string
		in       *cloudformation.UpdateStackInput
		contains string
	}{
		{"missing stack", &cloudformation.UpdateStackInput{StackName: aws.String("nope"), UsePreviousTemplate: aws.Bool(true)}, "Stack [nope] does not exist"},
		{"previous value of an unknown parameter", &cloudformation.UpdateStackInput{StackName: aws.String("infra"), UsePreviousTemplate: aws.Bool(true),
			Parameters: []cfntypes.Parameter{{ParameterKey: aws.String("Nope"), UsePreviousValue: aws.Bool(true)}}}, "Cannot specify usePreviousValue as true for a parameter key not in the previous template"},
		{"parameter missing (no previous value kept)", &cloudformation.UpdateStackInput{StackName: aws.String("infra"), UsePreviousTemplate: aws.Bool(true)},
			"Parameters: [DeploymentId] must have values"},
		{"previous template and a body", &cloudformation.UpdateStackInput{StackName: aws.String("infra"), UsePreviousTemplate: aws.Bool(true), TemplateBody: aws.String("{}")},
			"You cannot specify UsePreviousTemplate together with TemplateBody or TemplateURL."},
		{"cyclic template", &cloudformation.UpdateStackInput{StackName: aws.String("infra"),
			TemplateBody: aws.String(`{"Resources": {"A": {"Type": "AWS::SQS::Queue", "DependsOn": "B"}, "B": {"Type": "AWS::SQS::Queue", "DependsOn": "A"}}}`)},
			"Circular dependency between resources: [A, B]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := client.UpdateStack(context.Background(), c.in)
			assertAPIError(t, err, "ValidationError", c.contains)
			s := f.describe(t, client, "infra")
			if s.StackStatus != cfntypes.StackStatusCreateComplete || len(f.observedEvents()) != events {
				t.Errorf("a rejected UpdateStack changed the stack: %s, %d events (had %d)", s.StackStatus, len(f.observedEvents()), events)
			}
		})
	}
}

func TestDescribeRejectsUnknownStacks(t *testing.T) {
	f := newFixture(t)
	client := f.customerCFN()
	ctx := context.Background()
	_, err := client.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String("nope")})
	assertAPIError(t, err, "ValidationError", "Stack with id nope does not exist")
	_, err = client.DescribeStackEvents(ctx, &cloudformation.DescribeStackEventsInput{StackName: aws.String("nope")})
	assertAPIError(t, err, "ValidationError", "Stack [nope] does not exist")
	_, err = client.DescribeStackResources(ctx, &cloudformation.DescribeStackResourcesInput{StackName: aws.String("nope")})
	assertAPIError(t, err, "ValidationError", "Stack [nope] does not exist")
	_, err = client.GetTemplate(ctx, &cloudformation.GetTemplateInput{StackName: aws.String("nope")})
	assertAPIError(t, err, "ValidationError", "Stack [nope] does not exist")
	createInfra(t, f, client, "infra")
	f.engine.Wait()
	_, err = client.DescribeStackResource(ctx, &cloudformation.DescribeStackResourceInput{StackName: aws.String("infra"), LogicalResourceId: aws.String("Nope")})
	assertAPIError(t, err, "ValidationError", "Resource Nope does not exist for stack infra")
	detail, err := client.DescribeStackResource(ctx, &cloudformation.DescribeStackResourceInput{StackName: aws.String("infra"), LogicalResourceId: aws.String("Vpc")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(detail.StackResourceDetail.ResourceType) != "AWS::EC2::VPC" || detail.StackResourceDetail.LastUpdatedTimestamp == nil {
		t.Errorf("DescribeStackResource = %+v", detail.StackResourceDetail)
	}
	byPhysical, err := client.DescribeStackResources(ctx, &cloudformation.DescribeStackResourcesInput{PhysicalResourceId: detail.StackResourceDetail.PhysicalResourceId})
	if err != nil || len(byPhysical.StackResources) != 4 {
		t.Errorf("DescribeStackResources by physical id: %v, %d resources", err, len(byPhysical.StackResources))
	}
	_, err = client.DescribeStackEvents(ctx, &cloudformation.DescribeStackEventsInput{StackName: aws.String("infra"), NextToken: aws.String("x")})
	assertAPIError(t, err, "ValidationError", "Invalid NextToken")
}

func TestValidateTemplate(t *testing.T) {
	f := newFixture(t)
	client := f.customerCFN()
	out, err := client.ValidateTemplate(context.Background(), &cloudformation.ValidateTemplateInput{TemplateBody: aws.String(readFile(t, "testdata/bootstrap.json"))})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, p := range out.Parameters {
		keys = append(keys, aws.ToString(p.ParameterKey))
		if aws.ToString(p.ParameterKey) == "ExternalId" && !aws.ToBool(p.NoEcho) {
			t.Errorf("ExternalId not NoEcho")
		}
		if aws.ToString(p.ParameterKey) == "ResourcePrefix" && aws.ToString(p.DefaultValue) != "clickhouse-cloud" {
			t.Errorf("ResourcePrefix default = %q", aws.ToString(p.DefaultValue))
		}
	}
	if strings.Join(keys, ",") != "ControlPlaneRoleArn,ExternalId,ResourcePrefix,VendorEventBusArn" {
		t.Errorf("parameters = %v", keys)
	}
	if len(out.Capabilities) != 1 || out.Capabilities[0] != cfntypes.CapabilityCapabilityNamedIam ||
		aws.ToString(out.CapabilitiesReason) != "The following resource(s) require capabilities: [AWS::IAM::ManagedPolicy, AWS::IAM::Role]" {
		t.Errorf("capabilities = %v %q", out.Capabilities, aws.ToString(out.CapabilitiesReason))
	}
	_, err = client.ValidateTemplate(context.Background(), &cloudformation.ValidateTemplateInput{TemplateBody: aws.String(`{"Resources": {"A": {"Properties": {}}}}`)})
	assertAPIError(t, err, "ValidationError", "Every Resources object must contain a Type member.")
}

func TestUnknownActionIsRejected(t *testing.T) {
	f := newFixture(t)
	req, _ := http.NewRequest(http.MethodPost, f.url, strings.NewReader(url.Values{"Action": {"CreateChangeSet"}, "Version": {"2010-05-15"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=111111111111/20260101/us-east-1/cloudformation/aws4_request, SignedHeaders=host, Signature=x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status = %d, want 400", resp.StatusCode)
	}
}
