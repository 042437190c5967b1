package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/byocloud/byoc/shared/release"
	"github.com/byocloud/byoc/shared/window"
)

// Maintenance is a deployment's maintenance window, its rollout channel, and what its
// maintenance schedule will do next.
type Maintenance struct {
	Window  window.Window `json:"window"`
	Channel string        `json:"channel"`
	Canary  bool          `json:"canary,omitempty"`
	// Deferred are the occurrences (keys) the customer deferred: they pass without
	// maintenance. At most MaxDeferrals in a row; a window that runs clears them.
	Deferred []string `json:"deferred,omitempty"`
	// Security is a pending off-cycle security start (its notice went out).
	Security *Arm `json:"security,omitempty"`
	// Armed is what the deployment's schedule fires for next.
	Armed *Arm `json:"armed,omitempty"`
	// Last is the last run of the upgrade workflow and how it ended.
	Last *Run `json:"last,omitempty"`
}

// MaxDeferrals is how many windows in a row a customer may defer.
const MaxDeferrals = 2

// Arm is one firing of a deployment's maintenance schedule.
type Arm struct {
	At      time.Time `json:"at"`
	Purpose string    `json:"purpose"` // notice, open, security
	Key     string    `json:"key"`     // the window occurrence (or "security")
}

// Run is an upgrade workflow run and its outcome.
type Run struct {
	Execution string    `json:"execution"`
	Key       string    `json:"key"`
	Outcome   string    `json:"outcome"` // running, done, waiting (the window closed), failed
	Step      string    `json:"step,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	At        time.Time `json:"at"`
}

// rolloutPK is the partition listing the deployments of one rollout wave.
func rolloutPK(channel string, canary bool) string {
	return "ROLLOUT#" + release.Wave{Channel: channel, Canary: canary}.Name()
}

const kindRolloutMember = "rollout-member"

// membership returns the put of a deployment's wave membership (nil without maintenance).
func (s *Store) membership(d Deployment) (*types.TransactWriteItem, error) {
	if d.Maintenance == nil {
		return nil, nil
	}
	item, err := ItemWithKey(accountIndex{DeploymentID: d.ID}, rolloutPK(d.Maintenance.Channel, d.Maintenance.Canary), DeploymentPK(d.ID), kindRolloutMember)
	if err != nil {
		return nil, err
	}
	return &types.TransactWriteItem{Put: &types.Put{TableName: aws.String(s.table), Item: item}}, nil
}

// membershipMoves are the writes that move a deployment between waves when its channel or
// canary flag changes (none otherwise).
func (s *Store) membershipMoves(prev, next Deployment) ([]types.TransactWriteItem, error) {
	same := func(a, b *Maintenance) bool {
		return (a == nil) == (b == nil) && (a == nil || a.Channel == b.Channel && a.Canary == b.Canary)
	}
	if same(prev.Maintenance, next.Maintenance) {
		return nil, nil
	}
	var out []types.TransactWriteItem
	if prev.Maintenance != nil {
		out = append(out, types.TransactWriteItem{Delete: &types.Delete{TableName: aws.String(s.table),
			Key: Key(rolloutPK(prev.Maintenance.Channel, prev.Maintenance.Canary), DeploymentPK(prev.ID))}})
	}
	put, err := s.membership(next)
	if err != nil || put == nil {
		return out, err
	}
	return append(out, *put), nil
}

// WaveMembers pages through the deployments of a wave: up to limit ids after cursor (""
// from the start) and the cursor of the next page ("" at the end).
func (s *Store) WaveMembers(ctx context.Context, w release.Wave, cursor string, limit int) ([]string, string, error) {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("PK = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: rolloutPK(w.Channel, w.Canary)}},
		Limit:                     aws.Int32(int32(limit)),
		ConsistentRead:            aws.Bool(true),
	}
	if cursor != "" {
		in.ExclusiveStartKey = Key(rolloutPK(w.Channel, w.Canary), cursor)
	}
	out, err := s.db.Query(ctx, in)
	if err != nil {
		return nil, "", fmt.Errorf("members of wave %s: %w", w.Name(), err)
	}
	var ids []string
	for _, it := range out.Items {
		if sk, ok := it[AttrSK].(*types.AttributeValueMemberS); ok {
			ids = append(ids, strings.TrimPrefix(sk.Value, DeploymentPK("")))
		}
	}
	next := ""
	if lek, ok := out.LastEvaluatedKey[AttrSK].(*types.AttributeValueMemberS); ok {
		next = lek.Value
	}
	return ids, next, nil
}

// ReleaseRecord is a published release with its rollout. The release is nested: its "kind"
// would collide with the item-kind attribute.
type ReleaseRecord struct {
	Release    release.Release        `json:"release"`
	Progress   []release.WaveProgress `json:"progress"`
	Halted     bool                   `json:"halted,omitempty"`
	HaltReason string                 `json:"haltReason,omitempty"`
	ResumedBy  string                 `json:"resumedBy,omitempty"`
	Revision   int64                  `json:"revision"` // bumped by every write; the optimistic lock
}

// Waves is the rollout as it stands: a halted release's running and baking waves are halted
// (the halt is recorded at once; the waves' own states catch up at the next rollout run).
func (r ReleaseRecord) Waves() []release.WaveProgress {
	out := make([]release.WaveProgress, len(r.Progress))
	copy(out, r.Progress)
	for i := range out {
		if r.Halted && (out[i].State == release.WaveRunning || out[i].State == release.WaveBaking) {
			out[i].State = release.WaveHalted
		}
	}
	return out
}

// Wave counters are kept apart from the release (one small item per wave, ADDed to by each
// outcome) so the outcomes of a thousand deployments never contend on the release's record.
type waveCount struct {
	Settled int `json:"settled"`
	Failed  int `json:"failed"`
}

// Outcome is what one deployment did with a release.
type Outcome struct {
	DeploymentID string    `json:"deploymentId"`
	Status       string    `json:"status"` // upgraded, current, failed
	Execution    string    `json:"execution,omitempty"`
	Reason       string    `json:"reason,omitempty"`
	At           time.Time `json:"at"`
}

// Outcome statuses.
const (
	OutcomeUpgraded = "upgraded"
	OutcomeCurrent  = "current" // nothing to do: it already ran the version
	OutcomeFailed   = "failed"
)

const (
	pkReleases    = "RELEASES"
	skRelease     = "REL#"
	skLatest      = "LATEST#"
	kindRelease   = "release"
	kindLatest    = "release-latest"
	kindWaveCount = "wave-count"
	kindOutcome   = "release-outcome"
)

func releasePK(id string) string { return "REL#" + id }
func waveSK(i int) string        { return fmt.Sprintf("COUNT#%d", i) }

type latest struct {
	ReleaseID string `json:"releaseId"`
	Version   string `json:"version"`
}

// PublishRelease stores a validated release as its component's newest, provided the
// component's newest is still expected ("" for none): two operators publishing at once
// cannot both pass the no-downgrade rule. ErrConflict when the catalogue moved on, ErrExists
// when the release id is taken.
func (s *Store) PublishRelease(ctx context.Context, r release.Release, expected string) (ReleaseRecord, error) {
	rec := ReleaseRecord{Release: r, Progress: release.NewProgress(), Revision: 1}
	item, err := ItemWithKey(rec, pkReleases, skRelease+r.ID, kindRelease)
	if err != nil {
		return ReleaseRecord{}, err
	}
	l, err := ItemWithKey(latest{ReleaseID: r.ID, Version: r.Version}, pkReleases, skLatest+r.Component, kindLatest)
	if err != nil {
		return ReleaseRecord{}, err
	}
	latestPut := &types.Put{TableName: aws.String(s.table), Item: l, ConditionExpression: aws.String("attribute_not_exists(PK)")}
	if expected != "" {
		latestPut.ConditionExpression = aws.String("#v = :v")
		latestPut.ExpressionAttributeNames = map[string]string{"#v": "version"}
		latestPut.ExpressionAttributeValues = map[string]types.AttributeValue{":v": &types.AttributeValueMemberS{Value: expected}}
	}
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String(s.table), Item: item, ConditionExpression: aws.String("attribute_not_exists(PK)")}},
		{Put: latestPut},
	}})
	if failed, ok := cancelled(err); ok {
		switch {
		case at(failed, 0):
			return ReleaseRecord{}, fmt.Errorf("release %s: %w", r.ID, ErrExists)
		case at(failed, 1):
			return ReleaseRecord{}, fmt.Errorf("release %s: the %s catalogue changed while publishing: %w", r.ID, r.Component, ErrConflict)
		}
	}
	if err != nil {
		return ReleaseRecord{}, fmt.Errorf("publish release %s: %w", r.ID, err)
	}
	return rec, nil
}

// Releases returns every published release, oldest first.
func (s *Store) Releases(ctx context.Context) ([]ReleaseRecord, error) {
	p := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:              aws.String(s.table),
		KeyConditionExpression: aws.String("PK = :pk AND begins_with(SK, :rel)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": &types.AttributeValueMemberS{Value: pkReleases}, ":rel": &types.AttributeValueMemberS{Value: skRelease},
		},
		ConsistentRead: aws.Bool(true),
	})
	var out []ReleaseRecord
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("releases: %w", err)
		}
		for _, it := range page.Items {
			var r ReleaseRecord
			if err := UnmarshalItem(it, &r); err != nil {
				return nil, fmt.Errorf("read release: %w", err)
			}
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Release.PublishedAt.Before(out[j].Release.PublishedAt) })
	return out, nil
}

// Catalogue is the newest release of each component.
func Catalogue(rs []ReleaseRecord) release.Catalogue {
	c := release.Catalogue{}
	for _, r := range rs {
		if cur, ok := c[r.Release.Component]; !ok || release.Compare(r.Release.Version, cur.Version) > 0 {
			c[r.Release.Component] = r.Release
		}
	}
	return c
}

// Release returns one release, or ErrNotFound.
func (s *Store) Release(ctx context.Context, id string) (ReleaseRecord, error) {
	var r ReleaseRecord
	if err := s.get(ctx, pkReleases, skRelease+id, &r); err != nil {
		return ReleaseRecord{}, fmt.Errorf("release %s: %w", id, err)
	}
	return r, nil
}

// SaveRelease replaces prev by next if the stored release is still prev (same revision);
// ErrConflict otherwise.
func (s *Store) SaveRelease(ctx context.Context, prev, next ReleaseRecord) (ReleaseRecord, error) {
	next.Revision = prev.Revision + 1
	item, err := ItemWithKey(next, pkReleases, skRelease+prev.Release.ID, kindRelease)
	if err != nil {
		return ReleaseRecord{}, err
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.table), Item: item,
		ConditionExpression:       aws.String("#r = :r"),
		ExpressionAttributeNames:  map[string]string{"#r": "revision"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":r": &types.AttributeValueMemberN{Value: strconv.FormatInt(prev.Revision, 10)}},
	})
	if ConditionFailed(err) {
		return ReleaseRecord{}, fmt.Errorf("release %s changed concurrently: %w", prev.Release.ID, ErrConflict)
	}
	if err != nil {
		return ReleaseRecord{}, fmt.Errorf("save release %s: %w", prev.Release.ID, err)
	}
	return next, nil
}

// WithCounts fills each wave's Settled and Failed from its counter.
func (s *Store) WithCounts(ctx context.Context, r ReleaseRecord) (ReleaseRecord, error) {
	out, err := s.db.Query(ctx, &dynamodb.QueryInput{
		TableName:              aws.String(s.table),
		KeyConditionExpression: aws.String("PK = :pk AND begins_with(SK, :c)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": &types.AttributeValueMemberS{Value: releasePK(r.Release.ID)}, ":c": &types.AttributeValueMemberS{Value: "COUNT#"},
		},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return r, fmt.Errorf("wave counts of release %s: %w", r.Release.ID, err)
	}
	for _, it := range out.Items {
		sk, _ := it[AttrSK].(*types.AttributeValueMemberS)
		i, err := strconv.Atoi(strings.TrimPrefix(sk.Value, "COUNT#"))
		if err != nil || i < 0 || i >= len(r.Progress) {
			continue
		}
		var c waveCount
		if err := UnmarshalItem(it, &c); err != nil {
			return r, err
		}
		r.Progress[i].Settled, r.Progress[i].Failed = c.Settled, c.Failed
	}
	return r, nil
}

// RecordOutcome stores what a deployment of wave did with a release, once: a second record
// for the same deployment changes nothing and reports false. A failure also halts the
// release, in the same transaction, so no later wave can open past it.
func (s *Store) RecordOutcome(ctx context.Context, releaseID string, wave int, o Outcome) (bool, error) {
	item, err := ItemWithKey(o, releasePK(releaseID), DeploymentPK(o.DeploymentID), kindOutcome)
	if err != nil {
		return false, err
	}
	failed := 0
	if o.Status == OutcomeFailed {
		failed = 1
	}
	items := []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String(s.table), Item: item, ConditionExpression: aws.String("attribute_not_exists(PK)")}},
		{Update: &types.Update{TableName: aws.String(s.table), Key: Key(releasePK(releaseID), waveSK(wave)),
			UpdateExpression:          aws.String("ADD #s :one, #f :f SET #k = :k"),
			ExpressionAttributeNames:  map[string]string{"#s": "settled", "#f": "failed", "#k": "kind"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":one": &types.AttributeValueMemberN{Value: "1"}, ":f": &types.AttributeValueMemberN{Value: strconv.Itoa(failed)}, ":k": &types.AttributeValueMemberS{Value: kindWaveCount}},
		}},
	}
	halt := &types.Update{TableName: aws.String(s.table), Key: Key(pkReleases, skRelease+releaseID),
		UpdateExpression:          aws.String("SET #h = :t, #why = :why, #r = #r + :one"),
		ExpressionAttributeNames:  map[string]string{"#h": "halted", "#why": "haltReason", "#r": "revision"},
		ConditionExpression:       aws.String("attribute_exists(PK)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberBOOL{Value: true}, ":why": &types.AttributeValueMemberS{Value: fmt.Sprintf("deployment %s: %s", o.DeploymentID, o.Reason)}, ":one": &types.AttributeValueMemberN{Value: "1"}},
	}
	if failed == 1 {
		items = append(items, types.TransactWriteItem{Update: halt})
	}
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	if failed, ok := cancelled(err); ok && at(failed, 0) {
		// Recorded before. A failure halts the release whatever came before it: the same
		// deployment failing again after an operator resumed it halts it again.
		if o.Status == OutcomeFailed {
			if _, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: halt.TableName, Key: halt.Key, UpdateExpression: halt.UpdateExpression,
				ConditionExpression: halt.ConditionExpression, ExpressionAttributeNames: halt.ExpressionAttributeNames, ExpressionAttributeValues: halt.ExpressionAttributeValues,
			}); err != nil {
				return false, fmt.Errorf("halt release %s: %w", releaseID, err)
			}
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("outcome of deployment %s for release %s: %w", o.DeploymentID, releaseID, err)
	}
	return true, nil
}

// OutcomeOf returns what a deployment did with a release, or ErrNotFound.
func (s *Store) OutcomeOf(ctx context.Context, releaseID, deploymentID string) (Outcome, error) {
	var o Outcome
	err := s.get(ctx, releasePK(releaseID), DeploymentPK(deploymentID), &o)
	if errors.Is(err, ErrNotFound) {
		return Outcome{}, err
	}
	return o, err
}
