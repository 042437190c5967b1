// Package maintenance decides when a deployment's maintenance happens and what it does:
// where its one schedule fires next (a notice before a window, the window's opening, or an
// off-cycle security start), which releases are due for it, what it runs now, and the
// notices the vendor bus carries. The maintenance, releases and upgrade functions share it.
package maintenance

import (
	"slices"
	"strings"
	"time"

	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/release"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/store"
	"github.com/byocloud/byoc/shared/window"
)

// Purposes of a schedule firing.
const (
	PurposeNotice   = "notice"   // UpcomingLead before a window: tell the customer what is due
	PurposeOpen     = "open"     // the window opens: start the upgrade if work is due
	PurposeSecurity = "security" // an off-cycle security upgrade starts (its notice went out before)
)

// UpcomingLead is how long before a window with work due the customer hears of it.
const UpcomingLead = 72 * time.Hour

// minLead keeps an arm in the future: a one-time schedule for a past instant never fires.
const minLead = time.Minute

// NextArm is where a deployment's schedule fires next after now: the next window's notice
// (or its opening, when the notice time has passed), or a pending security start if that
// comes first. Deferred occurrences are stepped over.
func NextArm(m store.Maintenance, now time.Time) (store.Arm, error) {
	o, err := m.Window.Current(now)
	if err != nil {
		return store.Arm{}, err
	}
	for !o.Opens.After(now) || slices.Contains(m.Deferred, o.Key) {
		if o, err = m.Window.After(o); err != nil {
			return store.Arm{}, err
		}
	}
	a := store.Arm{At: o.Opens, Purpose: PurposeOpen, Key: o.Key}
	if notice := o.Opens.Add(-UpcomingLead); notice.After(now.Add(minLead)) {
		a = store.Arm{At: notice, Purpose: PurposeNotice, Key: o.Key}
	}
	if s := m.Security; s != nil && s.At.Before(a.At) {
		a = *s
	}
	if a.At.Before(now.Add(minLead)) {
		a.At = now.Add(minLead)
	}
	a.At = a.At.UTC().Truncate(time.Second)
	return a, nil
}

// New is the maintenance of a newly invited deployment: its window (the region's default
// when none is given) and channel (regular by default), validated. Errors name the field
// under "window" / "channel".
func New(w *window.Window, region, channel string, canary bool) (store.Maintenance, error) {
	win := window.Default(region)
	if w != nil {
		var err error
		if win, err = window.Normalize(*w, "window"); err != nil {
			return store.Maintenance{}, err
		}
	}
	if channel == "" {
		channel = release.ChannelRegular
	}
	if !release.ValidChannel(channel) {
		c := settings.Collector{Of: "settings"}
		c.Add("channel", channel, "must be one of "+strings.Join(release.Channels, ", "))
		return store.Maintenance{}, c.Err()
	}
	return store.Maintenance{Window: win, Channel: channel, Canary: canary}, nil
}

// Due returns the releases a deployment running cur may take now: published, not halted,
// rolled out to its wave, and newer than what it runs. offCycle keeps only security ones.
func Due(rs []store.ReleaseRecord, m store.Maintenance, cur release.Versions, offCycle bool) []release.Release {
	var out []release.Release
	for _, r := range rs {
		if r.Halted || !release.Open(r.Progress, m.Channel, m.Canary) || (offCycle && r.Release.Kind != release.Security) {
			continue
		}
		if release.Needed(r.Release, cur) {
			out = append(out, r.Release)
		}
	}
	return out
}

// VersionParams picks the version parameters out of a stack's parameters (what
// store.Deployment.StackVersions keeps).
func VersionParams(stackParams map[string]string) map[string]string {
	out := map[string]string{}
	keys := []string{contract.InfraParamKubernetesVersion, contract.InfraParamNodeKubernetesVersion, contract.InfraParamNodeReleaseVersion}
	for _, a := range release.Addons {
		keys = append(keys, contract.InfraParamAddonVersion(a))
	}
	for _, k := range keys {
		if v, ok := stackParams[k]; ok {
			out[k] = v
		}
	}
	return out
}

// InitialVersions are the version parameters a new deployment is created with: the
// catalogue's targets (a new cluster starts current, never behind), its node release and
// add-ons when they run on that Kubernetes minor, and EKS's choice otherwise ("").
func InitialVersions(cat release.Catalogue) map[string]string {
	k8s := cat.Target(release.Kubernetes)
	out := map[string]string{
		contract.InfraParamKubernetesVersion:     k8s,
		contract.InfraParamNodeKubernetesVersion: k8s,
		contract.InfraParamNodeReleaseVersion:    "",
	}
	if n, ok := cat[release.Nodes]; ok && release.Minor(n.Version) == release.Minor(k8s) {
		out[contract.InfraParamNodeReleaseVersion] = n.Version
	}
	for _, a := range release.Addons {
		out[contract.InfraParamAddonVersion(a)] = ""
		if r, ok := cat[a]; ok && slices.Contains(r.KubernetesVersions, k8s) {
			out[contract.InfraParamAddonVersion(a)] = r.Version
		}
	}
	return out
}

// Pending returns the releases a deployment still needs whatever their rollout: what its
// customer will see coming.
func Pending(rs []store.ReleaseRecord, cur release.Versions) []release.Release {
	var out []release.Release
	for _, r := range rs {
		if release.Needed(r.Release, cur) {
			out = append(out, r.Release)
		}
	}
	return out
}

// Versions reads what a deployment runs: Kubernetes, node and add-on versions from its
// infrastructure stack's parameters, the operator and ClickHouse from its services' reports
// (the operator is the oldest any service reports: it upgrades them all at once).
func Versions(stackParams map[string]string, services []servicestate.Service) release.Versions {
	v := release.Versions{
		Kubernetes:      stackParams[contract.InfraParamKubernetesVersion],
		NodesKubernetes: stackParams[contract.InfraParamNodeKubernetesVersion],
		Nodes:           stackParams[contract.InfraParamNodeReleaseVersion],
		Addons:          map[string]string{},
		ClickHouse:      map[string]string{},
	}
	if v.Kubernetes == "" {
		v.Kubernetes = release.BaselineKubernetes
	}
	if v.NodesKubernetes == "" {
		v.NodesKubernetes = v.Kubernetes
	}
	for _, a := range release.Addons {
		if ver := stackParams[contract.InfraParamAddonVersion(a)]; ver != "" {
			v.Addons[a] = ver
		}
	}
	for _, s := range services {
		v.ClickHouse[s.ServiceID] = s.Versions.ClickHouse
		if op := s.Versions.Operator; op != "" && (v.Operator == "" || release.Compare(op, v.Operator) < 0) {
			v.Operator = op
		}
	}
	return v
}

// Planned is one coming window as the customer sees it.
type Planned struct {
	window.Occurrence
	LocalOpens  string   `json:"localOpens"` // in the window's zone, with its offset
	LocalCloses string   `json:"localCloses"`
	Deferred    bool     `json:"deferred,omitempty"`
	Due         []string `json:"due"` // release ids that would run now
}

// Upcoming lists the next n windows after now with what is due in each (what is due now:
// later releases and rollouts may add to it).
func Upcoming(m store.Maintenance, now time.Time, n int, due []release.Release) ([]Planned, error) {
	occ, err := m.Window.Next(now, n)
	if err != nil {
		return nil, err
	}
	loc, err := m.Window.Location()
	if err != nil {
		return nil, err
	}
	ids := []string{}
	for _, r := range due {
		ids = append(ids, r.ID)
	}
	out := make([]Planned, len(occ))
	for i, o := range occ {
		o.Opens, o.Closes = o.Opens.UTC(), o.Closes.UTC()
		out[i] = Planned{Occurrence: o, LocalOpens: o.Opens.In(loc).Format(time.RFC3339), LocalCloses: o.Closes.In(loc).Format(time.RFC3339),
			Deferred: slices.Contains(m.Deferred, o.Key), Due: ids}
		if out[i].Deferred {
			out[i].Due = []string{}
		}
	}
	return out, nil
}
