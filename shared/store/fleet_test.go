package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/store"
)

// Every deployment is listed once across pages, newest first within a status, and a status
// filter lists only that status; a page reads the index, not the table.
func TestFleetPagesThroughEveryDeploymentOnce(t *testing.T) {
	s, _, _ := newStore(t)
	base := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	const n = 23
	for i := range n {
		at := base.Add(time.Duration(i) * time.Minute)
		s.Now = func() time.Time { return at }
		d := mustCreate(t, s, deployment(fmt.Sprintf("d%012d", i), fmt.Sprintf("1000000000%02d", i)))
		if i%3 == 0 {
			next := d
			next.Status = lifecycle.Provisioning
			if _, err := s.Update(ctx, d, next, store.Audit{Actor: "test", Action: "provision"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	seen := map[string]bool{}
	var order []store.Summary
	token := ""
	pages := 0
	for {
		page, next, err := s.Fleet(ctx, store.FleetQuery{Limit: 5, NextToken: token})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(page) > 5 {
			t.Fatalf("page of %d, limit 5", len(page))
		}
		for _, d := range page {
			if seen[d.ID] {
				t.Fatalf("%s listed twice", d.ID)
			}
			if d.Settings.AccountID == "" || d.CreatedAt.IsZero() || d.Status == "" {
				t.Fatalf("summary lacks projected attributes: %+v", d)
			}
			seen[d.ID] = true
			order = append(order, d)
		}
		if next == "" {
			break
		}
		token = next
	}
	if len(seen) != n || pages != 5 {
		t.Fatalf("listed %d deployments in %d pages, want %d in 5", len(seen), pages, n)
	}
	for i := 1; i < len(order); i++ {
		a, b := order[i-1], order[i]
		if a.Status == b.Status && !a.CreatedAt.After(b.CreatedAt) {
			t.Fatalf("%s (%s) listed before the newer %s (%s)", a.ID, a.CreatedAt, b.ID, b.CreatedAt)
		}
	}
	provisioning, next, err := s.Fleet(ctx, store.FleetQuery{Status: lifecycle.Provisioning, Limit: 100})
	if err != nil || next != "" {
		t.Fatal(err, next)
	}
	if len(provisioning) != 8 {
		t.Fatalf("%d provisioning, want 8", len(provisioning))
	}
	for _, d := range provisioning {
		if d.Status != lifecycle.Provisioning {
			t.Fatalf("status filter listed %s %s", d.ID, d.Status)
		}
	}
	// The counts are the whole fleet's, every status present.
	counts, err := s.FleetCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts[lifecycle.Provisioning] != 8 || counts[lifecycle.Invited] != n-8 || len(counts) != len(lifecycle.All()) || counts[lifecycle.Ready] != 0 {
		t.Fatalf("counts %v, want 8 provisioning, %d invited, every status present", counts, n-8)
	}
}

func TestFleetRefusesForeignTokensAndBadLimits(t *testing.T) {
	s, _, _ := newStore(t)
	for i := range 3 {
		mustCreate(t, s, deployment(fmt.Sprintf("e%012d", i), fmt.Sprintf("2000000000%02d", i)))
	}
	_, next, err := s.Fleet(ctx, store.FleetQuery{Limit: 1})
	if err != nil || next == "" {
		t.Fatal(err, next)
	}
	// A token read under one filter is refused under another: it would skip deployments.
	if _, _, err := s.Fleet(ctx, store.FleetQuery{Status: lifecycle.Ready, NextToken: next}); !errors.Is(err, store.ErrBadToken) {
		t.Fatalf("token of another filter: %v, want ErrBadToken", err)
	}
	for _, tok := range []string{"x", "eyJ9", next + "A", next + "AA", next + "AAA"} {
		if _, _, err := s.Fleet(ctx, store.FleetQuery{NextToken: tok}); !errors.Is(err, store.ErrBadToken) {
			t.Errorf("token %q: %v, want ErrBadToken", tok, err)
		}
	}
	for _, limit := range []int{-1, store.MaxPage + 1} {
		if _, _, err := s.Fleet(ctx, store.FleetQuery{Limit: limit}); err == nil {
			t.Errorf("limit %d accepted", limit)
		}
	}
	if _, _, err := s.Fleet(ctx, store.FleetQuery{Status: "gone"}); err == nil {
		t.Error("unknown status accepted")
	}
}

// A deleted deployment keeps its record and trail, but its account+region claim is released
// in the same write: the account can be invited again.
func TestDeletedDeploymentReleasesItsAccountClaim(t *testing.T) {
	s, _, _ := newStore(t)
	d := mustCreate(t, s, deployment("r00000000001z", "400000000001"))
	step := func(to lifecycle.Status) {
		t.Helper()
		next := d
		next.Status = to
		var err error
		if d, err = s.Update(ctx, d, next, store.Audit{Actor: "test", Action: string(to)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Create(ctx, deployment("r00000000002z", "400000000001"), invite); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second deployment of a claimed account: %v", err)
	}
	step(lifecycle.Deleting)
	step(lifecycle.Deleted)
	if got, err := s.Get(ctx, d.ID); err != nil || got.Status != lifecycle.Deleted {
		t.Fatalf("record after deletion: %+v %v", got, err)
	}
	if _, err := s.ByAccount(ctx, "400000000001", "us-west-2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("claim after deletion: %v", err)
	}
	if _, err := s.Create(ctx, deployment("r00000000002z", "400000000001"), invite); err != nil {
		t.Fatalf("invite again after deletion: %v", err)
	}
}

// Records written before the fleet index existed are neither listed nor counted until the
// backfill gives them their keys; running it again changes nothing.
func TestBackfillFleetIndexListsOlderRecords(t *testing.T) {
	s, env, table := newStore(t)
	db := env.DynamoDB()
	legacy := map[string]lifecycle.Status{}
	for i, status := range []lifecycle.Status{lifecycle.Invited, lifecycle.Provisioning, lifecycle.Invited} {
		d := mustCreate(t, s, deployment(fmt.Sprintf("b%012d", i), fmt.Sprintf("2000000000%02d", i)))
		if status != d.Status {
			next := d
			next.Status = status
			if _, err := s.Update(ctx, d, next, store.Audit{Actor: "test", Action: "provision"}); err != nil {
				t.Fatal(err)
			}
		}
		if i == 2 {
			continue // written by this version: keys already
		}
		// As an older version wrote it: no fleet keys.
		if _, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(table), Key: store.Key(store.DeploymentPK(d.ID), "META"),
			UpdateExpression: aws.String("REMOVE " + store.AttrFleetPK + ", " + store.AttrFleetSK)}); err != nil {
			t.Fatal(err)
		}
		legacy[d.ID] = status
	}
	count := func() map[lifecycle.Status]int {
		c, err := s.FleetCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := count(); c[lifecycle.Invited] != 1 || c[lifecycle.Provisioning] != 0 {
		t.Fatalf("before the backfill: %v, want only the record written with its keys", c)
	}
	var seen []int
	n, err := s.BackfillFleetIndex(ctx, db, func(scanned, updated int) { seen = append(seen, updated) })
	if err != nil || n != len(legacy) || len(seen) == 0 {
		t.Fatalf("backfill: %d updated (progress %v), %v; want %d", n, seen, err, len(legacy))
	}
	if c := count(); c[lifecycle.Invited] != 2 || c[lifecycle.Provisioning] != 1 {
		t.Fatalf("after the backfill: %v, want 2 invited and 1 provisioning", c)
	}
	page, _, err := s.Fleet(ctx, store.FleetQuery{Status: lifecycle.Provisioning})
	if err != nil || len(page) != 1 || legacy[page[0].ID] != lifecycle.Provisioning {
		t.Fatalf("provisioning page %+v, %v: want the backfilled record under its status", page, err)
	}
	// The key a write of this version would have given it: status, creation time, id.
	raw, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: store.Key(store.DeploymentPK(page[0].ID), "META")})
	if err != nil {
		t.Fatal(err)
	}
	want := "provisioning#" + page[0].CreatedAt.UTC().Format(time.RFC3339Nano) + "#" + page[0].ID
	if sk, ok := raw.Item[store.AttrFleetSK].(*types.AttributeValueMemberS); !ok || sk.Value != want || page[0].CreatedAt.IsZero() {
		t.Fatalf("backfilled fleet key %v, want %s", raw.Item[store.AttrFleetSK], want)
	}
	if again, err := s.BackfillFleetIndex(ctx, db, nil); err != nil || again != 0 {
		t.Fatalf("second backfill: %d updated, %v; want nothing", again, err)
	}
}
