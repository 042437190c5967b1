package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/connectivity"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/settings"
)

// Deployment is one customer's BYOC deployment: one account and region.
type Deployment struct {
	ID         string            `json:"id"`
	Settings   settings.Settings `json:"settings"`
	Status     lifecycle.Status  `json:"status"`
	Version    int64             `json:"version"` // bumped by every write; the optimistic lock
	ExternalID string            `json:"externalId"`
	// StackName is the infrastructure stack in the customer account; StackID the instance
	// last created under that name (it changes when a rolled-back stack is recreated).
	StackName string            `json:"stackName"`
	StackID   string            `json:"stackId,omitempty"`
	Outputs   map[string]string `json:"outputs,omitempty"`
	Failure   *Failure          `json:"failure,omitempty"`
	// ProvisionAttempts counts every provisioning attempt ever made. RunAttempts counts those
	// of the workflow execution named by Execution: the bound on automatic delete-and-recreate
	// applies per execution, so an operator's retry starts with a fresh budget.
	ProvisionAttempts int       `json:"provisionAttempts"`
	Execution         string    `json:"execution,omitempty"`
	RunAttempts       int       `json:"runAttempts"`
	CreatedAt         time.Time `json:"createdAt"`
	UpdatedAt         time.Time `json:"updatedAt"`
	// StalledReportedAt is when the sweep reported the deployment's onboarding stalled; it
	// takes the deployment off the sweep's list of invited ones.
	StalledReportedAt *time.Time `json:"stalledReportedAt,omitempty"`
	// StackVersions are the version parameters of the infrastructure stack as last applied
	// (KubernetesVersion, NodeKubernetesVersion, NodeReleaseVersion, AddonVersion*): what the
	// maintenance schedule plans with, without opening the customer's account.
	StackVersions map[string]string `json:"stackVersions,omitempty"`
	// Maintenance is the window, the rollout channel and the maintenance schedule's state.
	Maintenance *Maintenance `json:"maintenance,omitempty"`
	// Network is the deployment's private connectivity: peerings, PrivateLink, load
	// balancers, IP access lists.
	Network *connectivity.Network `json:"network,omitempty"`
	// Teardown is what the operator asked of the deployment's teardown, and what it left.
	Teardown *Teardown `json:"teardown,omitempty"`
}

// Teardown is a deletion as asked and as done.
type Teardown struct {
	Force      bool      `json:"force,omitempty"`      // services still running were not waited for
	DeleteData bool      `json:"deleteData,omitempty"` // the customer's bucket is deleted too
	Actor      string    `json:"actor"`
	Requested  time.Time `json:"requested"`
	// RetainedBucket is the customer's bucket, kept with its data (deleteData false).
	RetainedBucket string `json:"retainedBucket,omitempty"`
	// Announced: the customer is being (or was) told the deployment is deleted; nothing
	// opens their account any more.
	Announced bool `json:"announced,omitempty"`
	// Abandon: the customer's account no longer lets byoc in (its management role is gone or
	// refuses us), so what byoc built there is left for the customer to delete, and only the
	// vendor side is retired. Abandoned names those stacks.
	Abandon   bool     `json:"abandon,omitempty"`
	Abandoned []string `json:"abandoned,omitempty"`
}

// CustomerRole is the deployment's management role in its customer's account, assumed with
// its ExternalId under a session naming the deployment.
func (d Deployment) CustomerRole() cloud.CustomerRole {
	return cloud.CustomerRole{AccountID: d.Settings.AccountID, Region: d.Settings.Region, ExternalID: d.ExternalID, SessionName: "byoc-" + d.ID}
}

// Failure records why provisioning failed: the stack status, and the first resource that
// failed with CloudFormation's reason.
type Failure struct {
	Status   string    `json:"status"`
	Resource string    `json:"resource,omitempty"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

const (
	kindDeployment = "deployment"
	kindAccount    = "account"
	skMeta         = "META"
	skAccount      = "DEP"
)

// DeploymentPK is the partition of a deployment: its record, audit trail and service state.
func DeploymentPK(id string) string { return "DEP#" + id }

func accountPK(accountID, region string) string { return "ACCT#" + accountID + "#" + region }

type accountIndex struct {
	DeploymentID string `json:"deploymentId"`
}

// Sweep-index lists of deployments a scheduled sweep must look at, keyed by the second of
// their last change: invited ones still waiting for their customer's bootstrap stack, and
// those a workflow is working on (provisioning, updating), whose execution may have ended
// without recording an outcome.
const (
	sweepInvited = "INVITED"
	sweepWorking = "WORKING"
)

// metaItem is a deployment's record. An invited or working one is also on a sweep-index list;
// the record of any other status drops the index keys, which takes it off the list in the
// same write.
func metaItem(d Deployment) (map[string]types.AttributeValue, error) {
	item, err := ItemWithKey(d, DeploymentPK(d.ID), skMeta, kindDeployment)
	if err != nil {
		return nil, err
	}
	item[AttrFleetPK] = &types.AttributeValueMemberS{Value: fleetAll}
	item[AttrFleetSK] = &types.AttributeValueMemberS{Value: fleetSK(d)}
	list := ""
	switch d.Status {
	case lifecycle.Invited:
		if d.StalledReportedAt == nil {
			list = sweepInvited
		}
	case lifecycle.Provisioning, lifecycle.Updating:
		list = sweepWorking
	}
	if list != "" {
		item[AttrSweepPK] = &types.AttributeValueMemberS{Value: list}
		item[AttrSweepAt] = &types.AttributeValueMemberN{Value: fmt.Sprint(d.UpdatedAt.Unix())}
	}
	return item, nil
}

// InvitedBefore returns the ids of the deployments invited before t and still invited: their
// customer has not applied the bootstrap stack, or its completion event was lost. It reads the
// sweep index (eventually consistent: a deployment that just moved on may still be listed;
// read it with Get before acting).
func (s *Store) InvitedBefore(ctx context.Context, t time.Time) ([]string, error) {
	return s.listedBefore(ctx, sweepInvited, t)
}

// WorkingSince returns the ids of the deployments provisioning or updating whose record last
// changed before t (eventually consistent, as InvitedBefore).
func (s *Store) WorkingSince(ctx context.Context, t time.Time) ([]string, error) {
	return s.listedBefore(ctx, sweepWorking, t)
}

func (s *Store) listedBefore(ctx context.Context, list string, t time.Time) ([]string, error) {
	p := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:                aws.String(s.table),
		IndexName:                aws.String(SweepIndex),
		KeyConditionExpression:   aws.String("#pk = :pk AND #at < :at"),
		ExpressionAttributeNames: map[string]string{"#pk": AttrSweepPK, "#at": AttrSweepAt},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": &types.AttributeValueMemberS{Value: list}, ":at": &types.AttributeValueMemberN{Value: fmt.Sprint(t.Unix())},
		},
	})
	var ids []string
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("deployments on list %s before %s: %w", list, t.Format(time.RFC3339), err)
		}
		for _, it := range page.Items {
			if pk, ok := it[AttrPK].(*types.AttributeValueMemberS); ok {
				ids = append(ids, strings.TrimPrefix(pk.Value, DeploymentPK("")))
			}
		}
	}
	return ids, nil
}

// Create stores a new deployment (version 1) and claims its account and region. It fails
// with ErrExists when the id is taken or the account already has a deployment in that region
// (infrastructure is provisioned once per account and region); nothing is written then.
func (s *Store) Create(ctx context.Context, d Deployment, a Audit) (Deployment, error) {
	if d.ID == "" || d.Settings.AccountID == "" || d.Settings.Region == "" || d.Status == "" {
		return Deployment{}, fmt.Errorf("create deployment: id, settings.accountId, settings.region and status are required")
	}
	now := s.now()
	d.Version = 1
	d.CreatedAt, d.UpdatedAt = now, now
	meta, err := metaItem(d)
	if err != nil {
		return Deployment{}, fmt.Errorf("encode deployment %s: %w", d.ID, err)
	}
	index, err := ItemWithKey(accountIndex{DeploymentID: d.ID}, accountPK(d.Settings.AccountID, d.Settings.Region), skAccount, kindAccount)
	if err != nil {
		return Deployment{}, err
	}
	audit, err := s.auditItem(d.ID, a, "", d.Status, now)
	if err != nil {
		return Deployment{}, err
	}
	items := []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String(s.table), Item: meta, ConditionExpression: aws.String("attribute_not_exists(PK)")}},
		{Put: &types.Put{TableName: aws.String(s.table), Item: index, ConditionExpression: aws.String("attribute_not_exists(PK)")}},
		audit,
	}
	items, err = s.withEvent(items, a, now)
	if err != nil {
		return Deployment{}, err
	}
	// The wave membership goes last: the failure positions above stay as they are.
	if member, err := s.membership(d); err != nil {
		return Deployment{}, err
	} else if member != nil {
		items = append(items, *member)
	}
	if _, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items}); err != nil {
		if failed, ok := cancelled(err); ok {
			switch {
			case at(failed, 1):
				existing := ""
				var idx accountIndex
				if s.get(ctx, accountPK(d.Settings.AccountID, d.Settings.Region), skAccount, &idx) == nil {
					existing = " (" + idx.DeploymentID + ")"
				}
				return Deployment{}, fmt.Errorf("account %s already has a deployment%s in %s: %w", d.Settings.AccountID, existing, d.Settings.Region, ErrExists)
			case at(failed, 0):
				return Deployment{}, fmt.Errorf("deployment %s: %w", d.ID, ErrExists)
			case at(failed, 3):
				return Deployment{}, fmt.Errorf("event %s already handled: %w", a.EventID, ErrExists)
			}
		}
		return Deployment{}, fmt.Errorf("create deployment %s: %w", d.ID, err)
	}
	return d, nil
}

func at(failed []bool, i int) bool { return i < len(failed) && failed[i] }

// Get returns a deployment, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (Deployment, error) {
	var d Deployment
	if err := s.get(ctx, DeploymentPK(id), skMeta, &d); err != nil {
		return Deployment{}, fmt.Errorf("deployment %s: %w", id, err)
	}
	return d, nil
}

// ByAccount returns the deployment of an account in a region, or ErrNotFound.
func (s *Store) ByAccount(ctx context.Context, accountID, region string) (Deployment, error) {
	var idx accountIndex
	if err := s.get(ctx, accountPK(accountID, region), skAccount, &idx); err != nil {
		return Deployment{}, fmt.Errorf("deployment of account %s in %s: %w", accountID, region, err)
	}
	return s.Get(ctx, idx.DeploymentID)
}

// Update replaces prev by next if the stored deployment is still prev (same version and
// status), and records the change in the audit trail, in one transaction. A status change
// must be a lifecycle transition. The account and region cannot change: they are the key of
// the account index. It returns next as stored (version bumped), ErrConflict when the stored
// deployment moved on, or ErrNotFound when it is gone.
func (s *Store) Update(ctx context.Context, prev, next Deployment, a Audit) (Deployment, error) {
	if next.ID != prev.ID {
		return Deployment{}, fmt.Errorf("update deployment %s: id cannot change to %q", prev.ID, next.ID)
	}
	if next.Settings.AccountID != prev.Settings.AccountID || next.Settings.Region != prev.Settings.Region {
		return Deployment{}, fmt.Errorf("update deployment %s: account and region cannot change", prev.ID)
	}
	if next.Status != prev.Status {
		if err := lifecycle.Transition(prev.Status, next.Status); err != nil {
			return Deployment{}, fmt.Errorf("update deployment %s: %w", prev.ID, err)
		}
	}
	now := s.now()
	next.Version = prev.Version + 1
	next.CreatedAt = prev.CreatedAt
	next.UpdatedAt = now
	meta, err := metaItem(next)
	if err != nil {
		return Deployment{}, fmt.Errorf("encode deployment %s: %w", next.ID, err)
	}
	// The entry names a transition only when there is one: a write that keeps the status
	// (a schedule re-armed, a step recorded) says so by naming none, whatever the status
	// happened to be when it landed.
	from, to := prev.Status, next.Status
	if from == to {
		from, to = "", ""
	}
	audit, err := s.auditItem(next.ID, a, from, to, now)
	if err != nil {
		return Deployment{}, err
	}
	items := []types.TransactWriteItem{
		{Put: &types.Put{
			TableName:           aws.String(s.table),
			Item:                meta,
			ConditionExpression: aws.String("#v = :v AND #s = :s"),
			ExpressionAttributeNames: map[string]string{
				"#v": "version", "#s": "status",
			},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":v": &types.AttributeValueMemberN{Value: fmt.Sprint(prev.Version)},
				":s": &types.AttributeValueMemberS{Value: string(prev.Status)},
			},
		}},
		audit,
	}
	items, err = s.withEvent(items, a, now)
	if err != nil {
		return Deployment{}, err
	}
	moves, err := s.membershipMoves(prev, next)
	if err != nil {
		return Deployment{}, err
	}
	if next.Status == lifecycle.Deleted {
		moves = s.retirement(prev)
	}
	items = append(items, moves...)
	if _, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items}); err != nil {
		if failed, ok := cancelled(err); ok {
			switch {
			case at(failed, 0):
				return Deployment{}, s.explainConflict(ctx, prev)
			case at(failed, 2):
				return Deployment{}, fmt.Errorf("event %s already handled: %w", a.EventID, ErrExists)
			}
		}
		return Deployment{}, fmt.Errorf("update deployment %s: %w", prev.ID, err)
	}
	return next, nil
}

// retirement are the writes that take a deleted deployment out of the fleet's other lists in
// the same transaction as its status: the account+region claim is released (the customer may
// be invited again), and it leaves its rollout wave. The record and its audit trail stay.
func (s *Store) retirement(prev Deployment) []types.TransactWriteItem {
	out := []types.TransactWriteItem{{Delete: &types.Delete{TableName: aws.String(s.table),
		Key:                       Key(accountPK(prev.Settings.AccountID, prev.Settings.Region), skAccount),
		ConditionExpression:       aws.String("attribute_not_exists(PK) OR deploymentId = :id"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":id": &types.AttributeValueMemberS{Value: prev.ID}},
	}}}
	if prev.Maintenance != nil {
		out = append(out, types.TransactWriteItem{Delete: &types.Delete{TableName: aws.String(s.table),
			Key: Key(rolloutPK(prev.Maintenance.Channel, prev.Maintenance.Canary), DeploymentPK(prev.ID))}})
	}
	return out
}

// explainConflict reads the stored deployment to say why a conditional write failed.
func (s *Store) explainConflict(ctx context.Context, prev Deployment) error {
	cur, err := s.Get(ctx, prev.ID)
	if errors.Is(err, ErrNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("deployment %s changed concurrently: %w", prev.ID, ErrConflict)
	}
	return fmt.Errorf("deployment %s is at version %d status %s, not version %d status %s: %w",
		prev.ID, cur.Version, cur.Status, prev.Version, prev.Status, ErrConflict)
}

// UndoCreate removes a deployment that Create stored and nothing changed since (version 1),
// with its account index and audit entries, in one transaction. It compensates a Create whose
// follow-up failed, so a failed invitation leaves no trace and the account stays free.
func (s *Store) UndoCreate(ctx context.Context, d Deployment) error {
	if d.Version != 1 {
		return fmt.Errorf("undo create of deployment %s: version %d was changed after creation: %w", d.ID, d.Version, ErrConflict)
	}
	out, err := s.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("PK = :pk AND begins_with(SK, :audit)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: DeploymentPK(d.ID)}, ":audit": &types.AttributeValueMemberS{Value: skAuditPrefix}},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return fmt.Errorf("undo create of deployment %s: %w", d.ID, err)
	}
	items := []types.TransactWriteItem{
		{Delete: &types.Delete{
			TableName:                aws.String(s.table),
			Key:                      Key(DeploymentPK(d.ID), skMeta),
			ConditionExpression:      aws.String("#v = :one"),
			ExpressionAttributeNames: map[string]string{"#v": "version"},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":one": &types.AttributeValueMemberN{Value: "1"},
			},
		}},
		{Delete: &types.Delete{
			TableName:                 aws.String(s.table),
			Key:                       Key(accountPK(d.Settings.AccountID, d.Settings.Region), skAccount),
			ConditionExpression:       aws.String("deploymentId = :id"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":id": &types.AttributeValueMemberS{Value: d.ID}},
		}},
	}
	if d.Maintenance != nil {
		items = append(items, types.TransactWriteItem{Delete: &types.Delete{TableName: aws.String(s.table),
			Key: Key(rolloutPK(d.Maintenance.Channel, d.Maintenance.Canary), DeploymentPK(d.ID))}})
	}
	for _, it := range out.Items {
		items = append(items, types.TransactWriteItem{Delete: &types.Delete{
			TableName:           aws.String(s.table),
			Key:                 map[string]types.AttributeValue{AttrPK: it[AttrPK], AttrSK: it[AttrSK]},
			ConditionExpression: aws.String("attribute_exists(PK)"),
		}})
	}
	if _, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items}); err != nil {
		if failed, ok := cancelled(err); ok && (at(failed, 0) || at(failed, 1)) {
			return s.explainConflict(ctx, d)
		}
		return fmt.Errorf("undo create of deployment %s: %w", d.ID, err)
	}
	return nil
}
