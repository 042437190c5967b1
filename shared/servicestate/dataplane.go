package servicestate

import (
	"context"
	"errors"
	"fmt"
	"github.com/byocloud/byoc/shared/store"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/settings"
)

// DataPlane is who may speak for a deployment's data plane: the roles of its in-cluster
// components, recorded at provisioning from the infrastructure stack's outputs.
//
// Sender verification compares role ids, not ARNs. SQS gives each received message the
// sender's identity as the SenderId attribute, and for a role session that is
// "<role unique id>:<session name>" (for example "AROAX5IAUF2ODRKAEXAMPL:i-0abc"): the ARN is
// not in it. The unique id is also what makes the check safe across role re-creation: a role
// deleted and recreated under the same name gets a new id, so a stolen or stale session of
// the old role does not pass. The infrastructure stack therefore outputs the exporter role's
// id (Fn::GetAtt Role.RoleId) beside its ARN.
type DataPlane struct {
	DeploymentID    string `json:"deploymentId"`
	AccountID       string `json:"accountId"`
	ExporterRoleARN string `json:"exporterRoleArn"`
	ExporterRoleID  string `json:"exporterRoleId"`
	// AgentRoleARN is the in-cluster agent's role (the infrastructure stack's AgentRoleArn
	// output, assumed through EKS Pod Identity): the only principal allowed to read the
	// deployment's command channel.
	AgentRoleARN string    `json:"agentRoleArn"`
	UpdatedAt    time.Time `json:"updatedAt"`
}

var (
	accountPattern = regexp.MustCompile(`^[0-9]{12}$`)
	roleARNPattern = regexp.MustCompile(`^arn:aws(-cn|-us-gov)?:iam::([0-9]{12}):role/[\w+=,.@/-]{1,512}$`)
	// Role unique ids are "AROA" and upper-case letters and digits (21 characters in AWS).
	roleIDPattern = regexp.MustCompile(`^AROA[A-Z0-9]{12,124}$`)
)

// RoleARNAccount returns the account of an IAM role ARN, and false when arn is not one.
func RoleARNAccount(arn string) (string, bool) {
	m := roleARNPattern.FindStringSubmatch(arn)
	if m == nil {
		return "", false
	}
	return m[2], true
}

// Validate checks the record; the error names the field and the rule.
func (d DataPlane) Validate() error {
	var bad []string
	if !settings.ValidDeploymentID(d.DeploymentID) {
		bad = append(bad, "deploymentId: must be "+settings.DeploymentIDRule)
	}
	if !accountPattern.MatchString(d.AccountID) {
		bad = append(bad, "accountId: must be 12 digits")
	}
	for field, arn := range map[string]string{"exporterRoleArn": d.ExporterRoleARN, "agentRoleArn": d.AgentRoleARN} {
		account, ok := RoleARNAccount(arn)
		switch {
		case !ok:
			bad = append(bad, field+": must be an IAM role ARN")
		case account != d.AccountID:
			bad = append(bad, fmt.Sprintf("%s: must be a role of account %s, not %s", field, d.AccountID, account))
		}
	}
	if !roleIDPattern.MatchString(d.ExporterRoleID) {
		bad = append(bad, `exporterRoleId: must be an IAM role unique id ("AROA" and upper-case letters or digits)`)
	}
	if len(bad) > 0 {
		return fmt.Errorf("data plane of %q: %s", d.DeploymentID, strings.Join(sortedStrings(bad), "; "))
	}
	return nil
}

// Sender outcomes of VerifySender.
var (
	// ErrNoSender: the message has no SenderId (it did not come through SQS as AWS delivers
	// it); it cannot be verified.
	ErrNoSender = errors.New("no SenderId attribute")
	// ErrForgedSender: the sender is not the deployment's exporter: a message claiming
	// another customer's deployment, a security event.
	ErrForgedSender = errors.New("sender is not the deployment's state exporter")
)

// VerifySender checks an SQS SenderId against the deployment's exporter role.
func (d DataPlane) VerifySender(senderID string) error {
	if senderID == "" {
		return ErrNoSender
	}
	roleID, _, _ := strings.Cut(senderID, ":")
	if roleID != d.ExporterRoleID {
		return fmt.Errorf("%w: SenderId %q is not a session of %s (%s)", ErrForgedSender, senderID, d.ExporterRoleARN, d.ExporterRoleID)
	}
	return nil
}

func dataPlaneSK(deploymentID string) string { return "DEP#" + deploymentID }

// RegisterDataPlane records (or updates, when the stack was updated) a deployment's
// data-plane roles. A deployment's account never changes: a record for another account is
// refused with ErrConflict and nothing is written.
func (r *Repo) RegisterDataPlane(ctx context.Context, d DataPlane) error {
	if err := d.Validate(); err != nil {
		return err
	}
	d.UpdatedAt = r.now()
	item, err := store.ItemWithKey(d, pkDataPlane, dataPlaneSK(d.DeploymentID), kindDataPlane)
	if err != nil {
		return err
	}
	_, err = r.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 aws.String(r.table),
		Item:                      item,
		ConditionExpression:       aws.String("attribute_not_exists(PK) OR #account = :account"),
		ExpressionAttributeNames:  map[string]string{"#account": "accountId"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":account": str(d.AccountID)},
	})
	if store.ConditionFailed(err) {
		return fmt.Errorf("data plane of %s is registered for another account than %s: %w", d.DeploymentID, d.AccountID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("register data plane of %s: %w", d.DeploymentID, err)
	}
	return nil
}

// DataPlane returns a deployment's data-plane record, or ErrNotFound.
func (r *Repo) DataPlane(ctx context.Context, deploymentID string) (DataPlane, error) {
	item, err := r.get(ctx, pkDataPlane, dataPlaneSK(deploymentID))
	if err != nil {
		return DataPlane{}, err
	}
	var d DataPlane
	if err := store.UnmarshalItem(item, &d); err != nil {
		return DataPlane{}, fmt.Errorf("decode data plane of %s: %w", deploymentID, err)
	}
	return d, nil
}

// DataPlanes returns every registered data plane (one query of the registry partition): the
// input of the state queue's admission policy.
func (r *Repo) DataPlanes(ctx context.Context) ([]DataPlane, error) {
	items, err := r.queryAll(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("PK = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(pkDataPlane)},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("list data planes: %w", err)
	}
	out := make([]DataPlane, 0, len(items))
	for _, it := range items {
		var d DataPlane
		if err := store.UnmarshalItem(it, &d); err != nil {
			return nil, fmt.Errorf("decode a data plane: %w", err)
		}
		out = append(out, d)
	}
	return out, nil
}

// RemoveDataPlane forgets a deployment's data plane (at teardown): its exporter can no
// longer report. It returns ErrNotFound when there was nothing to remove.
func (r *Repo) RemoveDataPlane(ctx context.Context, deploymentID string) error {
	_, err := r.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:           aws.String(r.table),
		Key:                 store.Key(pkDataPlane, dataPlaneSK(deploymentID)),
		ConditionExpression: aws.String("attribute_exists(PK)"),
	})
	if store.ConditionFailed(err) {
		return fmt.Errorf("data plane of %s: %w", deploymentID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("remove data plane of %s: %w", deploymentID, err)
	}
	return nil
}

// DataPlaneFromOutputs builds a deployment's data-plane record from its infrastructure
// stack's outputs (what provisioning records): the exporter role's ARN and unique id, and
// the agent role. It fails, naming the output, when one is missing
// or malformed.
func DataPlaneFromOutputs(deploymentID, accountID string, outputs map[string]string) (DataPlane, error) {
	for _, name := range []string{contract.InfraOutputStateExporterRoleArn, contract.InfraOutputStateExporterRoleID, contract.InfraOutputAgentRoleArn} {
		if outputs[name] == "" {
			return DataPlane{}, fmt.Errorf("data plane of %s: the infrastructure stack has no %s output", deploymentID, name)
		}
	}
	d := DataPlane{
		DeploymentID:    deploymentID,
		AccountID:       accountID,
		ExporterRoleARN: outputs[contract.InfraOutputStateExporterRoleArn],
		ExporterRoleID:  outputs[contract.InfraOutputStateExporterRoleID],
		AgentRoleARN:    outputs[contract.InfraOutputAgentRoleArn],
	}
	return d, d.Validate()
}
