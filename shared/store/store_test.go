package store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/byocloud/byoc/shared/cloud/cloudtest"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/store"
)

var ctx = context.Background()

// newStore returns a store on a fresh table in the process-wide kumo, and the emulator for
// looking at the raw table.
func newStore(t *testing.T) (*store.Store, *cloudtest.Env, string) {
	t.Helper()
	env := cloudtest.Start(t)
	table := env.CreateTable(t, store.TableDefinition(""), store.TTLAttribute)
	return store.New(env.DynamoDB(), table), env, table
}

func deployment(id, account string) store.Deployment {
	return store.Deployment{
		ID: id,
		Settings: settings.Settings{
			CustomerID: "acme", AccountID: account, Region: "us-west-2", VPCCIDR: "10.0.0.0/16",
			ZoneIDs: []string{"usw2-az1", "usw2-az2", "usw2-az3"}, ResourcePrefix: "clickhouse-cloud",
		},
		Status:     lifecycle.Invited,
		ExternalID: "0123456789abcdef0123456789abcdef01234567",
		StackName:  "clickhouse-cloud-" + id + "-infra",
	}
}

var invite = store.Audit{Actor: "invite:test", Action: "invite"}

func mustCreate(t *testing.T, s *store.Store, d store.Deployment) store.Deployment {
	t.Helper()
	got, err := s.Create(ctx, d, invite)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestCreateStoresTheDeploymentItsAccountAndAnAuditEntry(t *testing.T) {
	s, env, table := newStore(t)
	now := time.Date(2025, 11, 12, 9, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return now }
	created := mustCreate(t, s, deployment("k3q9x2m7p4w8z", "111122223333"))
	if created.Version != 1 || !created.CreatedAt.Equal(now) || !created.UpdatedAt.Equal(now) {
		t.Fatalf("created %+v: want version 1 and timestamps", created)
	}
	got, err := s.Get(ctx, "k3q9x2m7p4w8z")
	if err != nil {
		t.Fatal(err)
	}
	if got.Settings.AccountID != "111122223333" || !slices.Equal(got.Settings.ZoneIDs, []string{"usw2-az1", "usw2-az2", "usw2-az3"}) ||
		got.Status != lifecycle.Invited || got.ExternalID != created.ExternalID || got.Version != 1 || !got.CreatedAt.Equal(now) {
		t.Fatalf("Get = %+v", got)
	}
	byAcct, err := s.ByAccount(ctx, "111122223333", "us-west-2")
	if err != nil || byAcct.ID != "k3q9x2m7p4w8z" {
		t.Fatalf("ByAccount = %+v, %v", byAcct, err)
	}
	trail, err := s.AuditTrail(ctx, "k3q9x2m7p4w8z")
	if err != nil {
		t.Fatal(err)
	}
	if len(trail) != 1 || trail[0].Action != "invite" || trail[0].Actor != "invite:test" || trail[0].To != lifecycle.Invited || trail[0].From != "" {
		t.Fatalf("audit trail %+v", trail)
	}
	keys := env.Keys(t, table)
	if len(keys) != 3 || !slices.Contains(keys, "DEP#k3q9x2m7p4w8z|META") || !slices.Contains(keys, "ACCT#111122223333#us-west-2|DEP") {
		t.Fatalf("table holds %v", keys)
	}
}

func TestCreateRefusesASecondDeploymentForTheAccountAndRegion(t *testing.T) {
	s, env, table := newStore(t)
	mustCreate(t, s, deployment("k3q9x2m7p4w8z", "111122223333"))
	before := env.Keys(t, table)

	_, err := s.Create(ctx, deployment("b7m2k9q4x8w3z", "111122223333"), invite)
	if !errors.Is(err, store.ErrExists) || !strings.Contains(err.Error(), "111122223333") || !strings.Contains(err.Error(), "k3q9x2m7p4w8z") {
		t.Fatalf("err = %v, want ErrExists naming the account and its deployment", err)
	}
	if after := env.Keys(t, table); !slices.Equal(sorted(before), sorted(after)) {
		t.Fatalf("refused create wrote: %v -> %v", before, after)
	}

	// Another region of the same account is another deployment.
	other := deployment("c4n8p2r6t9v1x", "111122223333")
	other.Settings.Region = "eu-west-1"
	mustCreate(t, s, other)
}

func TestCreateRefusesATakenID(t *testing.T) {
	s, env, table := newStore(t)
	mustCreate(t, s, deployment("k3q9x2m7p4w8z", "111122223333"))
	before := env.Keys(t, table)
	_, err := s.Create(ctx, deployment("k3q9x2m7p4w8z", "444455556666"), invite)
	if !errors.Is(err, store.ErrExists) || !strings.Contains(err.Error(), "deployment k3q9x2m7p4w8z") {
		t.Fatalf("err = %v, want ErrExists for the id", err)
	}
	if after := env.Keys(t, table); len(after) != len(before) {
		t.Fatalf("refused create wrote: %v", after)
	}
	if _, err := s.ByAccount(ctx, "444455556666", "us-west-2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the account was claimed by a refused create: %v", err)
	}
}

func TestCreateRejectsIncompleteInput(t *testing.T) {
	s, env, table := newStore(t)
	cases := []struct {
		name   string
		mutate func(*store.Deployment, *store.Audit)
		want   string
	}{
		{"no id", func(d *store.Deployment, _ *store.Audit) { d.ID = "" }, "id"},
		{"no account", func(d *store.Deployment, _ *store.Audit) { d.Settings.AccountID = "" }, "settings.accountId"},
		{"no region", func(d *store.Deployment, _ *store.Audit) { d.Settings.Region = "" }, "settings.region"},
		{"no status", func(d *store.Deployment, _ *store.Audit) { d.Status = "" }, "status"},
		{"no actor", func(_ *store.Deployment, a *store.Audit) { a.Actor = "" }, "actor and action are required"},
	}
	for _, c := range cases {
		d, a := deployment("k3q9x2m7p4w8z", "111122223333"), invite
		c.mutate(&d, &a)
		if _, err := s.Create(ctx, d, a); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to name %q", c.name, err, c.want)
		}
	}
	if keys := env.Keys(t, table); len(keys) != 0 {
		t.Fatalf("rejected creates wrote %v", keys)
	}
}

func TestGetAndByAccountReportNotFound(t *testing.T) {
	s, _, _ := newStore(t)
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get: %v", err)
	}
	if _, err := s.ByAccount(ctx, "999999999999", "us-west-2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ByAccount: %v", err)
	}
}

func TestUpdateIsConditionalOnVersionAndStatus(t *testing.T) {
	s, _, _ := newStore(t)
	v1 := mustCreate(t, s, deployment("k3q9x2m7p4w8z", "111122223333"))
	next := v1
	next.Status = lifecycle.Provisioning
	next.ProvisionAttempts = 1
	v2, err := s.Update(ctx, v1, next, store.Audit{Actor: "provision", Action: "provision.start", Detail: "attempt 1"})
	if err != nil {
		t.Fatal(err)
	}
	if v2.Version != 2 || v2.Status != lifecycle.Provisioning {
		t.Fatalf("Update returned %+v", v2)
	}

	// A writer still holding version 1 loses, and changes nothing.
	stale := v1
	stale.ExternalID = "changed"
	_, err = s.Update(ctx, v1, stale, store.Audit{Actor: "other", Action: "edit"})
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "version 2 status provisioning, not version 1 status invited") {
		t.Fatalf("err = %v, want ErrConflict explaining versions", err)
	}
	got, _ := s.Get(ctx, v1.ID)
	if got.Version != 2 || got.ExternalID != v1.ExternalID || got.ProvisionAttempts != 1 {
		t.Fatalf("stored %+v after a refused update", got)
	}
	trail, _ := s.AuditTrail(ctx, v1.ID)
	if len(trail) != 2 || trail[1].From != lifecycle.Invited || trail[1].To != lifecycle.Provisioning || trail[1].Detail != "attempt 1" {
		t.Fatalf("audit trail %+v", trail)
	}
}

func TestUpdateRefusesAnInvalidTransitionAndWritesNothing(t *testing.T) {
	s, env, table := newStore(t)
	v1 := mustCreate(t, s, deployment("k3q9x2m7p4w8z", "111122223333"))
	before := env.Keys(t, table)
	next := v1
	next.Status = lifecycle.Ready // invited -> ready skips provisioning
	if _, err := s.Update(ctx, v1, next, store.Audit{Actor: "t", Action: "x"}); err == nil || !strings.Contains(err.Error(), string(lifecycle.Ready)) {
		t.Fatalf("err = %v, want the lifecycle's refusal", err)
	}
	if after := env.Keys(t, table); len(after) != len(before) {
		t.Fatal("refused update wrote")
	}
	if got, _ := s.Get(ctx, v1.ID); got.Status != lifecycle.Invited || got.Version != 1 {
		t.Fatalf("stored %+v", got)
	}
}

func TestUpdateRefusesToMoveTheDeployment(t *testing.T) {
	s, _, _ := newStore(t)
	v1 := mustCreate(t, s, deployment("k3q9x2m7p4w8z", "111122223333"))
	for name, mutate := range map[string]func(*store.Deployment){
		"account": func(d *store.Deployment) { d.Settings.AccountID = "444455556666" },
		"region":  func(d *store.Deployment) { d.Settings.Region = "eu-west-1" },
		"id":      func(d *store.Deployment) { d.ID = "other" },
	} {
		next := v1
		next.Settings.ZoneIDs = slices.Clone(v1.Settings.ZoneIDs)
		mutate(&next)
		if _, err := s.Update(ctx, v1, next, store.Audit{Actor: "t", Action: "x"}); err == nil || !strings.Contains(err.Error(), "cannot change") {
			t.Errorf("%s change: err = %v", name, err)
		}
	}
	if got, _ := s.Get(ctx, v1.ID); got.Version != 1 {
		t.Fatal("a refused move was written")
	}
}

func TestUpdateOfAMissingDeploymentIsNotFound(t *testing.T) {
	s, _, _ := newStore(t)
	ghost := deployment("k3q9x2m7p4w8z", "111122223333")
	ghost.Version = 1
	next := ghost
	next.Status = lifecycle.Provisioning
	if _, err := s.Update(ctx, ghost, next, store.Audit{Actor: "t", Action: "x"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

// Duplicate deliveries race: exactly one transition wins and is audited once.
func TestConcurrentTransitionsFromTheSameStateLetOneWin(t *testing.T) {
	s, _, _ := newStore(t)
	v1 := mustCreate(t, s, deployment("k3q9x2m7p4w8z", "111122223333"))
	const writers = 8
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := v1
			next.Status = lifecycle.Provisioning
			_, errs[i] = s.Update(ctx, v1, next, store.Audit{Actor: "racer", Action: "provision.start"})
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("loser failed with %v, want ErrConflict", err)
		}
	}
	trail, _ := s.AuditTrail(ctx, v1.ID)
	if wins != 1 || len(trail) != 2 {
		t.Fatalf("%d winners, %d audit entries; want 1 and 2", wins, len(trail))
	}
}

func TestRecordIsIdempotentPerEvent(t *testing.T) {
	s, env, table := newStore(t)
	v1 := mustCreate(t, s, deployment("k3q9x2m7p4w8z", "111122223333"))
	a := store.Audit{Actor: "onboard", Action: "bootstrap.failed", Detail: "ROLLBACK_COMPLETE", EventID: "ev-1"}
	if err := s.Record(ctx, v1.ID, a); err != nil {
		t.Fatal(err)
	}
	before := env.Keys(t, table)
	if err := s.Record(ctx, v1.ID, a); !errors.Is(err, store.ErrExists) || !strings.Contains(err.Error(), "ev-1") {
		t.Fatalf("duplicate: err = %v, want ErrExists naming the event", err)
	}
	if after := env.Keys(t, table); len(after) != len(before) {
		t.Fatal("duplicate event wrote")
	}
	trail, _ := s.AuditTrail(ctx, v1.ID)
	if len(trail) != 2 || trail[1].EventID != "ev-1" || trail[1].From != "" || trail[1].To != "" {
		t.Fatalf("trail %+v", trail)
	}
	if got, _ := s.Get(ctx, v1.ID); got.Version != 1 {
		t.Fatal("an audit-only record changed the deployment")
	}
	if seen, err := s.EventSeen(ctx, "ev-1"); err != nil || !seen {
		t.Fatalf("EventSeen = %v, %v", seen, err)
	}
}

func TestUpdateWithAnEventIDRefusesTheDuplicate(t *testing.T) {
	s, _, _ := newStore(t)
	v1 := mustCreate(t, s, deployment("k3q9x2m7p4w8z", "111122223333"))
	if err := s.MarkEvent(ctx, "ev-9", "seen elsewhere"); err != nil {
		t.Fatal(err)
	}
	next := v1
	next.Status = lifecycle.Provisioning
	_, err := s.Update(ctx, v1, next, store.Audit{Actor: "t", Action: "x", EventID: "ev-9"})
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("err = %v, want ErrExists", err)
	}
	if got, _ := s.Get(ctx, v1.ID); got.Status != lifecycle.Invited {
		t.Fatal("the deployment changed although the event was a duplicate")
	}
}

func TestRecordOnAMissingDeploymentWritesNothing(t *testing.T) {
	s, env, table := newStore(t)
	err := s.Record(ctx, "ghost", store.Audit{Actor: "onboard", Action: "x", EventID: "ev-2"})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	if keys := env.Keys(t, table); len(keys) != 0 {
		t.Fatalf("wrote %v", keys)
	}
}

func TestUndoCreateLeavesNoTraceAndFreesTheAccount(t *testing.T) {
	s, env, table := newStore(t)
	v1 := mustCreate(t, s, deployment("k3q9x2m7p4w8z", "111122223333"))
	if err := s.UndoCreate(ctx, v1); err != nil {
		t.Fatal(err)
	}
	if keys := env.Keys(t, table); len(keys) != 0 {
		t.Fatalf("left %v", keys)
	}
	mustCreate(t, s, deployment("b7m2k9q4x8w3z", "111122223333"))
}

func TestUndoCreateRefusesAChangedDeployment(t *testing.T) {
	s, env, table := newStore(t)
	v1 := mustCreate(t, s, deployment("k3q9x2m7p4w8z", "111122223333"))
	next := v1
	next.Status = lifecycle.Provisioning
	v2, err := s.Update(ctx, v1, next, store.Audit{Actor: "t", Action: "x"})
	if err != nil {
		t.Fatal(err)
	}
	before := env.Keys(t, table)
	if err := s.UndoCreate(ctx, v2); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("undo of version 2: %v", err)
	}
	// Holding the stale version 1 does not help: the stored item is version 2.
	if err := s.UndoCreate(ctx, v1); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("undo with a stale copy: %v", err)
	}
	if after := env.Keys(t, table); len(after) != len(before) {
		t.Fatal("refused undo deleted items")
	}
}

func TestAuditTrailIsChronological(t *testing.T) {
	s, _, _ := newStore(t)
	base := time.Date(2025, 11, 12, 9, 0, 0, 0, time.UTC)
	// Whole seconds and fractions interleave: RFC3339Nano would sort "…00.5Z" before "…00Z".
	times := []time.Time{base, base.Add(500 * time.Millisecond), base.Add(time.Second), base.Add(time.Second + 10*time.Nanosecond)}
	i := 0
	s.Now = func() time.Time { return times[i] }
	v := mustCreate(t, s, deployment("k3q9x2m7p4w8z", "111122223333"))
	for i = 1; i < len(times); i++ {
		if err := s.Record(ctx, v.ID, store.Audit{Actor: "t", Action: "step", Detail: times[i].Format(time.RFC3339Nano)}); err != nil {
			t.Fatal(err)
		}
	}
	trail, err := s.AuditTrail(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	for j, e := range trail {
		if !e.At.Equal(times[j]) {
			t.Fatalf("entry %d at %s, want %s", j, e.At, times[j])
		}
	}
}

func TestMarkEventRemembersForAWeek(t *testing.T) {
	s, env, table := newStore(t)
	now := time.Date(2025, 11, 12, 9, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return now }
	if seen, _ := s.EventSeen(ctx, "ev-3"); seen {
		t.Fatal("unseen event reported seen")
	}
	if err := s.MarkEvent(ctx, "ev-3", "stackevents"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkEvent(ctx, "ev-3", "stackevents"); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second mark: %v", err)
	}
	items := env.Items(t, table)
	if len(items) != 1 {
		t.Fatalf("%d items", len(items))
	}
	ttl, ok := items[0][store.TTLAttribute].(*types.AttributeValueMemberN)
	if !ok || ttl.Value != "1763542800" { // now + 7 days
		t.Fatalf("ttl %v", items[0][store.TTLAttribute])
	}
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

// Invited deployments are listed by invitation time until they move on: the sweep's way to
// find onboarding that stalled.
func TestInvitedBeforeListsOnlyDeploymentsStillInvited(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return t0 }
	old := mustCreate(t, s, deployment("depold", "111111111111"))
	moved := mustCreate(t, s, deployment("depmoved", "222222222222"))
	s.Now = func() time.Time { return t0.Add(2 * time.Hour) }
	mustCreate(t, s, deployment("depnew", "333333333333"))
	next := moved
	next.Status = lifecycle.Provisioning
	if _, err := s.Update(ctx, moved, next, store.Audit{Actor: "test", Action: "provision.start"}); err != nil {
		t.Fatal(err)
	}
	ids, err := s.InvitedBefore(ctx, t0.Add(time.Hour))
	if err != nil || len(ids) != 1 || ids[0] != old.ID {
		t.Fatalf("invited before = %v %v, want [%s]: the moved one left the list, the new one is too recent", ids, err, old.ID)
	}
}
