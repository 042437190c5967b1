package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

const (
	customer        = "111111111111"
	provisionerRole = "arn:aws:iam::000000000000:role/ByocControlPlane-ProvisionerRole-ABC"
	managementRole  = "arn:aws:iam::111111111111:role/ClickHouseManagementRole"
)

// managementTrust is the bootstrap stack's trust policy: only the control plane's role, and
// only with the customer's ExternalId.
var managementTrust = json.RawMessage(`{
  "Version": "2012-10-17",
  "Statement": [{
    "Effect": "Allow",
    "Principal": {"AWS": "` + provisionerRole + `"},
    "Action": "sts:AssumeRole",
    "Condition": {"StringEquals": {"sts:ExternalId": "ext-123"}}
  }]
}`)

// provisionerPolicy is the control plane's permission: assume only the management role.
var provisionerPolicy = json.RawMessage(`{
  "Version": "2012-10-17",
  "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "arn:aws:iam::*:role/ClickHouseManagementRole"}]
}`)

type fixture struct {
	accounts *Accounts
	url      string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	a := New()
	a.SetLogger(slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	if err := a.RegisterRole(customer, Role{Name: "ClickHouseManagementRole", TrustPolicy: managementTrust}); err != nil {
		t.Fatal(err)
	}
	if err := a.RegisterRole(VendorAccount, Role{
		Name:             "ByocControlPlane-ProvisionerRole-ABC",
		TrustPolicy:      json.RawMessage(`{"Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`),
		IdentityPolicies: []json.RawMessage{provisionerPolicy},
	}); err != nil {
		t.Fatal(err)
	}
	return &fixture{accounts: a, url: srv.URL}
}

func (f *fixture) client(creds aws.Credentials) *sts.Client {
	return sts.New(sts.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(f.url),
		Credentials:  credentials.StaticCredentialsProvider{Value: creds},
	})
}

func (f *fixture) provisioner(t *testing.T) *sts.Client {
	t.Helper()
	creds, err := f.accounts.FunctionCredentials(provisionerRole, "byoc-provision", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return f.client(creds)
}

func dummyVendorCreds() aws.Credentials {
	return aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}
}

func assumeInput(externalID string) *sts.AssumeRoleInput {
	in := &sts.AssumeRoleInput{RoleArn: aws.String(managementRole), RoleSessionName: aws.String("byoc-provision")}
	if externalID != "" {
		in.ExternalId = aws.String(externalID)
	}
	return in
}

func TestAssumeRoleWithMatchingExternalIDActsInTheCustomerAccount(t *testing.T) {
	f := newFixture(t)
	out, err := f.provisioner(t).AssumeRole(context.Background(), assumeInput("ext-123"))
	if err != nil {
		t.Fatal(err)
	}
	wantArn := "arn:aws:sts::111111111111:assumed-role/ClickHouseManagementRole/byoc-provision"
	if got := aws.ToString(out.AssumedRoleUser.Arn); got != wantArn {
		t.Errorf("AssumedRoleUser.Arn = %q, want %q", got, wantArn)
	}
	if !strings.HasPrefix(aws.ToString(out.Credentials.AccessKeyId), "ASIA") || aws.ToString(out.Credentials.SessionToken) == "" {
		t.Errorf("credentials %+v do not look like session credentials", out.Credentials)
	}
	if d := time.Until(aws.ToTime(out.Credentials.Expiration)); d < 55*time.Minute || d > time.Hour+time.Minute {
		t.Errorf("expiration in %v, want about one hour", d)
	}

	// The returned credentials act in the customer account, as the assumed role.
	assumed := f.client(aws.Credentials{
		AccessKeyID:     aws.ToString(out.Credentials.AccessKeyId),
		SecretAccessKey: aws.ToString(out.Credentials.SecretAccessKey),
		SessionToken:    aws.ToString(out.Credentials.SessionToken),
	})
	id, err := assumed.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(id.Account) != customer || aws.ToString(id.Arn) != wantArn {
		t.Errorf("GetCallerIdentity = %s %s, want %s %s", aws.ToString(id.Account), aws.ToString(id.Arn), customer, wantArn)
	}
	if !strings.HasPrefix(aws.ToString(id.UserId), "AROA") || !strings.HasSuffix(aws.ToString(id.UserId), ":byoc-provision") {
		t.Errorf("UserId = %q, want AROA...:byoc-provision", aws.ToString(id.UserId))
	}
	req, _ := http.NewRequest(http.MethodPost, "/", nil)
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+aws.ToString(out.Credentials.AccessKeyId)+"/20260101/us-east-1/cloudformation/aws4_request, SignedHeaders=host, Signature=x")
	if got := f.accounts.CallerAccount(req); got != customer {
		t.Errorf("CallerAccount = %q, want %q", got, customer)
	}
}

func TestAssumeRoleDenied(t *testing.T) {
	cases := []struct {
		name       string
		setup      func(f *fixture)
		creds      func(t *testing.T, f *fixture) aws.Credentials
		externalID string
		roleArn    string
	}{
		{name: "wrong ExternalId", externalID: "ext-999"},
		{name: "missing ExternalId", externalID: ""},
		{name: "role does not exist", externalID: "ext-123", roleArn: "arn:aws:iam::222222222222:role/ClickHouseManagementRole"},
		{name: "role path differs", externalID: "ext-123", roleArn: "arn:aws:iam::111111111111:role/other/ClickHouseManagementRole"},
		{name: "role removed by its stack", externalID: "ext-123", setup: func(f *fixture) {
			f.accounts.RemoveRole(customer, "ClickHouseManagementRole")
		}},
		{name: "caller is not the trusted role", externalID: "ext-123", creds: func(t *testing.T, f *fixture) aws.Credentials {
			c, err := f.accounts.FunctionCredentials("arn:aws:iam::000000000000:role/SomeOtherRole", "s", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
		{name: "vendor root is not the trusted role", externalID: "ext-123", creds: func(*testing.T, *fixture) aws.Credentials {
			return dummyVendorCreds()
		}},
		{name: "caller's own policy does not allow the target", externalID: "ext-123", setup: func(f *fixture) {
			_ = f.accounts.RegisterRole(VendorAccount, Role{
				Name:        "ByocControlPlane-ProvisionerRole-ABC",
				TrustPolicy: json.RawMessage(`{"Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`),
				IdentityPolicies: []json.RawMessage{json.RawMessage(
					`{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"arn:aws:iam::*:role/SomethingElse"}]}`)},
			})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			if c.setup != nil {
				c.setup(f)
			}
			client := f.provisioner(t)
			caller := "arn:aws:sts::000000000000:assumed-role/ByocControlPlane-ProvisionerRole-ABC/byoc-provision"
			if c.creds != nil {
				creds := c.creds(t, f)
				client = f.client(creds)
				caller = f.accounts.PrincipalForAccessKey(creds.AccessKeyID).Arn
			}
			in := assumeInput(c.externalID)
			roleArn := managementRole
			if c.roleArn != "" {
				roleArn = c.roleArn
				in.RoleArn = aws.String(roleArn)
			}
			sessionsBefore := len(f.accounts.sessions)
			_, err := client.AssumeRole(context.Background(), in)
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" {
				t.Fatalf("AssumeRole error = %v, want AccessDenied", err)
			}
			want := "User: " + caller + " is not authorized to perform: sts:AssumeRole on resource: " + roleArn
			if apiErr.ErrorMessage() != want {
				t.Errorf("message = %q\nwant      %q", apiErr.ErrorMessage(), want)
			}
			if len(f.accounts.sessions) != sessionsBefore {
				t.Errorf("a denied AssumeRole issued credentials")
			}
		})
	}
}

func TestAssumeRoleValidation(t *testing.T) {
	cases := []struct {
		name     string
		in       *sts.AssumeRoleInput
		contains string
	}{
		{"session name too short", &sts.AssumeRoleInput{RoleArn: aws.String(managementRole), RoleSessionName: aws.String("x"), ExternalId: aws.String("ext-123")}, "'roleSessionName'"},
		{"session name bad characters", &sts.AssumeRoleInput{RoleArn: aws.String(managementRole), RoleSessionName: aws.String("a b"), ExternalId: aws.String("ext-123")}, "'roleSessionName'"},
		{"duration too short", &sts.AssumeRoleInput{RoleArn: aws.String(managementRole), RoleSessionName: aws.String("ok"), ExternalId: aws.String("ext-123"), DurationSeconds: aws.Int32(60)}, "'durationSeconds'"},
		{"duration above the role's maximum", &sts.AssumeRoleInput{RoleArn: aws.String(managementRole), RoleSessionName: aws.String("ok"), ExternalId: aws.String("ext-123"), DurationSeconds: aws.Int32(7200)}, "exceeds the MaxSessionDuration"},
		{"external id too short", &sts.AssumeRoleInput{RoleArn: aws.String(managementRole), RoleSessionName: aws.String("ok"), ExternalId: aws.String("e")}, "'externalId'"},
		{"not a role ARN", &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::111111111111:user/bob"), RoleSessionName: aws.String("ok")}, "is not a role ARN"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			_, err := f.provisioner(t).AssumeRole(context.Background(), c.in)
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "ValidationError" {
				t.Fatalf("error = %v, want ValidationError", err)
			}
			if !strings.Contains(apiErr.ErrorMessage(), c.contains) {
				t.Errorf("message %q does not contain %q", apiErr.ErrorMessage(), c.contains)
			}
		})
	}
}

func TestAccountPrincipalTrustAndLongerSessions(t *testing.T) {
	f := newFixture(t)
	err := f.accounts.RegisterRole(customer, Role{
		Name:               "Admin",
		Path:               "/ops/",
		MaxSessionDuration: 4 * time.Hour,
		TrustPolicy:        json.RawMessage(`{"Statement":{"Effect":"Allow","Principal":{"AWS":"000000000000"},"Action":"sts:AssumeRole"}}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Vendor root may assume it (account principal); a 2-hour session fits the role's 4 hours.
	out, err := f.client(dummyVendorCreds()).AssumeRole(context.Background(), &sts.AssumeRoleInput{
		RoleArn: aws.String("arn:aws:iam::111111111111:role/ops/Admin"), RoleSessionName: aws.String("ops"), DurationSeconds: aws.Int32(7200),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(out.AssumedRoleUser.Arn); got != "arn:aws:sts::111111111111:assumed-role/Admin/ops" {
		t.Errorf("Arn = %q", got)
	}
	// The provisioner's own policy names only ClickHouseManagementRole, so it may not.
	_, err = f.provisioner(t).AssumeRole(context.Background(), &sts.AssumeRoleInput{
		RoleArn: aws.String("arn:aws:iam::111111111111:role/ops/Admin"), RoleSessionName: aws.String("ops"),
	})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" {
		t.Fatalf("error = %v, want AccessDenied from the caller's identity policy", err)
	}
}

func TestCallerIdentityOfStaticKeys(t *testing.T) {
	f := newFixture(t)
	cases := []struct{ key, account, arn string }{
		{"test", VendorAccount, "arn:aws:iam::000000000000:root"},
		{"AKIAIOSFODNN7EXAMPLE", VendorAccount, "arn:aws:iam::000000000000:root"},
		{customer, customer, "arn:aws:iam::111111111111:root"},
	}
	for _, c := range cases {
		id, err := f.client(aws.Credentials{AccessKeyID: c.key, SecretAccessKey: "x"}).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(id.Account) != c.account || aws.ToString(id.Arn) != c.arn {
			t.Errorf("key %q: identity %s %s, want %s %s", c.key, aws.ToString(id.Account), aws.ToString(id.Arn), c.account, c.arn)
		}
	}
	if got := AdminCredentials(customer).AccessKeyID; f.accounts.PrincipalForAccessKey(got).Account != customer {
		t.Errorf("AdminCredentials(%s) act in %s", customer, f.accounts.PrincipalForAccessKey(got).Account)
	}
}

func TestUnknownActionIsRejected(t *testing.T) {
	f := newFixture(t)
	resp, err := http.PostForm(f.url, map[string][]string{"Action": {"GetSessionToken"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status = %d, want 400", resp.StatusCode)
	}
}

func TestRegisterRoleRejectsBadInput(t *testing.T) {
	a := New()
	cases := []struct {
		name, account string
		role          Role
		contains      string
	}{
		{"bad account", "1234", Role{Name: "R", TrustPolicy: managementTrust}, `account "1234"`},
		{"bad name", customer, Role{Name: "has space", TrustPolicy: managementTrust}, "RoleName"},
		{"trust not JSON", customer, Role{Name: "R", TrustPolicy: json.RawMessage(`{`)}, "AssumeRolePolicyDocument"},
		{"trust without statement", customer, Role{Name: "R", TrustPolicy: json.RawMessage(`{"Version":"2012-10-17"}`)}, "no Statement"},
		{"bad effect", customer, Role{Name: "R", TrustPolicy: json.RawMessage(`{"Statement":[{"Effect":"Maybe","Action":"sts:AssumeRole"}]}`)}, "Effect"},
		{"bad identity policy", customer, Role{Name: "R", TrustPolicy: managementTrust, IdentityPolicies: []json.RawMessage{json.RawMessage(`{"Statement":[{"Effect":"Allow"}]}`)}}, "Action and NotAction"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := a.RegisterRole(c.account, c.role)
			if err == nil || !strings.Contains(err.Error(), c.contains) {
				t.Fatalf("RegisterRole error = %v, want one containing %q", err, c.contains)
			}
			if _, ok := a.LookupRole(c.account, c.role.Name); ok {
				t.Errorf("a rejected role was registered")
			}
		})
	}
}

func TestSigningScope(t *testing.T) {
	r, _ := http.NewRequest(http.MethodGet, "http://x/?X-Amz-Credential=AKID%2F20260101%2Feu-west-1%2Fsts%2Faws4_request", nil)
	s, ok := SigningScope(r)
	if !ok || s != (Scope{AccessKeyID: "AKID", Date: "20260101", Region: "eu-west-1", Service: "sts"}) {
		t.Errorf("presigned scope = %+v, %v", s, ok)
	}
	r, _ = http.NewRequest(http.MethodPost, "http://x/", nil)
	if _, ok := SigningScope(r); ok {
		t.Errorf("unsigned request has a scope")
	}
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/states/aws4_request, SignedHeaders=host, Signature=abc")
	if s, ok := SigningScope(r); !ok || s.Service != "states" || s.Region != "us-east-1" {
		t.Errorf("header scope = %+v, %v", s, ok)
	}
}

// A signature checker gets a key's secret only with the request's token as AWS demands it:
// a session key with its own token, a root key with none.
func TestSecretNeedsTheSessionsOwnToken(t *testing.T) {
	a := New()
	creds, err := a.FunctionCredentials(provisionerRole, "provision", 0)
	if err != nil {
		t.Fatal(err)
	}
	if secret, p, ok := a.Secret(creds.AccessKeyID, creds.SessionToken); !ok || secret != creds.SecretAccessKey || p.RoleArn != provisionerRole {
		t.Fatalf("the session's own token: %q %+v %v, want its secret and role", secret, p, ok)
	}
	other, err := a.FunctionCredentials(provisionerRole, "other", 0)
	if err != nil {
		t.Fatal(err)
	}
	for name, token := range map[string]string{"no token": "", "another session's token": other.SessionToken, "a forged token": creds.SessionToken + "x"} {
		if _, _, ok := a.Secret(creds.AccessKeyID, token); ok {
			t.Errorf("session key with %s: accepted, want the token refused", name)
		}
	}
	if _, _, ok := a.Secret(customer, ""); !ok {
		t.Error("an account's root key without a token: refused")
	}
	if _, _, ok := a.Secret(customer, creds.SessionToken); ok {
		t.Error("an account's root key with a session token: accepted")
	}
	if _, _, ok := a.Secret("AKIAIOSFODNN7EXAMPLE", ""); ok {
		t.Error("a key the cloud never issued: accepted")
	}
}
