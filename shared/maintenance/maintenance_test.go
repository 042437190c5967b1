package maintenance

import (
	"strings"
	"testing"
	"time"

	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/release"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/statemsg"
	"github.com/byocloud/byoc/shared/store"
	"github.com/byocloud/byoc/shared/window"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// Tuesday 01:00 Pacific, four hours: the seed's example.
var seedWindow = store.Maintenance{Window: window.Window{Day: "tuesday", Start: "01:00", TimeZone: "America/Los_Angeles", Hours: 4}, Channel: release.ChannelRegular}

func TestNextArmGivesNoticeThenOpening(t *testing.T) {
	cases := []struct {
		name, now string
		m         func(store.Maintenance) store.Maintenance
		want      store.Arm
	}{
		{"a week ahead: the notice 72 h before", "2026-12-01T12:00:00Z", nil,
			store.Arm{At: at("2026-12-05T09:00:00Z"), Purpose: PurposeNotice, Key: "2026-12-08"}},
		{"after the notice: the opening", "2026-12-05T09:00:00Z", nil,
			store.Arm{At: at("2026-12-08T09:00:00Z"), Purpose: PurposeOpen, Key: "2026-12-08"}},
		{"at the opening: the next week's notice", "2026-12-08T09:00:00Z", nil,
			store.Arm{At: at("2026-12-12T09:00:00Z"), Purpose: PurposeNotice, Key: "2026-12-15"}},
		{"a deferred window is stepped over", "2026-12-05T09:00:00Z",
			func(m store.Maintenance) store.Maintenance { m.Deferred = []string{"2026-12-08"}; return m },
			store.Arm{At: at("2026-12-12T09:00:00Z"), Purpose: PurposeNotice, Key: "2026-12-15"}},
		{"a pending security start comes first", "2026-12-01T12:00:00Z",
			func(m store.Maintenance) store.Maintenance {
				m.Security = &store.Arm{At: at("2026-12-02T12:00:00Z"), Purpose: PurposeSecurity, Key: "clickhouse-25.3.2.40"}
				return m
			},
			store.Arm{At: at("2026-12-02T12:00:00Z"), Purpose: PurposeSecurity, Key: "clickhouse-25.3.2.40"}},
		{"an overdue security start is armed a minute ahead, never in the past", "2026-12-03T00:00:00Z",
			func(m store.Maintenance) store.Maintenance {
				m.Security = &store.Arm{At: at("2026-12-02T12:00:00Z"), Purpose: PurposeSecurity, Key: "s"}
				return m
			},
			store.Arm{At: at("2026-12-03T00:01:00Z"), Purpose: PurposeSecurity, Key: "s"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := seedWindow
			if c.m != nil {
				m = c.m(m)
			}
			got, err := NextArm(m, at(c.now))
			if err != nil {
				t.Fatal(err)
			}
			if !got.At.Equal(c.want.At) || got.Purpose != c.want.Purpose || got.Key != c.want.Key {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestNewRefusesABadWindowOrChannel(t *testing.T) {
	if _, err := New(&window.Window{Day: "someday", Start: "01:00", TimeZone: "UTC"}, "us-east-1", "", false); err == nil || !strings.Contains(err.Error(), "window.day") {
		t.Fatalf("bad window: %v", err)
	}
	if _, err := New(nil, "us-east-1", "beta", false); err == nil || !strings.Contains(err.Error(), `channel "beta"`) {
		t.Fatalf("bad channel: %v", err)
	}
	m, err := New(nil, "us-east-1", "", true)
	if err != nil || m.Window.TimeZone != "America/New_York" || m.Channel != release.ChannelRegular || !m.Canary {
		t.Fatalf("defaults: %+v %v", m, err)
	}
}

func TestDueFollowsRolloutHaltsAndVersions(t *testing.T) {
	open := release.NewProgress()
	release.Advance(open, 0, false, time.Now()) // fast/canary opens
	for i := range open {
		open[i].State = release.WaveRunning
	}
	rec := func(component, version, kind string, halted bool, progress []release.WaveProgress) store.ReleaseRecord {
		return store.ReleaseRecord{Release: release.Release{ID: release.ID(component, version), Component: component, Version: version, Kind: kind}, Halted: halted, Progress: progress}
	}
	rs := []store.ReleaseRecord{
		rec(release.ClickHouse, "25.4.1.1", release.Regular, false, open),
		rec(release.Operator, "0.27.0", release.Security, false, open),
		rec(release.Kubernetes, "1.34", release.Regular, true, open),                        // halted
		rec("coredns", "v1.12.0-eksbuild.1", release.Regular, false, release.NewProgress()), // not rolled out
		rec(release.Operator, "0.25.0", release.Regular, false, open),                       // older than what runs
	}
	cur := Versions(map[string]string{contract.InfraParamKubernetesVersion: "1.33"}, []servicestate.Service{
		{ServiceID: "s1", Versions: statemsg.Versions{ClickHouse: "25.3.2.39", Operator: "0.26.0"}},
		{ServiceID: "s2", Versions: statemsg.Versions{ClickHouse: "25.3.2.39", Operator: "0.26.1"}},
	})
	if cur.Operator != "0.26.0" || cur.NodesKubernetes != "1.33" || len(cur.ClickHouse) != 2 {
		t.Fatalf("versions %+v", cur)
	}
	ids := func(rs []release.Release) string {
		var out []string
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return strings.Join(out, ",")
	}
	if got := ids(Due(rs, seedWindow, cur, false)); got != "clickhouse-25.4.1.1,operator-0.27.0" {
		t.Fatalf("due in a window: %s", got)
	}
	if got := ids(Due(rs, seedWindow, cur, true)); got != "operator-0.27.0" {
		t.Fatalf("due off-cycle: %s", got)
	}
	if got := ids(Pending(rs, cur)); got != "clickhouse-25.4.1.1,operator-0.27.0,kubernetes-1.34,coredns-v1.12.0-eksbuild.1" {
		t.Fatalf("pending: %s", got)
	}
}

func TestUpcomingShowsLocalTimesAndDeferrals(t *testing.T) {
	m := seedWindow
	m.Deferred = []string{"2026-12-15"}
	got, err := Upcoming(m, at("2026-12-07T00:00:00Z"), 4, []release.Release{{ID: "clickhouse-25.4.1.1"}})
	if err != nil || len(got) != 4 {
		t.Fatalf("%+v %v", got, err)
	}
	if got[0].Key != "2026-12-08" || got[0].LocalOpens != "2026-12-08T01:00:00-08:00" || got[0].Opens.Format(time.RFC3339) != "2026-12-08T09:00:00Z" || len(got[0].Due) != 1 {
		t.Fatalf("first: %+v", got[0])
	}
	if !got[1].Deferred || len(got[1].Due) != 0 {
		t.Fatalf("the deferred one: %+v", got[1])
	}
}
