package connectivity

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/byocloud/byoc/shared/settings"
)

var regions = []string{"us-east-1", "us-west-2"}

func request() PeeringRequest {
	return PeeringRequest{DeploymentID: "d1", PeerAccount: "222222222222", PeerVpcID: "vpc-0123456789abcdef0", PeerRegion: "us-west-2",
		PeerCIDRs: []string{"10.1.0.0/16"}, Name: "app"}
}

func fields(err error) map[string]string {
	var v *settings.ValidationError
	out := map[string]string{}
	if errors.As(err, &v) {
		for _, f := range v.Errors {
			out[f.Field] = f.Rule
		}
	}
	return out
}

func TestCheckPeering(t *testing.T) {
	existing := Network{Peerings: []Peering{
		{PeerVpcID: "vpc-11111111", PeerCIDRs: []string{"10.2.0.0/16"}, State: Active},
		{PeerVpcID: "vpc-22222222", PeerCIDRs: []string{"10.3.0.0/16"}, State: Failed},
	}}
	if got, err := CheckPeering(request(), "10.0.0.0/16", existing, regions); err != nil || got.PeerCIDRs[0] != "10.1.0.0/16" {
		t.Fatalf("a good request: %+v, %v", got, err)
	}
	cases := map[string]struct {
		change func(*PeeringRequest)
		field  string
		rule   string
	}{
		"account": {func(r *PeeringRequest) { r.PeerAccount = "12345" }, "peerAccount", "12-digit"},
		"vpc":     {func(r *PeeringRequest) { r.PeerVpcID = "vpc-XYZ" }, "peerVpcId", "vpc-"},
		"region":  {func(r *PeeringRequest) { r.PeerRegion = "mars-1" }, "peerRegion", "supports"},
		"name":    {func(r *PeeringRequest) { r.Name = "" }, "name", "letters"},
		"role elsewhere": {func(r *PeeringRequest) {
			r.AccepterRoleArn = "arn:aws:iam::333333333333:role/byoc-peer-accepter-vpc-0123456789abcdef0"
		}, "accepterRoleArn", "peer account"},
		"role not ours":  {func(r *PeeringRequest) { r.AccepterRoleArn = "arn:aws:iam::222222222222:role/Admin" }, "accepterRoleArn", "byoc-peer-accepter-"},
		"no cidrs":       {func(r *PeeringRequest) { r.PeerCIDRs = nil }, "peerCidrs", "1 to 5"},
		"host bits":      {func(r *PeeringRequest) { r.PeerCIDRs = []string{"10.1.0.1/16"} }, "peerCidrs[0]", "host bits"},
		"own vpc":        {func(r *PeeringRequest) { r.PeerCIDRs = []string{"10.0.128.0/17"} }, "peerCidrs[0]", "deployment's VPC"},
		"other peering":  {func(r *PeeringRequest) { r.PeerCIDRs = []string{"10.2.5.0/24"} }, "peerCidrs[0]", "vpc-11111111"},
		"within request": {func(r *PeeringRequest) { r.PeerCIDRs = []string{"10.1.0.0/16", "10.1.1.0/24"} }, "peerCidrs[1]", "this request"},
		"ipv6":           {func(r *PeeringRequest) { r.PeerCIDRs = []string{"fd00::/8"} }, "peerCidrs[0]", "IPv4"},
	}
	for name, c := range cases {
		r := request()
		c.change(&r)
		_, err := CheckPeering(r, "10.0.0.0/16", existing, regions)
		if rule, ok := fields(err)[c.field]; !ok || !strings.Contains(rule, c.rule) {
			t.Errorf("%s: %v, want %s refused (%s)", name, err, c.field, c.rule)
		}
	}
	// A failed peering's CIDRs are free again.
	r := request()
	r.PeerCIDRs = []string{"10.3.0.0/16"}
	if _, err := CheckPeering(r, "10.0.0.0/16", existing, regions); err != nil {
		t.Errorf("reusing a failed peering's CIDR: %v", err)
	}
}

func TestPeeringLimits(t *testing.T) {
	var n Network
	for i := range MaxActivePeerings {
		n.Peerings = append(n.Peerings, Peering{PeerVpcID: fmt.Sprintf("vpc-%08x", i), PeerCIDRs: []string{fmt.Sprintf("10.%d.0.0/16", 100+i)}, State: Active})
	}
	if _, err := CheckPeering(request(), "10.0.0.0/16", n, regions); !strings.Contains(fields(err)["deploymentId"], "50 active") {
		t.Errorf("the 51st peering: %v", err)
	}
	n = Network{}
	for i := range MaxPendingPeerings {
		n.Peerings = append(n.Peerings, Peering{PeerVpcID: fmt.Sprintf("vpc-%08x", i), PeerCIDRs: []string{fmt.Sprintf("10.%d.0.0/16", 100+i)}, State: PendingAcceptance})
	}
	if _, err := CheckPeering(request(), "10.0.0.0/16", n, regions); !strings.Contains(fields(err)["deploymentId"], "25 pending") {
		t.Errorf("the 26th pending peering: %v", err)
	}
}

func TestPublicLoadBalancerRules(t *testing.T) {
	var n Network
	if err := CheckRemovePublic(n, true); err == nil {
		t.Error("removing the public load balancer with no private path was allowed")
	}
	n.Peerings = []Peering{{PeerVpcID: "vpc-11111111", State: Active}}
	if err := CheckRemovePublic(n, false); err == nil || !strings.Contains(err.Error(), "verified") {
		t.Errorf("unverified removal: %v", err)
	}
	if err := CheckRemovePublic(n, true); err != nil {
		t.Errorf("verified removal with an active peering: %v", err)
	}
	n.PublicRemoved = true
	if err := CheckDeletePath(n, true, false); err == nil {
		t.Error("deleting the last private path while the public load balancer is removed was allowed")
	}
	if err := CheckDeletePath(n, true, true); err != nil {
		t.Errorf("forced: %v", err)
	}
	n.PrivateLink = &PrivateLink{State: Active, Endpoints: []Endpoint{{ID: "vpce-1234567890abcdef0", State: "available"}}}
	if err := CheckDeletePath(n, true, false); err != nil {
		t.Errorf("with PrivateLink still connected, the peering is not the last path: %v", err)
	}
}

func TestEndpoints(t *testing.T) {
	host := "h5ju65kv87.mhp0y4dmph.us-west-2.aws.byoc.clickhouse.cloud"
	if got := PrivateHostname(host); got != "h5ju65kv87-private.mhp0y4dmph.us-west-2.aws.byoc.clickhouse.cloud" {
		t.Errorf("PrivateHostname = %s", got)
	}
	n := Network{}
	if e := n.EndpointsOf(host); e.Public != host || e.Private != "" {
		t.Errorf("no peering: %+v", e)
	}
	n.Peerings = []Peering{{State: Active}}
	n.PublicRemoved = true
	if e := n.EndpointsOf(host); e.Public != "" || e.Private == "" {
		t.Errorf("peered, public removed: %+v", e)
	}
}

func TestAccessList(t *testing.T) {
	got, err := ApplyAccessList([]string{"203.0.113.0/24"}, AccessListChange{Add: []string{"198.51.100.7/32", "203.0.113.0/24"}})
	if err != nil || strings.Join(got, ",") != "198.51.100.7/32,203.0.113.0/24" {
		t.Fatalf("add: %v, %v", got, err)
	}
	if got, err = ApplyAccessList(got, AccessListChange{Remove: []string{"203.0.113.0/24"}}); err != nil || len(got) != 1 {
		t.Fatalf("remove: %v, %v", got, err)
	}
	for name, c := range map[string]struct {
		ch    AccessListChange
		field string
	}{
		"invalid":  {AccessListChange{Add: []string{"300.1.1.1/32"}}, "add[0]"},
		"hostbits": {AccessListChange{Add: []string{"10.0.0.1/8"}}, "add[0]"},
		"anywhere": {AccessListChange{Add: []string{"0.0.0.0/0"}}, "add[0]"},
		"absent":   {AccessListChange{Remove: []string{"192.0.2.0/24"}}, "remove[0]"},
		"empty":    {AccessListChange{}, "add"},
	} {
		if _, err := ApplyAccessList(got, c.ch); fields(err)[c.field] == "" {
			t.Errorf("%s: %v, want %s refused", name, err, c.field)
		}
	}
	if all, err := ApplyAccessList(nil, AccessListChange{Add: []string{"0.0.0.0/0"}, AllowAnywhere: true}); err != nil || all[0] != "0.0.0.0/0" {
		t.Errorf("acknowledged anywhere: %v, %v", all, err)
	}
	var many []string
	for i := range MaxAccessList + 1 {
		many = append(many, fmt.Sprintf("10.%d.%d.0/24", i/250, i%250))
	}
	if _, err := ApplyAccessList(nil, AccessListChange{Add: many}); !strings.Contains(fields(err)["add"], "at most 100") {
		t.Errorf("101 entries: %v", err)
	}
}

func TestCheckLoadBalancer(t *testing.T) {
	good := LoadBalancer{DNSName: "k8s-istioing-private-0123456789.elb.us-west-2.amazonaws.com", SecurityGroupID: "sg-0123456789abcdef0",
		Arn: "arn:aws:elasticloadbalancing:us-west-2:111111111111:loadbalancer/net/k8s-istioing-private/0123456789abcdef"}
	if err := CheckLoadBalancer(good, "111111111111", "us-west-2"); err != nil {
		t.Fatal(err)
	}
	bad := good
	bad.Arn = "arn:aws:elasticloadbalancing:us-west-2:999999999999:loadbalancer/net/x/1"
	bad.SecurityGroupID = "sg-zz"
	f := fields(CheckLoadBalancer(bad, "111111111111", "us-west-2"))
	if f["arn"] == "" || f["securityGroupId"] == "" {
		t.Errorf("another account's load balancer and a malformed group: %v", f)
	}
}

func TestTotalPeerCIDRsAndPruning(t *testing.T) {
	var n Network
	for i := range 6 {
		n.Peerings = append(n.Peerings, Peering{PeerVpcID: fmt.Sprintf("vpc-%08x", i), State: Active,
			PeerCIDRs: []string{fmt.Sprintf("10.%d.0.0/24", 100+i), fmt.Sprintf("10.%d.1.0/24", 100+i), fmt.Sprintf("10.%d.2.0/24", 100+i),
				fmt.Sprintf("10.%d.3.0/24", 100+i), fmt.Sprintf("10.%d.4.0/24", 100+i)}})
	}
	if _, err := CheckPeering(request(), "10.0.0.0/16", n, regions); !strings.Contains(fields(err)["peerCidrs"], "at most 30") {
		t.Errorf("the 31st peer CIDR: %v", err)
	}
	var ps []Peering
	for i := range KeepEnded + 5 {
		ps = append(ps, Peering{PeerVpcID: fmt.Sprintf("vpc-%08x", i), State: Deleted})
	}
	ps = append(ps, Peering{PeerVpcID: "vpc-live0000", State: Active})
	kept := PruneEnded(ps)
	if len(kept) != KeepEnded+1 || kept[0].PeerVpcID != "vpc-00000005" || kept[len(kept)-1].State != Active {
		t.Errorf("pruned to %d, first %s: want the %d newest ended and every live one", len(kept), kept[0].PeerVpcID, KeepEnded)
	}
}

func TestEmptyingTheAccessListNeedsConfirmation(t *testing.T) {
	if _, err := ApplyAccessList([]string{"203.0.113.0/24"}, AccessListChange{Remove: []string{"203.0.113.0/24"}}); fields(err)["remove"] == "" {
		t.Errorf("removing the last CIDR without allowAnywhere: %v", err)
	}
	if got, err := ApplyAccessList([]string{"203.0.113.0/24"}, AccessListChange{Remove: []string{"203.0.113.0/24"}, AllowAnywhere: true}); err != nil || len(got) != 0 {
		t.Errorf("confirmed: %v, %v", got, err)
	}
}
