package maintenance

import (
	"fmt"
	"testing"
	"time"

	"github.com/byocloud/byoc/shared/release"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/statemsg"
	"github.com/byocloud/byoc/shared/store"
	"github.com/byocloud/byoc/shared/window"
)

// fleet is 10,000 deployments spread over the regions' zones, every weekday and start hour,
// each running two ClickHouse services, with a catalogue of four releases open to them.
func fleet() ([]store.Maintenance, []release.Versions, []store.ReleaseRecord) {
	zones := []string{"America/Los_Angeles", "America/New_York", "Europe/London", "Europe/Berlin", "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney", "Australia/Lord_Howe", "UTC"}
	days := []string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
	open := release.NewProgress()
	for i := range open {
		open[i].State = release.WaveRunning
	}
	rel := func(component, version string) store.ReleaseRecord {
		return store.ReleaseRecord{Release: release.Release{ID: release.ID(component, version), Component: component, Version: version,
			KubernetesVersions: []string{"1.34"}}, Progress: open}
	}
	rs := []store.ReleaseRecord{rel(release.Kubernetes, "1.34"), rel(release.Nodes, "1.34.2-20260101"), rel("coredns", "v1.12.0-eksbuild.1"), rel(release.ClickHouse, "25.4.1.1")}
	ms := make([]store.Maintenance, 10000)
	vs := make([]release.Versions, 10000)
	for i := range ms {
		ms[i] = store.Maintenance{Window: window.Window{Day: days[i%7], Start: fmt.Sprintf("%02d:30", i%24), TimeZone: zones[i%len(zones)], Hours: 1 + i%8},
			Channel: release.Channels[i%3], Canary: i%10 == 0}
		vs[i] = Versions(map[string]string{"KubernetesVersion": "1.33", "NodeKubernetesVersion": "1.33"}, []servicestate.Service{
			{ServiceID: "a", Versions: statemsg.Versions{ClickHouse: "25.3.2.39", Operator: "0.26.0"}},
			{ServiceID: "b", Versions: statemsg.Versions{ClickHouse: "25.3.2.39", Operator: "0.26.0"}}})
	}
	return ms, vs, rs
}

// BenchmarkFleetWindows is one pass over a fleet of 10,000 deployments: each one's next
// firing (notice or opening, across daylight saving), its next four windows, and its due
// releases and upgrade plan. It is what the control plane would compute to show the whole
// fleet's schedule; each firing computes one deployment's share.
func BenchmarkFleetWindows(b *testing.B) {
	ms, vs, rs := fleet()
	now := time.Date(2027, 3, 10, 12, 0, 0, 0, time.UTC)
	steps := 0
	for b.Loop() {
		steps = 0
		for i := range ms {
			if _, err := NextArm(ms[i], now); err != nil {
				b.Fatal(err)
			}
			due := Due(rs, ms[i], vs[i], false)
			if _, err := Upcoming(ms[i], now, 4, due); err != nil {
				b.Fatal(err)
			}
			steps += len(release.Plan(vs[i], due))
		}
	}
	b.ReportMetric(float64(len(ms)), "deployments/op")
	b.ReportMetric(float64(steps)/float64(len(ms)), "steps/deployment")
}
