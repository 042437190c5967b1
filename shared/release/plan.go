package release

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// Versions are what a deployment runs: Kubernetes, node and add-on versions as its
// infrastructure stack's parameters say ("" for an add-on still on the version EKS chose
// at creation), the operator and ClickHouse as its services report them.
type Versions struct {
	Kubernetes      string            `json:"kubernetes"`
	NodesKubernetes string            `json:"nodesKubernetes"`
	Nodes           string            `json:"nodes,omitempty"`
	Addons          map[string]string `json:"addons,omitempty"`
	Operator        string            `json:"operator,omitempty"`
	ClickHouse      map[string]string `json:"clickhouse,omitempty"` // by service id
}

// Kinds of plan step.
const (
	StepControlPlane = "control-plane" // infrastructure stack update: KubernetesVersion
	StepNodes        = "nodes"         // second stack update: the node groups' version and release
	StepAddons       = "addons"        // stack update: add-on versions
	StepOperator     = "operator"      // command to the agent, gated on every service reporting it
	StepClickHouse   = "clickhouse"    // command for one service, gated on it healthy on the version
)

// Step is one unit of an upgrade plan: it either completes or leaves the deployment as it
// was (a stack update rolls back whole; a service is rolled back to its version).
type Step struct {
	Kind       string            `json:"kind"`
	Kubernetes string            `json:"kubernetes,omitempty"` // control-plane, nodes: the minor
	Nodes      string            `json:"nodes,omitempty"`      // nodes: AMI release ("" = EKS's latest for the minor)
	Addons     map[string]string `json:"addons,omitempty"`     // addons: name -> version
	Operator   string            `json:"operator,omitempty"`
	ServiceID  string            `json:"serviceId,omitempty"`
	ClickHouse string            `json:"clickhouse,omitempty"`
	From       string            `json:"from,omitempty"` // clickhouse: the version to roll back to
	Releases   []string          `json:"releases"`       // the release ids this step delivers
	Security   bool              `json:"security,omitempty"`
	Estimate   time.Duration     `json:"estimate"`
}

// Estimates of each kind of step, from EKS's documented and observed durations: a control
// plane minor upgrade takes 20-30 minutes; a managed node group replaces its nodes one at a
// time (three groups); add-ons and the operator roll their pods; a ClickHouse service rolls
// its replicas. A step starts only when its estimate fits what is left of the window.
var estimates = map[string]time.Duration{
	StepControlPlane: 35 * time.Minute,
	StepNodes:        50 * time.Minute,
	StepAddons:       15 * time.Minute,
	StepOperator:     10 * time.Minute,
	StepClickHouse:   20 * time.Minute,
}

// Estimate is how long a step is expected to take.
func Estimate(s Step) time.Duration { return estimates[s.Kind] }

// Describe names a step for people: "control plane to 1.34".
func (s Step) Describe() string {
	switch s.Kind {
	case StepControlPlane:
		return "EKS control plane to Kubernetes " + s.Kubernetes
	case StepNodes:
		if s.Nodes != "" {
			return fmt.Sprintf("node groups to Kubernetes %s (AMI release %s)", s.Kubernetes, s.Nodes)
		}
		return "node groups to Kubernetes " + s.Kubernetes
	case StepAddons:
		return fmt.Sprintf("EKS add-ons %v", s.Addons)
	case StepOperator:
		return "ClickHouse operator to " + s.Operator
	}
	return fmt.Sprintf("ClickHouse service %s to %s", s.ServiceID, s.ClickHouse)
}

// Describe names each step for people.
func Describe(steps []Step) []string {
	out := make([]string, len(steps))
	for i, st := range steps {
		out[i] = st.Describe()
	}
	return out
}

// Plan is the ordered steps that take a deployment from cur to the due releases (at most
// one per component: the newest due). Order, and why:
//  1. per Kubernetes minor, one at a time (EKS moves the control plane one minor per
//     update): the control plane, then the node groups to the same minor (a separate stack
//     update: a node group's version change cannot ride with other changes), then the
//     add-ons that support that minor;
//  2. without a minor change: a newer node release, then newer add-ons;
//  3. the operator (it must understand the ClickHouse version it will roll out);
//  4. ClickHouse, one service at a time, each gated on the service healthy on the version.
func Plan(cur Versions, due []Release) []Step {
	want := map[string]Release{}
	for _, r := range due {
		if w, ok := want[r.Component]; !ok || Compare(r.Version, w.Version) > 0 {
			want[r.Component] = r
		}
	}
	var steps []Step
	add := func(s Step, rs ...Release) {
		for _, r := range rs {
			s.Releases = append(s.Releases, r.ID)
			s.Security = s.Security || r.Kind == Security
		}
		s.Estimate = Estimate(s)
		steps = append(steps, s)
	}
	addons := map[string]string{}
	maps.Copy(addons, cur.Addons)
	// addonsFor returns the add-on upgrades due that run on minor m.
	addonsFor := func(m string) (map[string]string, []Release) {
		out := map[string]string{}
		var rs []Release
		for _, name := range Addons {
			r, ok := want[name]
			if !ok || !slices.Contains(r.KubernetesVersions, m) || (addons[name] != "" && Compare(r.Version, addons[name]) <= 0) {
				continue
			}
			out[name], addons[name] = r.Version, r.Version
			rs = append(rs, r)
		}
		return out, rs
	}
	cp, np := Minor(cur.Kubernetes), Minor(cur.NodesKubernetes)
	target := cp
	k, upgrading := want[Kubernetes]
	if upgrading {
		target = max(cp, Minor(k.Version))
	}
	nodes := cur.Nodes
	n, nodesDue := want[Nodes]
	for m := cp; m <= target; m++ {
		minor := MinorString(m)
		var ks []Release
		if upgrading {
			ks = []Release{k}
		}
		if m > cp {
			add(Step{Kind: StepControlPlane, Kubernetes: minor}, ks...)
		}
		if np < m {
			s, rs := Step{Kind: StepNodes, Kubernetes: minor}, ks
			nodes = ""
			if nodesDue && Minor(n.Version) == m {
				s.Nodes, nodes, rs = n.Version, n.Version, append(rs, n)
			}
			add(s, rs...)
			np = m
		}
		if m == target && nodesDue && Minor(n.Version) == m && nodes != n.Version && (nodes == "" || Compare(n.Version, nodes) > 0) {
			add(Step{Kind: StepNodes, Kubernetes: minor, Nodes: n.Version}, n)
		}
		if up, rs := addonsFor(minor); len(up) > 0 {
			add(Step{Kind: StepAddons, Addons: up}, rs...)
		}
	}
	// The operator runs only where services do: with none reporting, there is nothing to
	// upgrade it on or to confirm it by.
	if o, ok := want[Operator]; ok && len(cur.ClickHouse) > 0 && (cur.Operator == "" || Compare(o.Version, cur.Operator) > 0) {
		add(Step{Kind: StepOperator, Operator: o.Version}, o)
	}
	if ch, ok := want[ClickHouse]; ok {
		for _, id := range slices.Sorted(maps.Keys(cur.ClickHouse)) {
			if v := cur.ClickHouse[id]; v == "" || Compare(ch.Version, v) > 0 {
				add(Step{Kind: StepClickHouse, ServiceID: id, ClickHouse: ch.Version, From: v}, ch)
			}
		}
	}
	return steps
}

// Due returns the releases of the catalogue a deployment still needs (newer than what it
// runs), whatever their rollout says.
func Due(cat []Release, cur Versions) []Release {
	var out []Release
	for _, r := range cat {
		if Needed(r, cur) {
			out = append(out, r)
		}
	}
	return out
}

// Needed reports whether a deployment running cur still needs r.
func Needed(r Release, cur Versions) bool {
	newer := func(have string) bool { return have == "" || Compare(r.Version, have) > 0 }
	switch {
	case r.Component == Kubernetes:
		return Minor(r.Version) > Minor(cur.Kubernetes) || Minor(r.Version) > Minor(cur.NodesKubernetes)
	case r.Component == Nodes:
		return newer(cur.Nodes) || Minor(r.Version) > Minor(cur.NodesKubernetes)
	case slices.Contains(Addons, r.Component):
		return newer(cur.Addons[r.Component])
	case r.Component == Operator:
		return newer(cur.Operator)
	case r.Component == ClickHouse:
		for _, v := range cur.ClickHouse {
			if newer(v) {
				return true
			}
		}
	}
	return false
}
