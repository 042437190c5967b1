package scenario

import (
	"context"
	"time"

	"github.com/byocloud/byoc/infra/local/datasim"
)

// LiveStepInterval is how often the data plane kept running by byoc-local --serve steps:
// its agent takes the commands queued since and its exporter reports (a real exporter
// reports every 30 s; this keeps a command's round trip short while the timeline stays
// readable).
const LiveStepInterval = 5 * time.Second

// livePlane is a followed deployment's simulated data plane, kept running after the
// scenario.
type livePlane struct {
	sim   *datasim.Simulator
	id    string
	fault datasim.Fault
}

// run steps the data plane every interval until ctx ends. A failed step is printed once
// until a step succeeds again (the cloud is still up; the next step may pass).
func (l *livePlane) run(ctx context.Context, tl *Timeline, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		_, err := l.sim.Step(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil && !failing:
			tl.Printf("data plane of %s: step failed: %v\n", l.id, err)
		}
		failing = err != nil
	}
}
