package vendortest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
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
	if status := c.s3Status(t, http.MethodPut, "/"+bucket); status != http.StatusOK {
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
	req, err := http.NewRequest(http.MethodPut, aws.ToString(c.cfg.BaseEndpoint)+path, bytes.NewReader(body))
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
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT %s: %d", path, resp.StatusCode)
	}
}
