package maintenance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/release"
	"github.com/byocloud/byoc/shared/store"
)

// CountPage is how many deployments of a wave one page counts; PagesPerRun bounds the pages
// one rollout run reads, so a run over a 10,000-deployment wave stays well inside the
// function's timeout and the next run goes on from the cursor.
const (
	CountPage   = 100
	PagesPerRun = 20
)

// Publish validates a release against the catalogue and stores it, then opens its first
// wave. Every refusal is a *settings.ValidationError naming the field and the rule, and
// writes nothing.
func (s *Service) Publish(ctx context.Context, r release.Release, actor string, now time.Time) (store.ReleaseRecord, error) {
	rs, err := s.Store.Releases(ctx)
	if err != nil {
		return store.ReleaseRecord{}, err
	}
	cat := store.Catalogue(rs)
	r, err = cat.Validate(r, now)
	if err != nil {
		return store.ReleaseRecord{}, err
	}
	r.PublishedBy = actor
	expected := ""
	if cur, ok := cat[r.Component]; ok {
		expected = cur.Version
	}
	rec, err := s.Store.PublishRelease(ctx, r, expected)
	if err != nil {
		return store.ReleaseRecord{}, err
	}
	s.Log.InfoContext(ctx, "release published", "release", r.ID, "kind", r.Kind, "actor", actor)
	return s.advanceOne(ctx, rec, now)
}

// Advance moves every unfinished rollout on (the five-minute schedule): a wave whose
// deployments all settled bakes, a baked wave opens the next, an opened wave is counted
// (and, for a security release, each deployment that needs it is given its off-cycle start).
func (s *Service) Advance(ctx context.Context, now time.Time) ([]store.ReleaseRecord, error) {
	rs, err := s.Store.Releases(ctx)
	if err != nil {
		return nil, err
	}
	var out []store.ReleaseRecord
	var errs []error
	for _, r := range rs {
		if r.Progress[len(r.Progress)-1].State == release.WaveDone {
			continue
		}
		rec, err := s.advanceOne(ctx, r, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("release %s: %w", r.Release.ID, err))
			continue
		}
		out = append(out, rec)
	}
	return out, errors.Join(errs...)
}

func (s *Service) advanceOne(ctx context.Context, r store.ReleaseRecord, now time.Time) (store.ReleaseRecord, error) {
	prev := r
	r, err := s.Store.WithCounts(ctx, r)
	if err != nil {
		return r, err
	}
	r.Progress = slices.Clone(r.Progress)
	pages := 0
	for pages < PagesPerRun {
		i := release.Advance(r.Progress, r.Release.BakeTime(), r.Halted, now)
		w := runningUncounted(r.Progress)
		if i < 0 && w < 0 {
			break
		}
		if w < 0 {
			w = i
		}
		n, err := s.countPage(ctx, &r, w, now)
		if err != nil {
			return prev, err
		}
		pages += n
	}
	r.Progress = r.Waves()
	if slices.Equal(stateOf(prev.Progress), stateOf(r.Progress)) && !progressMoved(prev.Progress, r.Progress) {
		return r, nil
	}
	return s.Store.SaveRelease(ctx, prev, r)
}

func runningUncounted(p []release.WaveProgress) int {
	for i, w := range p {
		if w.State == release.WaveRunning && !w.Counted {
			return i
		}
	}
	return -1
}

func stateOf(p []release.WaveProgress) []string {
	out := make([]string, len(p))
	for i, w := range p {
		out[i] = w.State
	}
	return out
}

func progressMoved(a, b []release.WaveProgress) bool {
	for i := range a {
		if a[i].Members != b[i].Members || a[i].Counted != b[i].Counted || a[i].Cursor != b[i].Cursor {
			return true
		}
	}
	return false
}

// countPage counts one page of wave w's deployments. Only provisioned ones count: others
// have nothing to upgrade. One that already runs the release settles at once (current); for
// a security release, one that needs it gets its off-cycle start.
func (s *Service) countPage(ctx context.Context, r *store.ReleaseRecord, w int, now time.Time) (int, error) {
	wp := &r.Progress[w]
	ids, next, err := s.Store.WaveMembers(ctx, wp.Wave, wp.Cursor, CountPage)
	if err != nil {
		return 1, err
	}
	for _, id := range ids {
		d, err := s.Store.Get(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return 1, err
		}
		if !Maintainable(d) {
			continue
		}
		wp.Members++
		cur, _, err := s.Versions(ctx, d)
		if err != nil {
			return 1, err
		}
		if !release.Needed(r.Release, cur) {
			if _, err := s.Store.RecordOutcome(ctx, r.Release.ID, w, store.Outcome{DeploymentID: d.ID, Status: store.OutcomeCurrent, At: now}); err != nil {
				return 1, err
			}
			continue
		}
		if r.Release.Kind == release.Security {
			if err := s.scheduleSecurity(ctx, d, r.Release, now); err != nil {
				return 1, err
			}
		}
	}
	wp.Cursor = next
	wp.Counted = next == ""
	// The outcomes just recorded settle members: read the counter again.
	fresh, err := s.Store.WithCounts(ctx, *r)
	if err != nil {
		return 1, err
	}
	wp.Settled, wp.Failed = fresh.Progress[w].Settled, fresh.Progress[w].Failed
	return 1, nil
}

// scheduleSecurity gives a deployment its off-cycle start for a security release: the
// notice now, the start after the release's notice lead (at once for a critical one).
func (s *Service) scheduleSecurity(ctx context.Context, d store.Deployment, r release.Release, now time.Time) error {
	start := now.Add(r.NoticeLead()).UTC().Truncate(time.Second)
	for attempt := 0; ; attempt++ {
		m := *d.Maintenance
		if m.Security != nil && !m.Security.At.After(start) {
			return nil // an earlier start is already set (a retried run, or another fix)
		}
		m.Security = &store.Arm{At: start, Purpose: PurposeSecurity, Key: r.ID}
		n := Notice{NoticeID: "scheduled/" + d.ID + "/" + r.ID, DeploymentID: d.ID, CustomerID: d.Settings.CustomerID, StartsAt: &start,
			Releases: Releases([]release.Release{r})}
		if err := s.Notices.Publish(ctx, contract.DetailTypeMaintenanceScheduled, n); err != nil {
			return err
		}
		_, err := s.Rearm(ctx, d, m, now, store.Audit{Actor: "releases", Action: "maintenance.security-scheduled",
			Detail: fmt.Sprintf("security release %s (%s) starts off-cycle at %s", r.ID, r.Severity, start.Format(time.RFC3339))})
		if !errors.Is(err, store.ErrConflict) || attempt == 3 {
			return err
		}
		if d, err = s.Store.Get(ctx, d.ID); err != nil {
			return err
		}
	}
}

// Resume lifts a halt: the halted waves run again (their failed deployments retry in their
// next window) and the rollout goes on.
func (s *Service) Resume(ctx context.Context, id, actor string, now time.Time) (store.ReleaseRecord, error) {
	r, err := s.Store.Release(ctx, id)
	if err != nil {
		return r, err
	}
	if !r.Halted {
		return r, fmt.Errorf("release %s is not halted", id)
	}
	next := r
	next.Progress = slices.Clone(r.Progress)
	next.Halted, next.HaltReason, next.ResumedBy = false, "", actor
	for i := range next.Progress {
		if next.Progress[i].State == release.WaveHalted {
			next.Progress[i].State = release.WaveRunning
		}
	}
	saved, err := s.Store.SaveRelease(ctx, r, next)
	if err != nil {
		return r, err
	}
	return s.advanceOne(ctx, saved, now)
}

// HealthRegressed halts every release a deployment took within its bake time when the
// deployment turns unhealthy: the release may be the cause, and no further wave should
// take it until an operator looked.
func (s *Service) HealthRegressed(ctx context.Context, deploymentID, reason string, now time.Time) ([]string, error) {
	rs, err := s.Store.Releases(ctx)
	if err != nil {
		return nil, err
	}
	var halted []string
	for _, r := range rs {
		if r.Halted || r.Progress[len(r.Progress)-1].State == release.WaveDone {
			continue
		}
		o, err := s.Store.OutcomeOf(ctx, r.Release.ID, deploymentID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return halted, err
		}
		if o.Status != store.OutcomeUpgraded || now.Sub(o.At) > r.Release.BakeTime() {
			continue
		}
		next := r
		next.Halted, next.HaltReason = true, fmt.Sprintf("deployment %s turned unhealthy %s after taking it: %s", deploymentID, now.Sub(o.At).Round(time.Second), reason)
		next.Progress = next.Waves()
		// The notice first: a retry after a lost save sends it again (consumers deduplicate
		// on its id), never not at all.
		if err := s.Notices.Publish(ctx, contract.DetailTypeReleaseHalted, Notice{NoticeID: "halted/" + r.Release.ID + "/" + deploymentID + "/" + o.At.UTC().Format(time.RFC3339),
			DeploymentID: deploymentID, Releases: Releases([]release.Release{r.Release}), Reason: next.HaltReason}); err != nil {
			return halted, err
		}
		if _, err := s.Store.SaveRelease(ctx, r, next); err != nil {
			return halted, err
		}
		halted = append(halted, r.Release.ID)
	}
	return halted, nil
}
