package servicestate

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"testing"
	"time"

	"github.com/byocloud/byoc/shared/cloud/cloudtest"
	"github.com/byocloud/byoc/shared/statemsg"
	"github.com/byocloud/byoc/shared/store"
)

var t0 = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

// clock is a settable test clock.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time          { return c.now }
func (c *clock) Advance(d time.Duration) { c.now = c.now.Add(d) }

type fixture struct {
	env   *cloudtest.Env
	table string
	db    *CountingDB
	repo  *Repo
	clock *clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := cloudtest.Start(t)
	table := env.CreateTable(t, store.TableDefinition("x"), TTLAttribute)
	db := CountWrites(env.DynamoDB())
	c := &clock{now: t0}
	repo := New(db, table)
	repo.Now = c.Now
	return &fixture{env: env, table: table, db: db, repo: repo, clock: c}
}

// report is a healthy report of service svc of deployment dep with sequence seq.
func report(dep, svc string, seq int64) statemsg.Message {
	return statemsg.Message{
		SchemaVersion: statemsg.Version1, DeploymentID: dep, ServiceID: svc,
		Hostname: svc + ".example.byoc.clickhouse.cloud", ObservedAt: t0.Add(time.Duration(seq) * time.Second),
		ExporterEpoch: 1764061200000, Sequence: seq, Status: statemsg.StatusHealthy,
		Versions: statemsg.Versions{ClickHouse: "24.8.1", Operator: "0.25.3", Kubernetes: "1.30"},
		Replicas: statemsg.Replicas{Ready: 3, Desired: 3}, StorageBytes: 1000,
	}
}

func unhealthy(m statemsg.Message) statemsg.Message {
	m.Status = statemsg.StatusUnhealthy
	return m
}

func (f *fixture) apply(t *testing.T, m statemsg.Message) Result {
	t.Helper()
	res, err := f.repo.Apply(context.Background(), m, "msg-"+m.OrderKey())
	if err != nil {
		t.Fatalf("apply %s/%s seq %d: %v", m.DeploymentID, m.ServiceID, m.Sequence, err)
	}
	return res
}

// publishAll marks every alert published, as a successful publisher would.
func (f *fixture) publishAll(t *testing.T, alerts []PendingAlert) {
	t.Helper()
	for _, a := range alerts {
		if err := f.repo.MarkPublished(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshot returns every item of the table, to prove a refused write changed nothing.
func (f *fixture) snapshot(t *testing.T) string {
	t.Helper()
	return dump(f.env.Items(t, f.table))
}

func deleteInput(table string, w Waiter) *dynamodb.DeleteItemInput {
	return &dynamodb.DeleteItemInput{TableName: aws.String(table), Key: store.Key(store.DeploymentPK(w.DeploymentID), waiterSK(w.Condition.ServiceID, w.ID))}
}
