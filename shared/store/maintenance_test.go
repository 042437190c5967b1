package store_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/byocloud/byoc/shared/release"
	"github.com/byocloud/byoc/shared/store"
	"github.com/byocloud/byoc/shared/window"
)

func withMaintenance(d store.Deployment, channel string, canary bool) store.Deployment {
	d.Maintenance = &store.Maintenance{Window: window.Default(d.Settings.Region), Channel: channel, Canary: canary}
	return d
}

func members(t *testing.T, s *store.Store, w release.Wave) []string {
	t.Helper()
	var all []string
	cursor := ""
	for {
		ids, next, err := s.WaveMembers(ctx, w, cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ids...)
		if next == "" {
			return all
		}
		cursor = next
	}
}

func TestWaveMembershipFollowsTheChannelAndIsUndoneWithTheInvitation(t *testing.T) {
	s, _, _ := newStore(t)
	regularRest := release.Wave{Channel: release.ChannelRegular}
	fastCanary := release.Wave{Channel: release.ChannelFast, Canary: true}
	for i, id := range []string{"aaaaaaaaaaaa1", "aaaaaaaaaaaa2", "aaaaaaaaaaaa3"} {
		mustCreate(t, s, withMaintenance(deployment(id, "11112222333"+string(rune('0'+i))), release.ChannelRegular, false))
	}
	if got := members(t, s, regularRest); !slices.Equal(got, []string{"aaaaaaaaaaaa1", "aaaaaaaaaaaa2", "aaaaaaaaaaaa3"}) {
		t.Fatalf("regular/rest members %v (paged by 2)", got)
	}
	d, err := s.Get(ctx, "aaaaaaaaaaaa2")
	if err != nil {
		t.Fatal(err)
	}
	next := d
	m := *d.Maintenance
	m.Channel, m.Canary = release.ChannelFast, true
	next.Maintenance = &m
	if _, err := s.Update(ctx, d, next, store.Audit{Actor: "test", Action: "maintenance.set"}); err != nil {
		t.Fatal(err)
	}
	if got := members(t, s, fastCanary); !slices.Equal(got, []string{"aaaaaaaaaaaa2"}) {
		t.Fatalf("fast/canary %v", got)
	}
	if got := members(t, s, regularRest); !slices.Equal(got, []string{"aaaaaaaaaaaa1", "aaaaaaaaaaaa3"}) {
		t.Fatalf("regular/rest after the move %v", got)
	}
	d3, _ := s.Get(ctx, "aaaaaaaaaaaa3")
	if err := s.UndoCreate(ctx, d3); err != nil {
		t.Fatal(err)
	}
	if got := members(t, s, regularRest); !slices.Equal(got, []string{"aaaaaaaaaaaa1"}) {
		t.Fatalf("an undone invitation is still a member: %v", got)
	}
}

func TestPublishIsRefusedWhenTheCatalogueMovedOn(t *testing.T) {
	s, _, _ := newStore(t)
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	r1, _ := release.Catalogue{}.Validate(release.Release{Component: release.ClickHouse, Version: "25.3.2.39"}, now)
	if _, err := s.PublishRelease(ctx, r1, ""); err != nil {
		t.Fatal(err)
	}
	// A second operator validated against the empty catalogue too.
	r2, _ := release.Catalogue{}.Validate(release.Release{Component: release.ClickHouse, Version: "25.1.1.1"}, now)
	if _, err := s.PublishRelease(ctx, r2, ""); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a stale catalogue: %v", err)
	}
	if _, err := s.PublishRelease(ctx, r1, "25.3.2.39"); !errors.Is(err, store.ErrExists) {
		t.Fatalf("the same release twice: %v", err)
	}
	all, err := s.Releases(ctx)
	if err != nil || len(all) != 1 || store.Catalogue(all)[release.ClickHouse].Version != "25.3.2.39" {
		t.Fatalf("catalogue %+v, %v", all, err)
	}
}

func TestOutcomesAreCountedOnceAndAFailureHalts(t *testing.T) {
	s, _, _ := newStore(t)
	r, _ := release.Catalogue{}.Validate(release.Release{Component: release.Operator, Version: "0.26.0"}, time.Now())
	rec, err := s.PublishRelease(ctx, r, "")
	if err != nil {
		t.Fatal(err)
	}
	wave := release.WaveOf(release.ChannelRegular, false)
	for range 2 { // a retried step records again
		if _, err := s.RecordOutcome(ctx, r.ID, wave, store.Outcome{DeploymentID: "d1", Status: store.OutcomeUpgraded}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := s.RecordOutcome(ctx, r.ID, wave, store.Outcome{DeploymentID: "d2", Status: store.OutcomeFailed, Reason: "service s1 unhealthy"})
	if err != nil || !first {
		t.Fatalf("first failure: %v %v", first, err)
	}
	again, _ := s.RecordOutcome(ctx, r.ID, wave, store.Outcome{DeploymentID: "d2", Status: store.OutcomeFailed})
	if again {
		t.Fatal("a second record of one outcome was stored")
	}
	got, err := s.Release(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err = s.WithCounts(ctx, got)
	if err != nil {
		t.Fatal(err)
	}
	// The second record of the failure halts again (a release resumed in between would be
	// halted by it): the revision moved twice.
	if !got.Halted || got.HaltReason != "deployment d2: " || got.Revision != rec.Revision+2 {
		t.Fatalf("release after a failure: %+v", got)
	}
	if w := got.Progress[wave]; w.Settled != 2 || w.Failed != 1 {
		t.Fatalf("wave counts %+v", w)
	}
	if _, err := s.SaveRelease(ctx, rec, rec); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("saving over a halted release from a stale read: %v", err)
	}
	if o, err := s.OutcomeOf(ctx, r.ID, "d1"); err != nil || o.Status != store.OutcomeUpgraded {
		t.Fatalf("outcome of d1: %+v %v", o, err)
	}
}
