package cloud_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/byocloud/byoc/shared/cloud"
)

// recordingSTS stands in for STS: kumo's STS grants every AssumeRole whatever the ExternalId,
// so it can neither show what we asked for nor refuse us.
type recordingSTS struct {
	calls []*sts.AssumeRoleInput
	err   error
}

func (f *recordingSTS) AssumeRole(_ context.Context, in *sts.AssumeRoleInput, _ ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	f.calls = append(f.calls, in)
	if f.err != nil {
		return nil, f.err
	}
	return &sts.AssumeRoleOutput{Credentials: &ststypes.Credentials{
		AccessKeyId: aws.String("ASIACUSTOMER"), SecretAccessKey: aws.String("s"), SessionToken: aws.String("tok"),
		Expiration: aws.Time(time.Now().Add(15 * time.Minute)),
	}}, nil
}

var role = cloud.CustomerRole{AccountID: "111122223333", Region: "eu-west-1", ExternalID: "x-32-characters-long-external-id", SessionName: "byoc-k3q9x2m7p4w8z"}

func TestAssumeRoleActsInTheCustomerAccountAndRegion(t *testing.T) {
	base := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIAVENDOR", "v", ""), BaseEndpoint: aws.String("http://localhost:4566")}
	fake := &recordingSTS{}
	cfg, err := cloud.AssumeRole(context.Background(), fake, base, role)
	if err != nil {
		t.Fatal(err)
	}
	if len(fake.calls) != 1 {
		t.Fatalf("%d AssumeRole calls, want 1", len(fake.calls))
	}
	in := fake.calls[0]
	if got := aws.ToString(in.RoleArn); got != "arn:aws:iam::111122223333:role/ClickHouseManagementRole" {
		t.Fatalf("RoleArn %s", got)
	}
	if aws.ToString(in.ExternalId) != role.ExternalID || aws.ToString(in.RoleSessionName) != role.SessionName {
		t.Fatalf("ExternalId %q session %q", aws.ToString(in.ExternalId), aws.ToString(in.RoleSessionName))
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if creds.AccessKeyID != "ASIACUSTOMER" || creds.SessionToken != "tok" {
		t.Fatalf("credentials %+v are not the assumed role's", creds)
	}
	if cfg.Region != "eu-west-1" {
		t.Fatalf("region %s, want the customer's", cfg.Region)
	}
	if aws.ToString(cfg.BaseEndpoint) != "http://localhost:4566" {
		t.Fatal("the local cloud's endpoint was lost")
	}
	if base.Region != "us-east-1" {
		t.Fatal("base config was modified")
	}
	vendor, _ := base.Credentials.Retrieve(context.Background())
	if vendor.AccessKeyID != "AKIAVENDOR" {
		t.Fatal("base credentials were replaced")
	}
}

func TestAssumeRoleRefusedIsAccessDenied(t *testing.T) {
	fake := &recordingSTS{err: &smithy.GenericAPIError{Code: "AccessDenied", Message: "User is not authorized to perform: sts:AssumeRole"}}
	_, err := cloud.AssumeRole(context.Background(), fake, aws.Config{}, role)
	var denied *cloud.AccessDeniedError
	if !errors.As(err, &denied) {
		t.Fatalf("err = %v, want *AccessDeniedError", err)
	}
	if denied.RoleARN != role.ARN() || !strings.Contains(err.Error(), "ExternalId") {
		t.Fatalf("message %q must name the role and the likely cause", err)
	}
	if cloud.IsTransient(err) {
		t.Fatal("access denied must not be retried")
	}
}

func TestAssumeRoleOtherFailuresKeepTheirCause(t *testing.T) {
	fake := &recordingSTS{err: &smithy.GenericAPIError{Code: "Throttling", Message: "Rate exceeded"}}
	_, err := cloud.AssumeRole(context.Background(), fake, aws.Config{}, role)
	var denied *cloud.AccessDeniedError
	if err == nil || errors.As(err, &denied) || !cloud.IsTransient(err) {
		t.Fatalf("err = %v, want a transient non-access-denied error", err)
	}
}

func TestAssumeRoleRequiresEveryField(t *testing.T) {
	for _, mutate := range []func(*cloud.CustomerRole){
		func(r *cloud.CustomerRole) { r.AccountID = "" },
		func(r *cloud.CustomerRole) { r.Region = "" },
		func(r *cloud.CustomerRole) { r.ExternalID = "" },
		func(r *cloud.CustomerRole) { r.SessionName = "" },
	} {
		r := role
		mutate(&r)
		fake := &recordingSTS{}
		if _, err := cloud.AssumeRole(context.Background(), fake, aws.Config{}, r); err == nil || !strings.Contains(err.Error(), "required") {
			t.Fatalf("%+v: err = %v", r, err)
		}
		if len(fake.calls) != 0 {
			t.Fatal("STS was called with an incomplete role")
		}
	}
}

func TestRoleARNPartitions(t *testing.T) {
	for region, want := range map[string]string{
		"us-east-1":     "arn:aws:iam::111122223333:role/ClickHouseManagementRole",
		"cn-north-1":    "arn:aws-cn:iam::111122223333:role/ClickHouseManagementRole",
		"us-gov-west-1": "arn:aws-us-gov:iam::111122223333:role/ClickHouseManagementRole",
	} {
		r := role
		r.Region = region
		if got := r.ARN(); got != want {
			t.Errorf("%s: %s, want %s", region, got, want)
		}
	}
}

func TestIsTransient(t *testing.T) {
	status := func(code int) error {
		return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}},
			Err:      errors.New("boom"),
		}}
	}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"throttling", &smithy.GenericAPIError{Code: "Throttling"}, true},
		{"dynamodb throughput", &smithy.GenericAPIError{Code: "ProvisionedThroughputExceededException"}, true},
		{"503", status(503), true},
		{"500", status(500), true},
		{"400", status(400), false},
		{"validation", &smithy.GenericAPIError{Code: "ValidationError"}, false},
		{"access denied", &smithy.GenericAPIError{Code: "AccessDenied"}, false},
		{"plain", errors.New("plain"), false},
	}
	for _, c := range cases {
		if got := cloud.IsTransient(c.err); got != c.want {
			t.Errorf("%s: IsTransient = %v, want %v", c.name, got, c.want)
		}
	}
}

// A DynamoDB answer cut off mid-body, as a dropped connection leaves it, is transient (the
// SDK does not retry it); a complete answer that is not JSON is not.
func TestIsTransientForAnAnswerCutOff(t *testing.T) {
	call := func(t *testing.T, answer func(w http.ResponseWriter)) error {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { answer(w) }))
		t.Cleanup(srv.Close)
		db := dynamodb.NewFromConfig(aws.Config{
			Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""),
			BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
		})
		_, err := db.Query(context.Background(), &dynamodb.QueryInput{TableName: aws.String("t")})
		return err
	}
	cutOff := call(t, func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("Content-Length", "200")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"Count":1,"Items":[{"PK":{"S":"DEP#`))
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	})
	if cutOff == nil || !cloud.IsTransient(cutOff) {
		t.Errorf("an answer cut off: IsTransient(%v) = false, want true", cutOff)
	}
	garbage := call(t, func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		_, _ = w.Write([]byte(`not json`))
	})
	if garbage == nil || cloud.IsTransient(garbage) {
		t.Errorf("a complete answer that is not JSON: IsTransient(%v) = true, want false", garbage)
	}
}

func TestErrorCodeAndMessage(t *testing.T) {
	err := &smithy.GenericAPIError{Code: "ValidationError", Message: "No updates are to be performed."}
	if cloud.ErrorCode(err) != "ValidationError" || cloud.ErrorMessage(err) != "No updates are to be performed." {
		t.Fatal("code or message lost")
	}
	plain := errors.New("plain")
	if cloud.ErrorCode(plain) != "" || cloud.ErrorMessage(plain) != "plain" {
		t.Fatal("non-AWS error misread")
	}
}

func TestLoadHonoursTheLocalCloudEndpoint(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
	t.Setenv("AWS_REGION", "eu-central-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDLOCAL")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	cfg, err := cloud.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(cfg.BaseEndpoint) != "http://127.0.0.1:4566" || cfg.Region != "eu-central-1" {
		t.Fatalf("endpoint %v region %s", aws.ToString(cfg.BaseEndpoint), cfg.Region)
	}
	if cfg.Retryer == nil || cfg.Retryer().MaxAttempts() != 5 {
		t.Fatal("the bounded retryer is not installed")
	}
	// Checksums are skipped only for an emulator endpoint.
	if !cloud.NewDynamoDB(cfg).Options().DisableValidateResponseChecksum {
		t.Fatal("checksum validation left on for the local cloud")
	}
	cfg.BaseEndpoint = nil
	if cloud.NewDynamoDB(cfg).Options().DisableValidateResponseChecksum {
		t.Fatal("checksum validation turned off for real DynamoDB")
	}
}
