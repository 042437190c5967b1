package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/byocloud/byoc/infra/local/localcloud"
	"github.com/byocloud/byoc/infra/local/scenario"
	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/connectivity"
	"github.com/byocloud/byoc/shared/lifecycle"
)

func runConnectivity(t *testing.T, name string) (scenario.Result, *recording) {
	t.Helper()
	rec := shared.record(t)
	// Onboarding, the data plane, the customer's stacks and the workflows (and, by hand, up
	// to four clock jumps): more than the minute run gives a scenario on a loaded machine.
	res, err := shared.runner.Run(context.Background(), scenario.Options{Scenario: name, Timeout: 3 * time.Minute})
	if err != nil {
		t.Fatalf("%v\nresult: %+v", err, res)
	}
	return res, rec
}

func workflowEnds(prefix string) step {
	return step{prefix + " SUCCEEDED", func(e localcloud.Event) bool {
		return e.Kind == localcloud.KindExecution && strings.Contains(e.Detail, prefix) && e.Status == "SUCCEEDED"
	}}
}

// The customer's whole path with an accepter role: the peer-side stack, the request, the
// private load balancer, the peering stack created (CloudFormation accepts), routes both
// ways and the -private endpoints; the public load balancer removed, deleting the only path
// refused, the public load balancer restored, the peering deleted; then PrivateLink with the
// customer's endpoint accepted.
func TestPeeringWithAnAccepterRole(t *testing.T) {
	res, rec := runConnectivity(t, scenario.Peering)
	d, c := res.Deployment, res.Connectivity
	peeringStack := "-peering-" + strings.TrimPrefix(c.AppVpcID, "vpc-")
	order(t, rec,
		customerStack(c.PeerAccount, "clickhouse-byoc-peer-access-"+c.AppVpcID, "CREATE_COMPLETE"),
		step{"the peering stack created", func(e localcloud.Event) bool {
			return e.Kind == localcloud.KindStack && e.Account == res.Customer && strings.HasSuffix(e.Subject, peeringStack) && e.Status == "CREATE_COMPLETE"
		}},
		workflowEnds("peering-"+d.ID+"-"+strings.TrimPrefix(c.AppVpcID, "vpc-")),
		step{"the peering stack deleted", func(e localcloud.Event) bool {
			return e.Kind == localcloud.KindStack && e.Account == res.Customer && strings.HasSuffix(e.Subject, peeringStack) && e.Status == "DELETE_COMPLETE"
		}},
		workflowEnds("peering-"+d.ID+"-privatelink"),
	)
	if d.Status != lifecycle.Ready || d.Network == nil || d.Network.PrivateLB == nil || d.Network.PublicRemoved {
		t.Fatalf("deployment %s, network %+v: want ready, the private load balancer recorded, the public one restored", d.Status, d.Network)
	}
	p := c.Peerings[c.AppVpcID]
	if p.State != connectivity.Deleted || p.ConnectionID == "" {
		t.Errorf("peering %+v, want deleted with its connection recorded", p)
	}
	if c.ActiveRoutes != 3 || c.PeerRoutes != 1 {
		t.Errorf("%d active routes in the BYOC VPC's 3 private route tables, %d back: want 3 and 1", c.ActiveRoutes, c.PeerRoutes)
	}
	if len(c.PrivateEndpoints) != len(scenario.DataPlaneServices) || !strings.Contains(c.PrivateEndpoints[0], "-private.") {
		t.Errorf("private endpoints %v", c.PrivateEndpoints)
	}
	if !strings.Contains(c.PublicRemovedRefusal, "last private path") {
		t.Errorf("deleting the only path: %q", c.PublicRemovedRefusal)
	}
	if pl := d.Network.PrivateLink; pl == nil || pl.State != connectivity.Active || len(c.EndpointDNS) == 0 {
		t.Errorf("PrivateLink %+v, endpoint DNS %v", pl, c.EndpointDNS)
	}
	// The agent ran the private load balancer once for the deployment, and the public one
	// was removed and restored: one command each.
	want := []channel.Kind{channel.PrivateLoadBalancer, channel.PublicLoadBalancer, channel.PublicLoadBalancer}
	if len(c.Commands) != len(want) {
		t.Errorf("connectivity commands applied %v, want %v", c.Commands, want)
	}
}

// Without an accepter role: the connection waits for the customer, who accepts it by hand
// after the workflow's first look; a second request is rejected and a third expires.
func TestPeeringAcceptedByHand(t *testing.T) {
	res, rec := runConnectivity(t, scenario.PeeringManual)
	c := res.Connectivity
	order(t, rec,
		step{"the workflow waits an hour (the clock jumps past it)", func(e localcloud.Event) bool { return e.Kind == localcloud.KindClock }},
		step{"the peering stack (routes and ingress) created", func(e localcloud.Event) bool {
			return e.Kind == localcloud.KindStack && e.Account == res.Customer && strings.Contains(e.Subject, "-peering-") && e.Status == "CREATE_COMPLETE"
		}},
	)
	states := map[connectivity.State]int{}
	for _, p := range c.Peerings {
		states[p.State]++
		if p.State == connectivity.Failed && !strings.Contains(p.Reason, "rejected") && !strings.Contains(p.Reason, "expired") {
			t.Errorf("peering %s failed for %q, want rejected or expired", p.PeerVpcID, p.Reason)
		}
	}
	if states[connectivity.Deleted] != 1 || states[connectivity.Failed] != 2 || len(c.Peerings) != 3 {
		t.Errorf("peerings %+v: want the accepted one deleted, one rejected, one expired", c.Peerings)
	}
	if c.ActiveRoutes != 3 || c.PeerRoutes != 1 {
		t.Errorf("%d routes, %d back", c.ActiveRoutes, c.PeerRoutes)
	}
}
