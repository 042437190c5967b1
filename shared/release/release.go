// Package release is the vendor's release catalogue and what it means for one deployment:
// the components byoc upgrades, their version formats and order, the rules a new release
// must pass, the rollout waves it goes out in, and the upgrade plan of a deployment (which
// steps, in which order, how long each is expected to take). It is pure: no AWS calls.
package release

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/byocloud/byoc/shared/settings"
)

// Components byoc upgrades. EKS add-ons are components under their own names.
const (
	Kubernetes = "kubernetes" // the EKS control plane's minor version: "1.34"
	Nodes      = "nodes"      // the node groups' AMI release version: "1.34.2-20251112"
	Operator   = "operator"   // the ClickHouse operator: "0.26.0"
	ClickHouse = "clickhouse" // the ClickHouse server: "25.3.2.39"
)

// Addons are the EKS managed add-ons of the infrastructure template, in the order they are
// upgraded (the networking ones first, as EKS recommends).
var Addons = []string{"vpc-cni", "kube-proxy", "eks-pod-identity-agent", "coredns", "aws-ebs-csi-driver"}

// Components lists every component name, in plan order.
func Components() []string {
	return append(append([]string{Kubernetes, Nodes}, Addons...), Operator, ClickHouse)
}

// BaselineKubernetes is the minor every deployment is created on (the infrastructure
// template's default): the catalogue's Kubernetes target before any release.
const BaselineKubernetes = "1.33"

// versionFormats: what a version of each kind of component looks like.
var (
	minorPattern   = regexp.MustCompile(`^1\.(\d{2})$`)
	nodesPattern   = regexp.MustCompile(`^1\.(\d{2})\.\d+-\d{8}$`)
	addonPattern   = regexp.MustCompile(`^v\d+\.\d+\.\d+-eksbuild\.\d+$`)
	semverPattern  = regexp.MustCompile(`^\d+\.\d+\.\d+$`)
	chPattern      = regexp.MustCompile(`^\d+\.\d+\.\d+\.\d+$`)
	cvePattern     = regexp.MustCompile(`^CVE-\d{4}-\d{4,7}$`)
	releaseIDChars = regexp.MustCompile(`[^a-z0-9.-]`)
)

// formatOf returns the version rule of a component, or "" for an unknown component.
func formatOf(component string) (*regexp.Regexp, string) {
	switch {
	case component == Kubernetes:
		return minorPattern, "must be a Kubernetes minor version such as 1.34"
	case component == Nodes:
		return nodesPattern, "must be an EKS AMI release version such as 1.34.2-20251112"
	case component == Operator:
		return semverPattern, "must be a version MAJOR.MINOR.PATCH such as 0.26.0"
	case component == ClickHouse:
		return chPattern, "must be a ClickHouse version of four numbers such as 25.3.2.39"
	case slices.Contains(Addons, component):
		return addonPattern, "must be an EKS add-on version such as v1.19.2-eksbuild.1"
	}
	return nil, ""
}

// Compare orders two versions of the same component by their numbers, left to right
// (-1, 0, 1). Both must be well formed.
func Compare(a, b string) int {
	na, nb := numbers(a), numbers(b)
	for i := range max(len(na), len(nb)) {
		var x, y int
		if i < len(na) {
			x = na[i]
		}
		if i < len(nb) {
			y = nb[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

func numbers(v string) []int {
	var out []int
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r < '0' || r > '9' }) {
		n, _ := strconv.Atoi(f)
		out = append(out, n)
	}
	return out
}

// Minor is the number after "1." of a Kubernetes version or node release ("1.34..." -> 34).
func Minor(v string) int {
	n := numbers(v)
	if len(n) < 2 {
		return 0
	}
	return n[1]
}

// MinorString is the Kubernetes minor version with number m: "1.34".
func MinorString(m int) string { return fmt.Sprintf("1.%d", m) }

// Kinds and severities of a release.
const (
	Regular  = "regular"
	Security = "security"
)

var severities = []string{"low", "medium", "high", "critical"}

// Release is one published target version of one component.
type Release struct {
	ID        string `json:"id"` // "<component>-<version>", derived
	Component string `json:"component"`
	Version   string `json:"version"`
	Kind      string `json:"kind"` // regular (default) or security
	// Security releases: severity, the CVEs fixed, the deadline by which every deployment
	// must run it, and how long before starting off-cycle the customer is told.
	Severity string     `json:"severity,omitempty"`
	CVEs     []string   `json:"cves,omitempty"`
	Deadline *time.Time `json:"deadline,omitempty"`
	Notice   string     `json:"noticeLead,omitempty"` // Go duration; default 24h, 0 for critical
	// KubernetesVersions: for an add-on, the Kubernetes minors it runs on (EKS's add-on
	// compatibility list); required for add-ons, refused for other components.
	KubernetesVersions []string `json:"kubernetesVersions,omitempty"`
	// Bake is how long a wave must have been done before the next one starts (Go
	// duration, default 24h for a regular release and 1h for a security one).
	Bake        string    `json:"bake,omitempty"`
	Notes       string    `json:"notes,omitempty"`
	PublishedAt time.Time `json:"publishedAt"`
	PublishedBy string    `json:"publishedBy,omitempty"`
}

// Defaults of a release's timing.
const (
	DefaultNotice         = 24 * time.Hour
	DefaultBake           = 24 * time.Hour
	DefaultSecurityBake   = time.Hour
	MaxBake               = 7 * 24 * time.Hour
	MaxNotice             = 7 * 24 * time.Hour
	maxNotesLength        = 1000
	maxCVEs               = 50
	maxKubernetesVersions = 10
)

// NoticeLead is how long before an off-cycle security upgrade its notice goes out.
func (r Release) NoticeLead() time.Duration {
	if d, err := time.ParseDuration(r.Notice); err == nil && r.Notice != "" {
		return d
	}
	if r.Severity == "critical" {
		return 0
	}
	return DefaultNotice
}

// BakeTime is how long a done wave waits before the next one starts.
func (r Release) BakeTime() time.Duration {
	if d, err := time.ParseDuration(r.Bake); err == nil && r.Bake != "" {
		return d
	}
	if r.Kind == Security {
		return DefaultSecurityBake
	}
	return DefaultBake
}

// Catalogue is what has been published: the latest release of each component.
type Catalogue map[string]Release

// Target is the catalogue's version of a component ("" when none was published; the
// Kubernetes target is then the baseline).
func (c Catalogue) Target(component string) string {
	if r, ok := c[component]; ok {
		return r.Version
	}
	if component == Kubernetes {
		return BaselineKubernetes
	}
	return ""
}

// Validate normalizes a release about to be published (kind, id, defaults) and checks it
// against the catalogue and the time: every broken rule is reported at once as a
// *settings.ValidationError naming the field; the input is returned unchanged then.
func (c Catalogue) Validate(in Release, now time.Time) (Release, error) {
	r := in
	r.Component = strings.TrimSpace(in.Component)
	r.Version = strings.TrimSpace(in.Version)
	if r.Kind == "" {
		r.Kind = Regular
	}
	v := settings.Collector{Of: "release"}
	pattern, rule := formatOf(r.Component)
	switch {
	case pattern == nil:
		v.Add("component", in.Component, "must be one of "+strings.Join(Components(), ", "))
	case !pattern.MatchString(r.Version):
		v.Add("version", in.Version, rule)
	default:
		c.checkVersion(&v, r)
	}
	switch r.Kind {
	case Regular:
		if r.Severity != "" || len(r.CVEs) > 0 || r.Deadline != nil || r.Notice != "" {
			v.Add("kind", r.Kind, "a regular release has no severity, cves, deadline or noticeLead: publish it as kind security")
		}
	case Security:
		checkSecurity(&v, r, now)
	default:
		v.Add("kind", in.Kind, "must be regular or security")
	}
	if r.Bake != "" {
		if d, err := time.ParseDuration(r.Bake); err != nil || d < 0 || d > MaxBake {
			v.Add("bake", r.Bake, "must be a duration from 0s to 168h, such as 24h")
		}
	}
	if len(r.Notes) > maxNotesLength {
		v.Add("notes", r.Notes[:40]+"…", fmt.Sprintf("must be at most %d characters", maxNotesLength))
	}
	if err := v.Err(); err != nil {
		return in, err
	}
	r.ID = ID(r.Component, r.Version)
	r.PublishedAt = now.UTC()
	return r, nil
}

// ID names a release: "clickhouse-25.3.2.39".
func ID(component, version string) string {
	return releaseIDChars.ReplaceAllString(strings.ToLower(component+"-"+version), "-")
}

func (c Catalogue) checkVersion(v *settings.Collector, r Release) {
	if cur, ok := c[r.Component]; ok && Compare(r.Version, cur.Version) <= 0 {
		v.Add("version", r.Version, fmt.Sprintf("must be newer than the current %s target %s: byoc never downgrades", r.Component, cur.Version))
		return
	}
	k8s := c.Target(Kubernetes)
	switch {
	case r.Component == Kubernetes:
		if Minor(r.Version) != Minor(k8s)+1 {
			v.Add("version", r.Version, fmt.Sprintf("must be the next Kubernetes minor after %s (%s): EKS upgrades one minor at a time, so a deployment on %s cannot skip to %s",
				k8s, MinorString(Minor(k8s)+1), k8s, r.Version))
		}
	case r.Component == Nodes:
		if Minor(r.Version) != Minor(k8s) {
			v.Add("version", r.Version, fmt.Sprintf("must be a node release of the catalogue's Kubernetes %s: nodes run the control plane's minor", k8s))
		}
	case slices.Contains(Addons, r.Component):
		switch {
		case len(r.KubernetesVersions) == 0 || len(r.KubernetesVersions) > maxKubernetesVersions:
			v.Add("kubernetesVersions", strings.Join(r.KubernetesVersions, ","), fmt.Sprintf("must list 1 to %d Kubernetes minors the add-on version supports", maxKubernetesVersions))
		case !slices.Contains(r.KubernetesVersions, k8s):
			v.Add("kubernetesVersions", strings.Join(r.KubernetesVersions, ","),
				fmt.Sprintf("must include the catalogue's Kubernetes %s: %s %s is not compatible with it", k8s, r.Component, r.Version))
		}
		for i, m := range r.KubernetesVersions {
			if !minorPattern.MatchString(m) {
				v.Add(fmt.Sprintf("kubernetesVersions[%d]", i), m, "must be a Kubernetes minor version such as 1.34")
			}
		}
		return
	}
	if len(r.KubernetesVersions) > 0 {
		v.Add("kubernetesVersions", strings.Join(r.KubernetesVersions, ","), "only an add-on release lists Kubernetes versions")
	}
}

func checkSecurity(v *settings.Collector, r Release, now time.Time) {
	if !slices.Contains(severities, r.Severity) {
		v.Add("severity", r.Severity, "a security release must have severity low, medium, high or critical")
	}
	if len(r.CVEs) == 0 || len(r.CVEs) > maxCVEs {
		v.Add("cves", strings.Join(r.CVEs, ","), fmt.Sprintf("a security release must list 1 to %d CVE ids", maxCVEs))
	}
	for i, id := range r.CVEs {
		if !cvePattern.MatchString(id) {
			v.Add(fmt.Sprintf("cves[%d]", i), id, "must be a CVE id such as CVE-2025-12345")
		}
	}
	lead := DefaultNotice
	if r.Notice != "" {
		d, err := time.ParseDuration(r.Notice)
		if err != nil || d < 0 || d > MaxNotice {
			v.Add("noticeLead", r.Notice, "must be a duration from 0s to 168h, such as 24h")
		} else {
			lead = d
		}
	} else if r.Severity == "critical" {
		lead = 0
	}
	if r.Deadline == nil {
		v.Add("deadline", "", "a security release must have a deadline (RFC 3339)")
		return
	}
	// Each of the six waves gives its notice and upgrades; five bakes separate them.
	perWave := lead + Estimate(Step{Kind: r.stepKind()})
	earliest := now.Add(time.Duration(len(Waves))*perWave + time.Duration(len(Waves)-1)*r.BakeTime())
	if r.Deadline.Before(earliest) {
		v.Add("deadline", r.Deadline.UTC().Format(time.RFC3339), fmt.Sprintf("must leave time for six waves, each giving its notice (%s) and upgrading, with a bake of %s between them: no earlier than %s",
			lead, r.BakeTime(), earliest.UTC().Format(time.RFC3339)))
	}
}

func (r Release) stepKind() string {
	switch {
	case r.Component == Kubernetes:
		return StepControlPlane
	case r.Component == Nodes:
		return StepNodes
	case slices.Contains(Addons, r.Component):
		return StepAddons
	case r.Component == Operator:
		return StepOperator
	}
	return StepClickHouse
}
