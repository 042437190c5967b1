package servicestate

import (
	"context"
	"fmt"
	"github.com/byocloud/byoc/shared/store"
	"maps"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/statemsg"
)

// CommandStatus is where a command to the data plane stands.
type CommandStatus string

const (
	CommandPending   CommandStatus = "pending"   // recorded, not yet on the channel
	CommandSent      CommandStatus = "sent"      // on the channel
	CommandAccepted  CommandStatus = "accepted"  // the agent acknowledged it and is applying it
	CommandSucceeded CommandStatus = "succeeded" // the agent applied it
	CommandFailed    CommandStatus = "failed"    // the agent could not apply it
)

// Final reports whether the command's outcome is known.
func (s CommandStatus) Final() bool { return s == CommandSucceeded || s == CommandFailed }

// earlier lists the statuses a command may move to each status from: progress only goes
// forward, so an old or duplicated acknowledgement cannot undo a newer one.
var earlier = map[CommandStatus][]CommandStatus{
	CommandSent:      {CommandPending},
	CommandAccepted:  {CommandPending, CommandSent},
	CommandSucceeded: {CommandPending, CommandSent, CommandAccepted},
	CommandFailed:    {CommandPending, CommandSent, CommandAccepted},
}

// CommandRecord is a command sent (or about to be sent) to a deployment's data plane and
// what the agent said about it.
type CommandRecord struct {
	ID           string            `json:"id"`
	DeploymentID string            `json:"deploymentId"`
	ServiceID    string            `json:"serviceId,omitempty"` // empty for deployment-wide commands
	Kind         string            `json:"commandKind"`         // "kind" is every item's item kind
	Params       map[string]string `json:"params,omitempty"`
	Status       CommandStatus     `json:"status"`
	Detail       string            `json:"detail,omitempty"`
	CreatedAt    time.Time         `json:"createdAt"`
	UpdatedAt    time.Time         `json:"updatedAt"`
}

func (c CommandRecord) sameRequest(o CommandRecord) bool {
	return c.Kind == o.Kind && c.ServiceID == o.ServiceID && maps.Equal(c.Params, o.Params)
}

// CreateCommand records a new command as pending. Creating the same command (same id, kind,
// service and parameters) again returns the stored record with created=false, so a retried
// workflow step does not issue it twice; the same id for a different request is refused
// with ErrConflict and nothing is written.
func (r *Repo) CreateCommand(ctx context.Context, c CommandRecord) (stored CommandRecord, created bool, err error) {
	if !settings.ValidDeploymentID(c.DeploymentID) {
		return CommandRecord{}, false, fmt.Errorf("create command %q: deploymentId must be %s", c.ID, settings.DeploymentIDRule)
	}
	if !statemsg.ValidID(c.ID) || (c.ServiceID != "" && !statemsg.ValidID(c.ServiceID)) || c.Kind == "" {
		return CommandRecord{}, false, fmt.Errorf("create command %q: id (and serviceId when set) %s; kind is required", c.ID, statemsg.IDRule)
	}
	now := r.now()
	c.Status, c.Detail, c.CreatedAt, c.UpdatedAt = CommandPending, "", now, now
	item, err := store.ItemWithKey(c, store.DeploymentPK(c.DeploymentID), skCommandPrefix+c.ID, kindCommand)
	if err != nil {
		return CommandRecord{}, false, err
	}
	_, err = r.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(r.table), Item: item, ConditionExpression: aws.String("attribute_not_exists(PK)"),
	})
	if err == nil {
		return c, true, nil
	}
	if !store.ConditionFailed(err) {
		return CommandRecord{}, false, fmt.Errorf("create command %s of %s: %w", c.ID, c.DeploymentID, err)
	}
	existing, err := r.Command(ctx, c.DeploymentID, c.ID)
	if err != nil {
		return CommandRecord{}, false, err
	}
	if !existing.sameRequest(c) {
		return CommandRecord{}, false, fmt.Errorf("command %s of %s exists as a different %s command: %w", c.ID, c.DeploymentID, existing.Kind, ErrConflict)
	}
	return existing, false, nil
}

// Command returns a command record, or ErrNotFound.
func (r *Repo) Command(ctx context.Context, deploymentID, id string) (CommandRecord, error) {
	item, err := r.get(ctx, store.DeploymentPK(deploymentID), skCommandPrefix+id)
	if err != nil {
		return CommandRecord{}, err
	}
	var c CommandRecord
	if err := store.UnmarshalItem(item, &c); err != nil {
		return CommandRecord{}, fmt.Errorf("decode command %s of %s: %w", id, deploymentID, err)
	}
	return c, nil
}

// AdvanceCommand moves a command forward to status (never back). serviceID is the service
// whose report carries the acknowledgement ("" when the control plane itself advances it):
// an agent acknowledging for one service cannot settle a command addressed to another.
// It reports whether the record changed; an unknown command, a stale acknowledgement or one
// from the wrong service changes nothing and is not an error.
func (r *Repo) AdvanceCommand(ctx context.Context, deploymentID, id string, status CommandStatus, detail, serviceID string) (bool, error) {
	from, ok := earlier[status]
	if !ok {
		return false, fmt.Errorf("advance command %s of %s: %q is not a status a command can move to", id, deploymentID, status)
	}
	values := map[string]types.AttributeValue{
		":status": str(string(status)), ":now": str(r.now().Format(time.RFC3339Nano)), ":detail": str(detail),
	}
	cond := "attribute_exists(PK) AND #status IN ("
	for i, s := range from {
		name := fmt.Sprintf(":from%d", i)
		values[name] = str(string(s))
		if i > 0 {
			cond += ", "
		}
		cond += name
	}
	cond += ")"
	names := map[string]string{"#status": "status", "#updated": "updatedAt", "#detail": "detail"}
	if serviceID != "" {
		names["#service"] = "serviceId"
		cond += " AND (attribute_not_exists(#service) OR #service = :service)"
		values[":service"] = str(serviceID)
	}
	_, err := r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(r.table),
		Key:                       store.Key(store.DeploymentPK(deploymentID), skCommandPrefix+id),
		UpdateExpression:          aws.String("SET #status = :status, #updated = :now, #detail = :detail"),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	if store.ConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("advance command %s of %s to %s: %w", id, deploymentID, status, err)
	}
	return true, nil
}

// ApplyAcks records the acknowledgements a report carries. It returns the ids of the
// commands whose record changed.
func (r *Repo) ApplyAcks(ctx context.Context, m statemsg.Message) ([]string, error) {
	var changed []string
	for _, a := range m.Commands {
		ok, err := r.AdvanceCommand(ctx, m.DeploymentID, a.ID, CommandStatus(a.Status), a.Detail, m.ServiceID)
		if err != nil {
			return changed, err
		}
		if ok {
			changed = append(changed, a.ID)
		}
	}
	return changed, nil
}
