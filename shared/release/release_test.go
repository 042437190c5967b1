package release

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/byocloud/byoc/shared/settings"
)

var now = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func catalogue(rs ...Release) Catalogue {
	c := Catalogue{}
	for _, r := range rs {
		c[r.Component] = r
	}
	return c
}

func TestValidateRefusesNamingFieldAndRule(t *testing.T) {
	deadline := now.Add(30 * 24 * time.Hour)
	cat := catalogue(Release{Component: ClickHouse, Version: "25.3.2.39"}, Release{Component: Kubernetes, Version: "1.34"})
	cases := []struct {
		name  string
		in    Release
		field string
		rule  string
	}{
		{"unknown component", Release{Component: "etcd", Version: "3.5.0"}, "component", "must be one of kubernetes, nodes"},
		{"malformed version", Release{Component: ClickHouse, Version: "25.3"}, "version", "four numbers"},
		{"malformed kubernetes", Release{Component: Kubernetes, Version: "1.35.1"}, "version", "minor version"},
		{"downgrade", Release{Component: ClickHouse, Version: "25.2.9.1"}, "version", "never downgrades"},
		{"same version again", Release{Component: ClickHouse, Version: "25.3.2.39"}, "version", "must be newer"},
		{"kubernetes skipping a minor", Release{Component: Kubernetes, Version: "1.36"}, "version", "one minor at a time"},
		{"node release of another minor", Release{Component: Nodes, Version: "1.33.5-20251016"}, "version", "Kubernetes 1.34"},
		{"add-on without compatibility", Release{Component: "coredns", Version: "v1.11.4-eksbuild.2"}, "kubernetesVersions", "must list"},
		{"add-on incompatible with the catalogue's kubernetes", Release{Component: "coredns", Version: "v1.11.4-eksbuild.2", KubernetesVersions: []string{"1.32", "1.33"}},
			"kubernetesVersions", "not compatible"},
		{"unknown kind", Release{Component: Operator, Version: "0.26.0", Kind: "urgent"}, "kind", "regular or security"},
		{"regular with a severity", Release{Component: Operator, Version: "0.26.0", Severity: "high"}, "kind", "publish it as kind security"},
		{"security without severity", Release{Component: Operator, Version: "0.26.0", Kind: Security, CVEs: []string{"CVE-2026-1234"}, Deadline: &deadline}, "severity", "low, medium, high or critical"},
		{"security without CVEs", Release{Component: Operator, Version: "0.26.0", Kind: Security, Severity: "high", Deadline: &deadline}, "cves", "1 to 50"},
		{"malformed CVE", Release{Component: Operator, Version: "0.26.0", Kind: Security, Severity: "high", CVEs: []string{"cve-1"}, Deadline: &deadline}, "cves[0]", "CVE id"},
		{"security without deadline", Release{Component: Operator, Version: "0.26.0", Kind: Security, Severity: "high", CVEs: []string{"CVE-2026-1234"}}, "deadline", "must have a deadline"},
		{"deadline too close", Release{Component: Operator, Version: "0.26.0", Kind: Security, Severity: "high", CVEs: []string{"CVE-2026-1234"}, Deadline: ptr(now.Add(2 * time.Hour))}, "deadline", "no earlier than"},
		{"bad bake", Release{Component: Operator, Version: "0.26.0", Bake: "forever"}, "bake", "duration"},
		{"bad notice", Release{Component: Operator, Version: "0.26.0", Kind: Security, Severity: "low", CVEs: []string{"CVE-2026-1234"}, Deadline: &deadline, Notice: "-1h"}, "noticeLead", "duration"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := cat.Validate(c.in, now)
			var ve *settings.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a validation error, got %v", err)
			}
			fe, ok := ve.Field(c.field)
			if !ok || !strings.Contains(fe.Rule, c.rule) {
				t.Fatalf("want %s: %q, got %v", c.field, c.rule, err)
			}
			if !strings.HasPrefix(err.Error(), "invalid release: ") {
				t.Fatalf("message %q", err)
			}
			if !reflect.DeepEqual(out, c.in) {
				t.Fatalf("refused release changed: %+v", out)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestValidateAcceptsAndDerives(t *testing.T) {
	cat := catalogue()
	r, err := cat.Validate(Release{Component: Kubernetes, Version: "1.34"}, now)
	if err != nil || r.ID != "kubernetes-1.34" || r.Kind != Regular || !r.PublishedAt.Equal(now) || r.BakeTime() != DefaultBake {
		t.Fatalf("got %+v, %v", r, err)
	}
	cat[Kubernetes] = r
	a, err := cat.Validate(Release{Component: "coredns", Version: "v1.11.4-eksbuild.2", KubernetesVersions: []string{"1.33", "1.34"}}, now)
	if err != nil || a.ID != "coredns-v1.11.4-eksbuild.2" {
		t.Fatalf("add-on: %+v, %v", a, err)
	}
	deadline := now.Add(72 * time.Hour)
	s, err := cat.Validate(Release{Component: ClickHouse, Version: "25.3.2.40", Kind: Security, Severity: "critical", CVEs: []string{"CVE-2026-4242"}, Deadline: &deadline}, now)
	if err != nil || s.NoticeLead() != 0 || s.BakeTime() != DefaultSecurityBake {
		t.Fatalf("critical security: %+v, %v (lead %s)", s, err, s.NoticeLead())
	}
	s.Severity = "high"
	if s.NoticeLead() != DefaultNotice {
		t.Fatalf("a high one's notice lead is %s", s.NoticeLead())
	}
}

func kinds(steps []Step) string {
	var out []string
	for _, s := range steps {
		d := s.Kind
		switch s.Kind {
		case StepControlPlane, StepNodes:
			d += ":" + s.Kubernetes
			if s.Nodes != "" {
				d += "/" + s.Nodes
			}
		case StepClickHouse:
			d += ":" + s.ServiceID
		case StepAddons:
			for _, n := range Addons {
				if v, ok := s.Addons[n]; ok {
					d += ":" + n + "=" + v
				}
			}
		}
		out = append(out, d)
	}
	return strings.Join(out, " ")
}

func TestPlanOrder(t *testing.T) {
	k35 := Release{ID: "k", Component: Kubernetes, Version: "1.35"}
	nodes := Release{ID: "n", Component: Nodes, Version: "1.35.1-20260101"}
	dns := Release{ID: "d", Component: "coredns", Version: "v1.12.0-eksbuild.1", KubernetesVersions: []string{"1.34", "1.35"}}
	op := Release{ID: "o", Component: Operator, Version: "0.27.0"}
	ch := Release{ID: "c", Component: ClickHouse, Version: "25.4.1.1", Kind: Security}
	cur := Versions{Kubernetes: "1.33", NodesKubernetes: "1.33", Operator: "0.26.0",
		ClickHouse: map[string]string{"svc-b": "25.3.2.39", "svc-a": "25.3.2.39", "svc-c": "25.4.1.1"}}
	steps := Plan(cur, []Release{ch, op, dns, nodes, k35})
	want := "control-plane:1.34 nodes:1.34 addons:coredns=v1.12.0-eksbuild.1 control-plane:1.35 nodes:1.35/1.35.1-20260101 operator clickhouse:svc-a clickhouse:svc-b"
	if got := kinds(steps); got != want {
		t.Fatalf("plan\n got %s\nwant %s", got, want)
	}
	if !steps[len(steps)-1].Security || steps[0].Security || steps[len(steps)-1].From != "25.3.2.39" {
		t.Fatalf("security and rollback version not carried: %+v", steps[len(steps)-1])
	}
	if steps[0].Estimate != estimates[StepControlPlane] {
		t.Fatal("estimate not set")
	}
}

func TestPlanAfterAWindowClosedBetweenControlPlaneAndNodes(t *testing.T) {
	k := Release{ID: "k", Component: Kubernetes, Version: "1.34"}
	cur := Versions{Kubernetes: "1.34", NodesKubernetes: "1.33", Nodes: "1.33.5-20251016"}
	if !Needed(k, cur) {
		t.Fatal("nodes behind the control plane: the kubernetes release is still needed")
	}
	if got := kinds(Plan(cur, []Release{k})); got != "nodes:1.34" {
		t.Fatalf("plan %s, want the node groups only", got)
	}
	done := Versions{Kubernetes: "1.34", NodesKubernetes: "1.34"}
	if Needed(k, done) || len(Plan(done, []Release{k})) != 0 {
		t.Fatal("an upgraded deployment has nothing due")
	}
	n := Release{ID: "n", Component: Nodes, Version: "1.34.2-20260101"}
	if got := kinds(Plan(done, []Release{n})); got != "nodes:1.34/1.34.2-20260101" {
		t.Fatalf("a node release alone: %s", got)
	}
}

func TestCompare(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"25.10.1.1", "25.9.9.9", 1}, {"1.34", "1.34", 0}, {"v1.9.0-eksbuild.1", "v1.10.0-eksbuild.1", -1}, {"1.34.2-20260101", "1.34.2-20251231", 1}} {
		if got := Compare(c.a, c.b); got != c.want {
			t.Errorf("Compare(%s, %s) = %d", c.a, c.b, got)
		}
	}
}

func TestRolloutWaves(t *testing.T) {
	p := NewProgress()
	bake := 24 * time.Hour
	if i := Advance(p, bake, false, now); i != 0 {
		t.Fatalf("first advance opened %d", i)
	}
	if i := Advance(p, bake, false, now); i != -1 {
		t.Fatal("an uncounted wave cannot settle")
	}
	p[0].Counted = true // no fast canaries: the wave is done without baking
	if i := Advance(p, bake, false, now); i != 1 || p[0].State != WaveDone {
		t.Fatalf("empty wave: opened %d, %+v", i, p[0])
	}
	p[1].Counted, p[1].Members = true, 2
	p[1].Settled = 1
	if Advance(p, bake, false, now) != -1 || p[1].State != WaveRunning {
		t.Fatal("a wave with an unsettled member stays running")
	}
	if !Open(p, ChannelFast, false) || Open(p, ChannelRegular, true) {
		t.Fatal("open waves wrong")
	}
	p[1].Settled = 2
	if Advance(p, bake, false, now) != -1 || p[1].State != WaveBaking {
		t.Fatalf("settled wave: %+v", p[1])
	}
	if Advance(p, bake, true, now.Add(48*time.Hour)) != -1 {
		t.Fatal("a halted release moved")
	}
	if i := Advance(p, bake, false, now.Add(bake)); i != 2 || p[1].State != WaveDone {
		t.Fatalf("after the bake: opened %d, %+v", i, p[1])
	}
	if !strings.Contains(Summary(p), "fast/rest done, regular/canary running 0/0") {
		t.Fatalf("summary %s", Summary(p))
	}
}
