package servicestate

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/statemsg"
	"github.com/byocloud/byoc/shared/store"
)

// dyingDB lets `calls` writes through, then fails every call: the process died there.
type dyingDB struct {
	DynamoDB
	writes int
}

var errDied = errors.New("the process died")

func (d *dyingDB) write() error {
	if d.writes <= 0 {
		return errDied
	}
	d.writes--
	return nil
}

func (d *dyingDB) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, o ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	if err := d.write(); err != nil {
		return nil, err
	}
	return d.DynamoDB.TransactWriteItems(ctx, in, o...)
}

func (d *dyingDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if err := d.write(); err != nil {
		return nil, err
	}
	return d.DynamoDB.UpdateItem(ctx, in, o...)
}

// dying is the fixture's repo on a connection that dies after `writes` writes.
func (f *fixture) dying(writes int) *Repo {
	r := New(&dyingDB{DynamoDB: f.db, writes: writes}, f.table)
	r.Now = f.clock.Now
	return r
}

func (f *fixture) deploymentHealth(t *testing.T, id string) health.Health {
	t.Helper()
	d, err := f.repo.DeploymentHealth(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return d.Health
}

// A report's change of health is written before its deployment is refreshed. When the
// process dies between the two and a newer report (which changes nothing) is processed
// before the redelivery, the deployment must still be refreshed: chaos found it stuck at
// "unknown" for good (make chaos SCENARIO=dataplane PROFILE=crash SEED=3).
func TestACutShortRefreshIsFinishedByTheNextReport(t *testing.T) {
	for _, name := range []string{"a newer report", "the same report again", "an older report"} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			first := report("dep1", "svc-a", 5)
			if _, err := f.dying(1).Apply(ctx, first, "msg-1"); !errors.Is(err, errDied) {
				t.Fatalf("apply on a dying connection: %v", err)
			}
			if h := f.deploymentHealth(t, "dep1"); h != health.Unknown {
				t.Fatalf("the cut-short apply refreshed the deployment (%s): the test does not cut where it means to", h)
			}
			next := map[string]statemsg.Message{"a newer report": report("dep1", "svc-a", 6), "the same report again": first, "an older report": report("dep1", "svc-a", 4)}[name]
			res := f.apply(t, next)
			if h := f.deploymentHealth(t, "dep1"); h != health.Healthy {
				t.Fatalf("after %s the deployment is %s, want healthy", name, h)
			}
			var dep *PendingAlert
			for i, a := range res.Alerts {
				if a.Alert.Scope == health.ScopeDeployment {
					dep = &res.Alerts[i]
				}
			}
			if dep == nil || dep.Alert.From != health.Unknown || dep.Alert.To != health.Healthy {
				t.Fatalf("alerts %+v, want the deployment's unknown -> healthy", res.Alerts)
			}
			// Done once: a further report neither refreshes nor writes more than the steady path.
			f.publishAll(t, res.Alerts)
			before := f.db.Writes()
			if again := f.apply(t, report("dep1", "svc-a", 7)); len(again.Alerts) != 0 || f.db.Writes()-before != 1 {
				t.Fatalf("a steady report after the finish: alerts %v, %d writes, want none and 1", again.Alerts, f.db.Writes()-before)
			}
		})
	}
}

// The sweep's stale marking is cut short the same way: the next sweep finishes it, and only
// then does the service leave the sweep's index.
func TestACutShortStaleRefreshIsFinishedByTheNextSweep(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.publishAll(t, f.apply(t, report("dep1", "svc-a", 1)).Alerts)
	f.clock.Advance(10 * time.Minute)
	cutoff := health.StaleCutoff(f.clock.now, 5*time.Minute)
	keys, err := f.repo.SilentServices(ctx, cutoff)
	if err != nil || len(keys) != 1 {
		t.Fatalf("silent %v %v", keys, err)
	}
	if _, err := f.dying(1).MarkStale(ctx, keys[0], cutoff); !errors.Is(err, errDied) {
		t.Fatalf("mark stale on a dying connection: %v", err)
	}
	if h := f.deploymentHealth(t, "dep1"); h != health.Healthy {
		t.Fatalf("the deployment is %s before the refresh: the test does not cut where it means to", h)
	}
	again, err := f.repo.SilentServices(ctx, cutoff)
	if err != nil || len(again) != 1 {
		t.Fatalf("a stale service whose refresh is undone left the index: %v %v", again, err)
	}
	alerts, err := f.repo.MarkStale(ctx, again[0], cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if h := f.deploymentHealth(t, "dep1"); h != health.Stale || len(alerts) != 1 || alerts[0].Alert.Scope != health.ScopeDeployment {
		t.Fatalf("deployment %s, alerts %+v: want stale, with its alert", h, alerts)
	}
	if left, err := f.repo.SilentServices(ctx, cutoff); err != nil || len(left) != 0 {
		t.Fatalf("after the finished refresh the service is still swept: %v %v", left, err)
	}
}

// The fleet's health in bulk: one BatchGetItem per hundred deployments, each stored health
// as DeploymentHealth reads it, and Unknown for a deployment nothing reported for.
func TestDeploymentHealthsReadsAHundredAtATime(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.repo.Apply(ctx, report("dep1", "svc-a", 1), "m1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.Apply(ctx, unhealthy(report("dep2", "svc-a", 1)), "m2"); err != nil {
		t.Fatal(err)
	}
	ids := []string{"dep1", "dep2"}
	for i := range 148 {
		ids = append(ids, fmt.Sprintf("quiet%03d", i))
	}
	before := f.db.Reads()
	got, err := f.repo.DeploymentHealths(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if reads := f.db.Reads() - before; reads != 2 {
		t.Errorf("%d reads for 150 deployments, want 2 (a hundred keys a call)", reads)
	}
	if len(got) != len(ids) {
		t.Fatalf("%d healths for %d deployments", len(got), len(ids))
	}
	for _, id := range []string{"dep1", "dep2"} {
		one, err := f.repo.DeploymentHealth(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got[id] != one {
			t.Errorf("%s: bulk read %+v, single read %+v", id, got[id], one)
		}
	}
	if got["dep1"].Health != health.Healthy || got["dep2"].Health != health.Unhealthy {
		t.Errorf("dep1 %s, dep2 %s: want healthy and unhealthy", got["dep1"].Health, got["dep2"].Health)
	}
	if q := got["quiet147"]; q.Health != health.Unknown || q.DeploymentID != "quiet147" {
		t.Errorf("a deployment nothing reported for: %+v, want unknown", q)
	}
}

// unprocessing leaves the first `times` BatchGetItem calls' keys unprocessed, as DynamoDB
// does when throttled, and refuses a call that asks a key twice, as DynamoDB does.
type unprocessing struct {
	DynamoDB
	times, calls int
}

func (u *unprocessing) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	u.calls++
	for _, ka := range in.RequestItems {
		seen := map[string]bool{}
		for _, k := range ka.Keys {
			pk := k[store.AttrPK].(*types.AttributeValueMemberS).Value
			if seen[pk] {
				return nil, errors.New("ValidationException: Provided list of item keys contains duplicates")
			}
			seen[pk] = true
		}
	}
	if u.calls <= u.times {
		return &dynamodb.BatchGetItemOutput{UnprocessedKeys: in.RequestItems}, nil
	}
	return u.DynamoDB.BatchGetItem(ctx, in, o...)
}

// Keys DynamoDB leaves unprocessed are asked again until read, a bounded number of times;
// a deployment named twice is asked once.
func TestDeploymentHealthsAsksAgainForUnprocessedKeys(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.repo.Apply(ctx, report("dep1", "svc-a", 1), "m1"); err != nil {
		t.Fatal(err)
	}
	throttled := &unprocessing{DynamoDB: f.db, times: 2}
	repo := New(throttled, f.table)
	got, err := repo.DeploymentHealths(ctx, []string{"dep1", "dep2", "dep1"})
	if err != nil {
		t.Fatal(err)
	}
	if throttled.calls != 3 || got["dep1"].Health != health.Healthy || got["dep2"].Health != health.Unknown || len(got) != 2 {
		t.Fatalf("%d calls, %+v: want 3 calls (two unprocessed), dep1 healthy, dep2 unknown", throttled.calls, got)
	}
	never := &unprocessing{DynamoDB: f.db, times: 1 << 30}
	if _, err := New(never, f.table).DeploymentHealths(ctx, []string{"dep1"}); !errors.Is(err, ErrUnprocessed) || never.calls != unprocessedRounds {
		t.Fatalf("always unprocessed: %v after %d calls, want ErrUnprocessed after %d", err, never.calls, unprocessedRounds)
	}
}
