package vendortest

import (
	"context"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	"github.com/byocloud/byoc/infra/local/accounts"
)

// TestCreateStackFromTemplateURL applies a template the vendor published in S3, by the
// virtual-hosted URL a quick-create link carries, as a customer does.
func TestCreateStackFromTemplateURL(t *testing.T) {
	c := newCloud(t)
	bucket := "byoc-templates-" + uniqueSuffix()
	if status := c.s3Status(t, http.MethodPut, "/"+bucket, nil); status != http.StatusOK {
		t.Fatalf("create bucket: %d", status)
	}
	body := []byte(`{"Parameters": {"Name": {"Type": "String"}}, "Resources": {"Q": {"Type": "AWS::SQS::Queue"}}, "Outputs": {"Name": {"Value": {"Ref": "Name"}}}}`)
	c.s3Put(t, "/"+bucket+"/template.json", body)

	customerCfg := c.cfg.Copy()
	customerCfg.Credentials = credentials.StaticCredentialsProvider{Value: accounts.AdminCredentials(customer)}
	cfn := cloudformation.NewFromConfig(customerCfg)
	ctx := context.Background()
	for _, u := range []string{
		"https://" + bucket + ".s3.us-east-1.amazonaws.com/template.json",
		"https://s3.amazonaws.com/" + bucket + "/template.json",
	} {
		name := "from-url-" + uniqueSuffix()
		if _, err := cfn.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: aws.String(name), TemplateURL: aws.String(u),
			Parameters: []cfntypes.Parameter{{ParameterKey: aws.String("Name"), ParameterValue: aws.String("x")}}}); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		c.engine.Wait()
		out, err := cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(name)})
		if err != nil || out.Stacks[0].StackStatus != cfntypes.StackStatusCreateComplete {
			t.Errorf("%s: %+v, %v", u, out, err)
		}
	}
	_, err := cfn.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: aws.String("missing"),
		TemplateURL: aws.String("https://" + bucket + ".s3.amazonaws.com/nope.json")})
	if err == nil {
		t.Errorf("CreateStack from a missing object succeeded")
	}
}

func (c *cloud) s3Put(t *testing.T, path string, body []byte) {
	t.Helper()
	if status := c.s3Status(t, http.MethodPut, path, body); status != http.StatusOK {
		t.Fatalf("PUT %s: %d", path, status)
	}
}
