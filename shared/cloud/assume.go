package cloud

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/byocloud/byoc/shared/contract"
)

// CustomerRole names the management role in one customer account and the ExternalId that
// proves the caller is the control plane acting for that customer.
type CustomerRole struct {
	AccountID   string
	Region      string // region of the customer's deployment; the returned config targets it
	ExternalID  string
	SessionName string // shows in the customer's CloudTrail: use the deployment id
}

// ARN is the management role's ARN. The role name is fixed (contract.ManagementRoleName) so
// the control plane's own policy can name it.
func (r CustomerRole) ARN() string {
	return fmt.Sprintf("arn:%s:iam::%s:role/%s", Partition(r.Region), r.AccountID, contract.ManagementRoleName)
}

// Partition returns the AWS partition of a region.
func Partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	default:
		return "aws"
	}
}

// AccessDeniedError says the customer's management role refused us: the role is missing, the
// trust policy does not name the control plane, or the ExternalId is wrong. Retrying cannot
// fix any of these, so the workflow does not retry it (its name is the Lambda errorType).
type AccessDeniedError struct {
	RoleARN string
	Err     error
}

func (e *AccessDeniedError) Error() string {
	return fmt.Sprintf("cannot assume %s: access denied (is the bootstrap stack deployed, and does its ExternalId match?): %v", e.RoleARN, e.Err)
}

func (e *AccessDeniedError) Unwrap() error { return e.Err }

// sessionDuration is the lifetime of customer credentials. One workflow step uses them for
// seconds; the minimum STS allows is plenty.
const sessionDuration = 900

// AssumeRole assumes the customer's management role with the ExternalId and returns a copy of
// base that acts in the customer account and region. The call is made eagerly, not lazily by
// a credentials provider, so a refusal surfaces here as an AccessDeniedError instead of as an
// opaque error from whichever call came first.
func AssumeRole(ctx context.Context, client STS, base aws.Config, role CustomerRole) (aws.Config, error) {
	if role.AccountID == "" || role.Region == "" || role.ExternalID == "" || role.SessionName == "" {
		return aws.Config{}, fmt.Errorf("assume role: account, region, ExternalId and session name are required (got account %q region %q session %q)",
			role.AccountID, role.Region, role.SessionName)
	}
	out, err := client.AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn:         aws.String(role.ARN()),
		RoleSessionName: aws.String(role.SessionName),
		ExternalId:      aws.String(role.ExternalID),
		DurationSeconds: aws.Int32(sessionDuration),
	})
	if err != nil {
		if IsAccessDenied(err) {
			return aws.Config{}, &AccessDeniedError{RoleARN: role.ARN(), Err: err}
		}
		return aws.Config{}, fmt.Errorf("assume %s: %w", role.ARN(), err)
	}
	c := out.Credentials
	if c == nil || c.AccessKeyId == nil || c.SecretAccessKey == nil {
		return aws.Config{}, errors.New("assume " + role.ARN() + ": STS returned no credentials")
	}
	cfg := base.Copy()
	cfg.Region = role.Region
	cfg.Credentials = aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(
		aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken)))
	return cfg, nil
}
