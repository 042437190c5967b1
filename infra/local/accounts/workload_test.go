package accounts

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

const exporterRole = "arn:aws:iam::111111111111:role/clickhouse-cloud-d1-state-exporter"

func TestWorkloadCredentialsActAsAPodSessionOfTheRole(t *testing.T) {
	f := newFixture(t)
	creds, err := f.accounts.WorkloadCredentials(exporterRole, "state-exporter", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(creds.AccessKeyID, "ASIA") || creds.SessionToken == "" || creds.AccountID != customer {
		t.Errorf("credentials %+v do not look like session credentials in %s", creds, customer)
	}
	if d := time.Until(creds.Expires); d < 11*time.Hour || d > 12*time.Hour+time.Minute {
		t.Errorf("default lifetime ends in %v, want 12 hours", d)
	}
	// No trust check: the role need not even be registered (EKS Pod Identity is the caller).
	id, err := f.client(creds).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	wantUserID := RoleID(exporterRole) + ":state-exporter"
	if aws.ToString(id.UserId) != wantUserID {
		t.Errorf("UserId = %q, want RoleID(arn):session = %q", aws.ToString(id.UserId), wantUserID)
	}
	if got, want := aws.ToString(id.Arn), "arn:aws:sts::111111111111:assumed-role/clickhouse-cloud-d1-state-exporter/state-exporter"; got != want {
		t.Errorf("Arn = %q, want %q", got, want)
	}
	p := f.accounts.PrincipalForAccessKey(creds.AccessKeyID)
	if p.RoleArn != exporterRole || p.Account != customer || p.UserID != wantUserID {
		t.Errorf("principal = %+v", p)
	}
	short, err := f.accounts.WorkloadCredentials(exporterRole, "agent", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(short.Expires); d > time.Hour+time.Second {
		t.Errorf("lifetime 1h ends in %v", d)
	}
}

func TestWorkloadCredentialsRefuseBadInput(t *testing.T) {
	cases := []struct{ role, session, want string }{
		{"arn:aws:iam::111111111111:user/someone", "state-exporter", "is not a role ARN"},
		{"arn:aws:iam::1111:role/r", "state-exporter", "is not a role ARN"},
		{"", "state-exporter", "is not a role ARN"},
		{exporterRole, "", "session name"},
		{exporterRole, "pod:1", "session name"},  // ':' would break "<role id>:<session>"
		{exporterRole, "ns/pod", "session name"}, // '/' would break the session ARN
		{exporterRole, strings.Repeat("s", 65), "session name"},
	}
	for _, c := range cases {
		f := newFixture(t)
		before := len(f.accounts.sessions)
		_, err := f.accounts.WorkloadCredentials(c.role, c.session, time.Hour)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("WorkloadCredentials(%q, %q) error = %v, want %q", c.role, c.session, err, c.want)
		}
		if len(f.accounts.sessions) != before {
			t.Errorf("WorkloadCredentials(%q, %q) issued a session despite the error", c.role, c.session)
		}
	}
}
