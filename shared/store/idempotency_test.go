package store_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/byocloud/byoc/shared/store"
)

func TestIdempotencyKeyRunsOnceAndReplaysItsAnswer(t *testing.T) {
	s, _, _ := newStore(t)
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return now }
	h := store.RequestHash("POST", "/v1/invitations", []byte(`{"a":1}`))
	if a, err := s.ClaimKey(ctx, "arn:op", "k1", h, time.Minute); a != nil || err != nil {
		t.Fatalf("first claim: %v %v", a, err)
	}
	// A copy while the first runs: 409, nothing run twice.
	if _, err := s.ClaimKey(ctx, "arn:op", "k1", h, time.Minute); !errors.Is(err, store.ErrInProgress) {
		t.Fatalf("second claim while running: %v", err)
	}
	// Another body under the key: refused, running or not.
	other := store.RequestHash("POST", "/v1/invitations", []byte(`{"a":2}`))
	if _, err := s.ClaimKey(ctx, "arn:op", "k1", other, time.Minute); !errors.Is(err, store.ErrKeyReused) {
		t.Fatalf("other body: %v", err)
	}
	answer := store.Answer{Status: 201, Body: json.RawMessage(`{"result":{"id":"x"}}`)}
	if err := s.FinishKey(ctx, "arn:op", "k1", h, answer); err != nil {
		t.Fatal(err)
	}
	got, err := s.ClaimKey(ctx, "arn:op", "k1", h, time.Minute)
	if err != nil || got == nil || got.Status != 201 || string(got.Body) != string(answer.Body) {
		t.Fatalf("replay: %+v %v", got, err)
	}
	if _, err := s.ClaimKey(ctx, "arn:op", "k1", other, time.Minute); !errors.Is(err, store.ErrKeyReused) {
		t.Fatalf("other body after the answer: %v", err)
	}
	// Keys are the caller's own: another operator's k1 is a new request.
	if a, err := s.ClaimKey(ctx, "arn:other", "k1", other, time.Minute); a != nil || err != nil {
		t.Fatalf("another caller's key: %v %v", a, err)
	}
}

func TestIdempotencyClaimOfADeadRunnerIsTakenOverAfterItsLease(t *testing.T) {
	s, _, _ := newStore(t)
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return now }
	h := store.RequestHash("DELETE", "/v1/deployments/x", nil)
	if _, err := s.ClaimKey(ctx, "arn:op", "k", h, time.Minute); err != nil {
		t.Fatal(err)
	}
	now = now.Add(59 * time.Second)
	if _, err := s.ClaimKey(ctx, "arn:op", "k", h, time.Minute); !errors.Is(err, store.ErrInProgress) {
		t.Fatalf("inside the lease: %v", err)
	}
	now = now.Add(2 * time.Second)
	if a, err := s.ClaimKey(ctx, "arn:op", "k", h, time.Minute); a != nil || err != nil {
		t.Fatalf("after the lease: %v %v", a, err)
	}
	// A released claim (a 5xx) runs again at once.
	if err := s.ReleaseKey(ctx, "arn:op", "k", h); err != nil {
		t.Fatal(err)
	}
	if a, err := s.ClaimKey(ctx, "arn:op", "k", h, time.Minute); a != nil || err != nil {
		t.Fatalf("after release: %v %v", a, err)
	}
}

func TestAuditPagesNewestFirst(t *testing.T) {
	s, _, _ := newStore(t)
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return now }
	d := mustCreate(t, s, deployment("a00000000001z", "300000000001"))
	for i := range 4 {
		now = now.Add(time.Second)
		if err := s.Record(ctx, d.ID, store.Audit{Actor: "test", Action: "step", Detail: string(rune('a' + i))}); err != nil {
			t.Fatal(err)
		}
	}
	var all []store.AuditEntry
	token := ""
	for {
		page, next, err := s.AuditPage(ctx, d.ID, 2, token)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if next == "" {
			break
		}
		token = next
	}
	if len(all) != 5 || all[0].Detail != "d" || all[4].Action != "invite" {
		t.Fatalf("audit pages: %+v", all)
	}
	if _, _, err := s.AuditPage(ctx, d.ID, 2, "zz"); !errors.Is(err, store.ErrBadToken) {
		t.Fatalf("bad token: %v", err)
	}
}
