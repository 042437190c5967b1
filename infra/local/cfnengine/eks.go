package cfnengine

import (
	"fmt"
	"maps"
	"reflect"
	"strconv"
	"strings"
)

// EKS's rules on version changes, which CloudFormation meets as resource failures:
//   - a managed node group's version (Version, ReleaseVersion) changes through EKS's
//     UpdateNodegroupVersion, which changes nothing else: a template changing it together
//     with another property of the group, or in the same update as the cluster's version,
//     fails the node group;
//   - a node group may not run a newer Kubernetes minor than its cluster;
//   - a cluster moves one minor at a time, and never back.
type eksVersions struct {
	clusterChanged bool
	cluster        string // the cluster's Version after this update so far
}

var nodegroupVersionProps = []string{"Version", "ReleaseVersion"}

// check returns why updating old to r breaks one of EKS's rules, or "".
func (v *eksVersions) check(old, r *liveResource) string {
	switch r.typ {
	case "AWS::EKS::Cluster":
		from, to := fmt.Sprint(old.props["Version"]), fmt.Sprint(r.props["Version"])
		v.cluster = to
		if from == to {
			return ""
		}
		v.clusterChanged = true
		if minorOf(to) != minorOf(from)+1 {
			return fmt.Sprintf("Unsupported Kubernetes minor version update from %s to %s (Service: Eks, Status Code: 400, InvalidParameterException): a cluster moves one minor version at a time", from, to)
		}
	case "AWS::EKS::Nodegroup":
		changed := func(keys []string) bool {
			for _, k := range keys {
				if !reflect.DeepEqual(old.props[k], r.props[k]) {
					return true
				}
			}
			return false
		}
		if !changed(nodegroupVersionProps) {
			return ""
		}
		others := map[string]bool{}
		for k := range maps.Keys(old.props) {
			others[k] = true
		}
		for k := range maps.Keys(r.props) {
			others[k] = true
		}
		for _, k := range nodegroupVersionProps {
			delete(others, k)
		}
		var rest []string
		for k := range others {
			rest = append(rest, k)
		}
		if changed(rest) || v.clusterChanged {
			return "Nodegroup version and release version can only be updated on their own, not together with other nodegroup or cluster changes (Service: Eks, Status Code: 400, InvalidParameterException)"
		}
		if to := fmt.Sprint(r.props["Version"]); v.cluster != "" && minorOf(to) > minorOf(v.cluster) {
			return fmt.Sprintf("Nodegroup Kubernetes version %s cannot be newer than the cluster's %s (Service: Eks, Status Code: 400, InvalidParameterException)", to, v.cluster)
		}
	}
	return ""
}

// minorOf is the minor of "1.34" (34), or -1.
func minorOf(v string) int {
	_, minor, ok := strings.Cut(v, ".")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(minor)
	if err != nil {
		return -1
	}
	return n
}
