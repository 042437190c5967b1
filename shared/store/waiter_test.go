package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/byocloud/byoc/shared/store"
)

func waiter(token string) store.Waiter {
	return store.Waiter{
		AccountID: "111122223333", Region: "us-west-2", StackName: "clickhouse-cloud-k3q9x2m7p4w8z-infra",
		DeploymentID: "k3q9x2m7p4w8z", TaskToken: token, Operation: "create", RequestToken: "byoc-k3q9x2m7p4w8z-1-create",
		StackID:   "arn:aws:cloudformation:us-west-2:111122223333:stack/clickhouse-cloud-k3q9x2m7p4w8z-infra/5b3c",
		ExpiresAt: time.Date(2025, 11, 13, 9, 0, 0, 0, time.UTC),
	}
}

func fixedClock(s *store.Store) {
	s.Now = func() time.Time { return time.Date(2025, 11, 12, 9, 0, 0, 0, time.UTC) }
}

func TestWaiterRoundTrip(t *testing.T) {
	s, env, table := newStore(t)
	fixedClock(s)
	w := waiter("token-1")
	if err := s.PutWaiter(ctx, w); err != nil {
		t.Fatal(err)
	}
	got, err := s.Waiter(ctx, w.AccountID, w.Region, w.StackName)
	if err != nil {
		t.Fatal(err)
	}
	if got != w {
		t.Fatalf("Waiter = %+v, want %+v", got, w)
	}
	items := env.Items(t, table)
	if ttl, ok := items[0][store.TTLAttribute].(*types.AttributeValueMemberN); !ok || ttl.Value != "1763024400" {
		t.Fatalf("ttl %v, want the expiry in epoch seconds", items[0][store.TTLAttribute])
	}
}

// A wait that timed out into a poll registers a new token for the same stack.
func TestPutWaiterReplacesTheSameDeploymentsWaiter(t *testing.T) {
	s, _, _ := newStore(t)
	fixedClock(s)
	if err := s.PutWaiter(ctx, waiter("token-1")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutWaiter(ctx, waiter("token-2")); err != nil {
		t.Fatal(err)
	}
	w := waiter("")
	got, _ := s.Waiter(ctx, w.AccountID, w.Region, w.StackName)
	if got.TaskToken != "token-2" {
		t.Fatalf("token %s, want the newer", got.TaskToken)
	}
}

func TestPutWaiterNeverStealsAnotherDeploymentsStack(t *testing.T) {
	s, _, _ := newStore(t)
	fixedClock(s)
	if err := s.PutWaiter(ctx, waiter("token-1")); err != nil {
		t.Fatal(err)
	}
	thief := waiter("token-x")
	thief.DeploymentID = "b7m2k9q4x8w3z"
	if err := s.PutWaiter(ctx, thief); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
	got, _ := s.Waiter(ctx, thief.AccountID, thief.Region, thief.StackName)
	if got.TaskToken != "token-1" || got.DeploymentID != "k3q9x2m7p4w8z" {
		t.Fatalf("waiter became %+v", got)
	}
}

func TestPutWaiterRejectsIncompleteWaiters(t *testing.T) {
	s, env, table := newStore(t)
	for name, mutate := range map[string]func(*store.Waiter){
		"account":    func(w *store.Waiter) { w.AccountID = "" },
		"region":     func(w *store.Waiter) { w.Region = "" },
		"stack":      func(w *store.Waiter) { w.StackName = "" },
		"deployment": func(w *store.Waiter) { w.DeploymentID = "" },
		"token":      func(w *store.Waiter) { w.TaskToken = "" },
		"expiry":     func(w *store.Waiter) { w.ExpiresAt = time.Time{} },
	} {
		w := waiter("t")
		mutate(&w)
		if err := s.PutWaiter(ctx, w); err == nil || !strings.Contains(err.Error(), "required") {
			t.Errorf("%s missing: err = %v", name, err)
		}
	}
	if keys := env.Keys(t, table); len(keys) != 0 {
		t.Fatalf("wrote %v", keys)
	}
}

func TestAnExpiredWaiterIsNotFound(t *testing.T) {
	s, _, _ := newStore(t)
	fixedClock(s)
	w := waiter("token-1")
	if err := s.PutWaiter(ctx, w); err != nil {
		t.Fatal(err)
	}
	s.Now = func() time.Time { return w.ExpiresAt }
	if _, err := s.Waiter(ctx, w.AccountID, w.Region, w.StackName); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

func TestDeleteWaiterOnlyRemovesItsOwnToken(t *testing.T) {
	s, _, _ := newStore(t)
	fixedClock(s)
	old, cur := waiter("token-1"), waiter("token-2")
	if err := s.PutWaiter(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := s.PutWaiter(ctx, cur); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteWaiter(ctx, old); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("deleting a replaced token: %v", err)
	}
	if _, err := s.Waiter(ctx, cur.AccountID, cur.Region, cur.StackName); err != nil {
		t.Fatalf("the newer waiter was removed: %v", err)
	}
	if err := s.DeleteWaiter(ctx, cur); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Waiter(ctx, cur.AccountID, cur.Region, cur.StackName); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if err := s.DeleteWaiter(ctx, cur); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second delete: %v", err)
	}
}
