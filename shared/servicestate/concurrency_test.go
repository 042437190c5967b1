package servicestate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/statemsg"
)

// Reports of one service delivered concurrently and in any order leave the newest stored,
// and each service transition recorded once.
func TestConcurrentReportsKeepTheNewest(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for seq := int64(40); seq >= 1; seq-- {
		wg.Add(1)
		go func(seq int64) {
			defer wg.Done()
			m := report("dep1", "svc-a", seq)
			if seq%2 == 0 {
				m.Status = statemsg.StatusDegraded
			}
			// Contention beyond Apply's retry budget is ErrConflict, which stateingest leaves
			// to SQS's redelivery: the test redelivers the same way, until it is applied.
			for {
				_, err := f.repo.Apply(ctx, m, "m")
				if errors.Is(err, ErrConflict) {
					continue
				}
				if err != nil {
					errs <- err
				}
				return
			}
		}(seq)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err) // only contention may be retried; any other error is a defect
	}
	s, err := f.repo.Service(ctx, "dep1", "svc-a")
	if err != nil {
		t.Fatal(err)
	}
	if s.OrderKey != report("dep1", "svc-a", 40).OrderKey() || s.Health != health.Degraded {
		t.Fatalf("stored %s %s, want the 40th report (degraded)", s.OrderKey, s.Health)
	}
}

// Services of one deployment changing at once: the deployment's health ends as the worst of
// them, whatever the interleaving (repeated over several deployments to vary it).
func TestConcurrentServicesConvergeDeploymentHealth(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for d := range 8 {
		dep := fmt.Sprintf("dep%d", d)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m := report(dep, fmt.Sprintf("svc-%d", i), int64(i+1))
				if i == d {
					m.Status = statemsg.StatusUnhealthy
				}
				for { // redelivered on contention, as by SQS
					_, err := f.repo.Apply(ctx, m, "m")
					if errors.Is(err, ErrConflict) {
						continue
					}
					if err != nil {
						t.Error(err)
					}
					return
				}
			}()
		}
		wg.Wait()
		dh, err := f.repo.DeploymentHealth(ctx, dep)
		if err != nil || dh.Health != health.Unhealthy {
			t.Fatalf("%s: deployment health %+v %v", dep, dh, err)
		}
	}
}
