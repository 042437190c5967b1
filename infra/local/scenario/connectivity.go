package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/connectivity"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/customerstack"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/store"
)

// The connectivity scenarios: onboard, the data plane healthy, then a second customer account
// with an application VPC peers with the deployment.
const (
	// Peering: the customer applies the peer-side template (an accepter role), asks for the
	// peering, which CloudFormation accepts; routes and ingress come up, the -private
	// endpoints are shown; the public load balancer is removed; deleting the only private
	// path is refused; the public load balancer is restored; the peering is deleted. Then
	// PrivateLink: the endpoint service, the customer's endpoint registered and accepted.
	Peering = "peering"
	// PeeringManual: no accepter role: the workflow creates the connection and waits; the
	// customer accepts it by hand through the EC2 API; it becomes active. A second request
	// is rejected by the customer and a third never answered: failed, rejected and expired.
	PeeringManual = "peering-manual"
)

// ConnectivityScenarios are the scenarios of a deployment's private connectivity.
var ConnectivityScenarios = []string{Peering, PeeringManual}

// ConnectivityResult is what a connectivity scenario saw.
type ConnectivityResult struct {
	PeerAccount string
	AppVpcID    string
	// Peerings are the deployment's peerings at the end, by peer VPC.
	Peerings map[string]connectivity.Peering
	// ActiveRoutes are the routes the BYOC VPC's private route tables had to the app VPC
	// while the peering was active, and the route the peer-side stack added back.
	ActiveRoutes, PeerRoutes int
	// PrivateEndpoints are the services' -private endpoints while the peering was active.
	PrivateEndpoints []string
	// PublicRemovedRefusal is why deleting the only private path was refused.
	PublicRemovedRefusal string
	// EndpointDNS are the PrivateLink endpoint's DNS names.
	EndpointDNS []string
	// Commands are the connectivity commands the agent applied.
	Commands []channel.Kind
}

// conn runs one connectivity scenario.
type conn struct {
	*maint
	peer string
	res  *ConnectivityResult
}

func (r *Runner) connectivity(ctx context.Context, o Options, res Result) (Result, error) {
	m := &maint{r: r, o: o, id: res.Deployment.ID, res: &MaintenanceResult{},
		st:   store.New(cloud.NewDynamoDB(r.Cloud.WatchConfig()), r.ControlPlane.Outputs[outTable]),
		repo: servicestate.New(cloud.NewDynamoDB(r.Cloud.WatchConfig()), r.ControlPlane.Outputs[outTable])}
	c := &conn{maint: m, peer: peerAccountOf(o.Customer), res: &ConnectivityResult{Peerings: map[string]connectivity.Peering{}}}
	c.res.PeerAccount = c.peer
	res.Connectivity = c.res
	err := c.run(ctx, res.Deployment)
	if m.sim != nil {
		for _, cmd := range m.sim.Ledger(m.id).Applied {
			if slices.Contains([]channel.Kind{channel.PrivateLoadBalancer, channel.PublicLoadBalancer, channel.AccessList}, cmd.Kind) {
				c.res.Commands = append(c.res.Commands, cmd.Kind)
			}
		}
	}
	if m.stop != nil {
		m.stop()
	}
	if d, gerr := m.st.Get(context.WithoutCancel(ctx), m.id); gerr == nil {
		res.Deployment = d
		if d.Network != nil {
			for _, p := range d.Network.Peerings {
				c.res.Peerings[p.PeerVpcID] = p
			}
		}
	}
	if err != nil {
		var f *Failure
		if !errors.As(err, &f) {
			err = &Failure{Scenario: o.Scenario, Reason: err.Error()}
		}
	}
	return res, err
}

// peerAccountOf is the customer's second account, where its application VPC is.
func peerAccountOf(customer string) string {
	for {
		if a := RandomAccount(); a != customer {
			return a
		}
	}
}

func (c *conn) run(ctx context.Context, d store.Deployment) error {
	// Not a maintenance scenario: its clock jumps must not reach the deployment's window
	// (where they land depends on the run's timing, and every run must end the same).
	if err := c.r.disarm(ctx, c.id); err != nil {
		return err
	}
	if err := c.startDataPlane(ctx, d, baseClickHouse); err != nil {
		return err
	}
	app, err := c.appNetwork(ctx, "app-network", "10.1.0.0/16")
	if err != nil {
		return err
	}
	c.res.AppVpcID = app["Vpc"]
	if c.o.Scenario == PeeringManual {
		return c.manual(ctx, d, app)
	}
	return c.withRole(ctx, d, app)
}

// appNetwork is the customer's application VPC in the peer account: a stack of its own.
func (c *conn) appNetwork(ctx context.Context, name, cidr string) (map[string]string, error) {
	body, _ := json.Marshal(map[string]any{
		"Resources": map[string]any{
			"Vpc":   map[string]any{"Type": "AWS::EC2::VPC", "Properties": map[string]any{"CidrBlock": cidr}},
			"Table": map[string]any{"Type": "AWS::EC2::RouteTable", "Properties": map[string]any{"VpcId": map[string]any{"Ref": "Vpc"}}},
		},
		"Outputs": map[string]any{"Vpc": map[string]any{"Value": map[string]any{"Ref": "Vpc"}}, "Table": map[string]any{"Value": map[string]any{"Ref": "Table"}}},
	})
	return c.peerStack(ctx, name, &cloudformation.CreateStackInput{TemplateBody: aws.String(string(body))})
}

// peerStack creates (or updates, when it exists) a stack in the peer account as its root
// user and waits for it.
func (c *conn) peerStack(ctx context.Context, name string, in *cloudformation.CreateStackInput) (map[string]string, error) {
	cfn := cloudformation.NewFromConfig(c.r.Cloud.ConfigAs(c.peer))
	in.StackName, in.Capabilities = aws.String(name), []cfntypes.Capability{cfntypes.CapabilityCapabilityNamedIam}
	in.ClientRequestToken = aws.String("byoc-local-" + name + "-" + c.id)
	stacks := &customerstack.Manager{CFN: cfn}
	existing, err := stacks.Describe(ctx, name)
	if err != nil {
		return nil, err
	}
	if existing == nil {
		if _, err := cfn.CreateStack(ctx, in); err != nil {
			return nil, fmt.Errorf("the customer's CreateStack of %s: %w", name, err)
		}
	} else if _, err := cfn.UpdateStack(ctx, &cloudformation.UpdateStackInput{StackName: in.StackName, UsePreviousTemplate: aws.Bool(true),
		Parameters: in.Parameters, Capabilities: in.Capabilities}); err != nil {
		return nil, fmt.Errorf("the customer's UpdateStack of %s: %w", name, err)
	}
	wait, cancel := context.WithTimeout(ctx, c.o.PhaseTimeout)
	defer cancel()
	for {
		s, err := stacks.Describe(wait, name)
		if err == nil && s != nil && slices.Contains(customerstack.Settled, s.StackStatus) {
			c.progress("customer's stack %s in account %s: %s", name, c.peer, s.StackStatus)
			return customerstack.Outputs(s), nil
		}
		if err == nil && s != nil && strings.HasSuffix(string(s.StackStatus), "_COMPLETE") && !slices.Contains(customerstack.Settled, s.StackStatus) {
			return nil, c.fail("the customer's stack %s ended %s", name, s.StackStatus)
		}
		select {
		case <-wait.Done():
			return nil, c.fail("waited %s for the customer's stack %s", c.o.PhaseTimeout, name)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// act invokes the peering function as the operator does for the customer.
func (c *conn) act(ctx context.Context, action map[string]any) ([]byte, error) {
	action["deploymentId"], action["actor"] = c.id, "customer"
	body, _ := json.Marshal(action)
	return c.invoke(ctx, contract.FunctionPeering, body)
}

// peering waits until the peering with vpc satisfies ok.
func (c *conn) peering(ctx context.Context, vpc, what string, ok func(connectivity.Peering) bool) (connectivity.Peering, error) {
	return c.peeringWithin(ctx, c.o.PhaseTimeout, vpc, what, ok)
}

// jumpUntil moves the cloud's clock an hour at a time until the peering with vpc satisfies
// ok: the workflow looks again only when its hourly wait ends, and under faults (a step
// retried with backoff) that wait may begin only after a jump, which then cannot end it.
func (c *conn) jumpUntil(ctx context.Context, vpc, what string, ok func(connectivity.Peering) bool) (connectivity.Peering, error) {
	deadline := time.Now().Add(c.o.PhaseTimeout)
	for jumps := 0; ; jumps++ {
		if p, err := c.peeringWithin(ctx, 3*time.Second, vpc, what, ok); err == nil || jumps == maxJumps || time.Now().After(deadline) {
			return p, err
		}
		if err := c.jump(ctx, time.Hour+time.Minute); err != nil {
			return connectivity.Peering{}, err
		}
	}
}

// maxJumps bounds the hours jumpUntil moves the clock.
const maxJumps = 24

func (c *conn) peeringWithin(ctx context.Context, within time.Duration, vpc, what string, ok func(connectivity.Peering) bool) (connectivity.Peering, error) {
	wait, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var last connectivity.Peering
	for {
		d, err := c.st.Get(wait, c.id)
		if err == nil && d.Network != nil {
			if i := d.Network.Find(vpc); i >= 0 {
				last = d.Network.Peerings[i]
				if ok(last) {
					c.progress("peering with %s: %s %s", vpc, last.State, last.Reason)
					return last, nil
				}
			}
		}
		select {
		case <-wait.Done():
			return last, c.fail("waited %s for the peering with %s to be %s; it is %s %s", within, vpc, what, last.State, last.Reason)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// applied waits until the agent applied a command of kind with enabled set as given.
func (c *conn) applied(ctx context.Context, kind channel.Kind, enabled string) error {
	wait, cancel := context.WithTimeout(ctx, c.o.PhaseTimeout)
	defer cancel()
	for {
		if slices.ContainsFunc(c.sim.Ledger(c.id).Applied, func(cmd channel.Command) bool {
			return cmd.Kind == kind && cmd.Params["enabled"] == enabled
		}) {
			c.progress("the agent applied %s enabled=%s", kind, enabled)
			return nil
		}
		select {
		case <-wait.Done():
			return c.fail("waited %s for the agent to apply %s enabled=%s", c.o.PhaseTimeout, kind, enabled)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func state(s connectivity.State) func(connectivity.Peering) bool {
	return func(p connectivity.Peering) bool { return p.State == s }
}

func (c *conn) request(ctx context.Context, vpc, cidr, role string) error {
	a := map[string]any{"action": "request", "peerAccount": c.peer, "peerVpcId": vpc, "peerRegion": c.r.Cloud.Region, "peerCidrs": []string{cidr}, "name": "analytics"}
	if role != "" {
		a["accepterRoleArn"] = role
	}
	_, err := c.act(ctx, a)
	c.progress("customer asked to peer with %s (%s)", vpc, map[bool]string{true: "accepter role", false: "accepts by hand"}[role != ""])
	return err
}

// checkActive checks what an active peering gives: a route to the app VPC in every private
// route table, the route back through the peer-side stack, and the -private endpoints.
func (c *conn) checkActive(ctx context.Context, d store.Deployment, p connectivity.Peering, app map[string]string) error {
	ec2 := cloud.NewEC2(c.r.Cloud.WatchConfigAs(c.o.Customer))
	for _, table := range strings.Split(d.Outputs[contract.InfraOutputPrivateRouteTableIDs], ",") {
		routes, err := ec2.RouteTableRoutes(ctx, table)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if r.PeeringID == p.ConnectionID && r.State == "active" && r.Destination == p.PeerCIDRs[0] {
				c.res.ActiveRoutes++
			}
		}
	}
	// The customer adds the route back with the peer-side stack (created now when they
	// accepted by hand, updated when it already holds the accepter role).
	if _, err := c.peerStack(ctx, peerAccessStack(app["Vpc"]), &cloudformation.CreateStackInput{
		TemplateURL: aws.String(c.r.ControlPlane.Outputs[contract.OutputPeerAccessTemplateURL]), Parameters: peerParams(c.o.Customer, app["Vpc"],
			map[string]string{contract.PeerAccessParamConnectionID: p.ConnectionID, contract.PeerAccessParamByocCidr: d.Settings.VPCCIDR,
				contract.PeerAccessParamRouteTables[0]: app["Table"]})}); err != nil {
		return err
	}
	routes, err := cloud.NewEC2(c.r.Cloud.WatchConfigAs(c.peer)).RouteTableRoutes(ctx, app["Table"])
	if err != nil {
		return err
	}
	for _, r := range routes {
		if r.PeeringID == p.ConnectionID && r.State == "active" && r.Destination == d.Settings.VPCCIDR {
			c.res.PeerRoutes++
		}
	}
	view, err := c.show(ctx)
	if err != nil {
		return err
	}
	for _, s := range view.Services {
		if s.Private != "" {
			c.res.PrivateEndpoints = append(c.res.PrivateEndpoints, s.Private)
		}
	}
	c.progress("peering %s active: %d routes to %s, %d back, private endpoints %s", p.ConnectionID, c.res.ActiveRoutes, p.PeerCIDRs[0],
		c.res.PeerRoutes, strings.Join(c.res.PrivateEndpoints, ", "))
	return nil
}

// peerAccessStack is the customer's peer-side stack for one VPC.
func peerAccessStack(vpc string) string { return contract.PeerAccessStackName + "-" + vpc }

func peerParams(byocAccount, vpc string, extra map[string]string) []cfntypes.Parameter {
	ps := []cfntypes.Parameter{
		{ParameterKey: aws.String(contract.PeerAccessParamByocAccountID), ParameterValue: aws.String(byocAccount)},
		{ParameterKey: aws.String(contract.PeerAccessParamPeerVpcID), ParameterValue: aws.String(vpc)},
	}
	for k, v := range extra {
		ps = append(ps, cfntypes.Parameter{ParameterKey: aws.String(k), ParameterValue: aws.String(v)})
	}
	return ps
}

// view is the part of the peering function's show the scenarios read.
type view struct {
	Network  connectivity.Network `json:"network"`
	Services []serviceView        `json:"services"`
}

type serviceView struct {
	ServiceID string `json:"serviceId"`
	Public    string `json:"public"`
	Private   string `json:"private"`
}

func (c *conn) show(ctx context.Context) (view, error) {
	out, err := c.act(ctx, map[string]any{"action": "show"})
	if err != nil {
		return view{}, err
	}
	var v view
	err = json.Unmarshal(out, &v)
	return v, err
}

func (c *conn) withRole(ctx context.Context, d store.Deployment, app map[string]string) error {
	access, err := c.peerStack(ctx, peerAccessStack(app["Vpc"]), &cloudformation.CreateStackInput{
		TemplateURL: aws.String(c.r.ControlPlane.Outputs[contract.OutputPeerAccessTemplateURL]), Parameters: peerParams(c.o.Customer, app["Vpc"], nil)})
	if err != nil {
		return err
	}
	vpc := app["Vpc"]
	if err := c.request(ctx, vpc, "10.1.0.0/16", access[contract.PeerAccessOutputRoleArn]); err != nil {
		return err
	}
	p, err := c.peering(ctx, vpc, "active", state(connectivity.Active))
	if err != nil {
		return err
	}
	if err := c.checkActive(ctx, d, p, app); err != nil {
		return err
	}
	if _, err := c.act(ctx, map[string]any{"action": "public-lb", "enabled": false, "verified": true}); err != nil {
		return err
	}
	if err := c.applied(ctx, channel.PublicLoadBalancer, "false"); err != nil {
		return err
	}
	v, err := c.show(ctx)
	if err != nil {
		return err
	}
	if !v.Network.PublicRemoved || slices.ContainsFunc(v.Services, func(s serviceView) bool { return s.Public != "" }) {
		return c.fail("after removing the public load balancer the services still show public endpoints: %+v", v.Services)
	}
	c.progress("public load balancer removed: services reachable only on their private endpoints")
	_, err = c.act(ctx, map[string]any{"action": "delete", "target": vpc})
	if err == nil || !strings.Contains(err.Error(), "last private path") {
		return c.fail("deleting the only private path while the public load balancer is removed: %v, want a refusal", err)
	}
	c.res.PublicRemovedRefusal = err.Error()
	c.progress("deleting the peering refused: %s", err)
	if _, err := c.act(ctx, map[string]any{"action": "public-lb", "enabled": true}); err != nil {
		return err
	}
	if err := c.applied(ctx, channel.PublicLoadBalancer, "true"); err != nil {
		return err
	}
	c.progress("public load balancer restored")
	if _, err := c.act(ctx, map[string]any{"action": "delete", "target": vpc}); err != nil {
		return err
	}
	if _, err := c.peering(ctx, vpc, "deleted", state(connectivity.Deleted)); err != nil {
		return err
	}
	return c.privateLink(ctx, app)
}

// privateLink: the endpoint service, an endpoint from the app VPC registered and accepted.
func (c *conn) privateLink(ctx context.Context, app map[string]string) error {
	if _, err := c.act(ctx, map[string]any{"action": "privatelink", "allowedAccounts": []string{c.peer}}); err != nil {
		return err
	}
	var pl *connectivity.PrivateLink
	wait, cancel := context.WithTimeout(ctx, c.o.PhaseTimeout)
	defer cancel()
	for pl == nil || pl.State != connectivity.Active {
		if pl != nil && pl.State == connectivity.Failed {
			return c.fail("PrivateLink failed: %s", pl.Reason)
		}
		select {
		case <-wait.Done():
			return c.fail("waited %s for PrivateLink to be active (%+v)", c.o.PhaseTimeout, pl)
		case <-time.After(50 * time.Millisecond):
		}
		if d, err := c.st.Get(wait, c.id); err == nil && d.Network != nil {
			pl = d.Network.PrivateLink
		}
	}
	c.progress("PrivateLink service %s active", pl.ServiceName)
	ep, err := cloud.NewEC2(c.r.Cloud.ConfigAs(c.peer)).CreateInterfaceEndpoint(ctx, app["Vpc"], pl.ServiceName)
	if err != nil {
		return err
	}
	c.progress("customer created endpoint %s (%s)", ep.ID, ep.State)
	if _, err := c.act(ctx, map[string]any{"action": "register-endpoint", "endpointId": ep.ID}); err != nil {
		return err
	}
	v, err := c.show(ctx)
	if err != nil {
		return err
	}
	for _, e := range v.Network.PrivateLink.Endpoints {
		if e.ID == ep.ID && e.State == "available" {
			c.res.EndpointDNS = e.DNSNames
		}
	}
	if len(c.res.EndpointDNS) == 0 {
		return c.fail("the registered endpoint %s is not available: %+v", ep.ID, v.Network.PrivateLink)
	}
	c.progress("endpoint %s accepted: %s", ep.ID, strings.Join(c.res.EndpointDNS, ", "))
	return nil
}

// manual: accepted by hand, then one rejected and one left to expire.
func (c *conn) manual(ctx context.Context, d store.Deployment, app map[string]string) error {
	vpc := app["Vpc"]
	if err := c.request(ctx, vpc, "10.1.0.0/16", ""); err != nil {
		return err
	}
	p, err := c.peering(ctx, vpc, "pending acceptance", state(connectivity.PendingAcceptance))
	if err != nil {
		return err
	}
	peerEC2 := cloud.NewEC2(c.r.Cloud.ConfigAs(c.peer))
	// The workflow looks again in an hour: let that hour pass unanswered first.
	if err := c.jump(ctx, time.Hour+time.Minute); err != nil {
		return err
	}
	if err := peerEC2.AcceptPeering(ctx, p.ConnectionID); err != nil {
		return err
	}
	c.progress("customer accepted %s by hand", p.ConnectionID)
	if p, err = c.jumpUntil(ctx, vpc, "active", state(connectivity.Active)); err != nil {
		return err
	}
	if err := c.checkActive(ctx, d, p, app); err != nil {
		return err
	}

	// A second request, which the customer rejects, and a third, never answered.
	rejected, err := c.appNetwork(ctx, "app-network-2", "10.2.0.0/16")
	if err != nil {
		return err
	}
	ignored, err := c.appNetwork(ctx, "app-network-3", "10.3.0.0/16")
	if err != nil {
		return err
	}
	if err := c.request(ctx, rejected["Vpc"], "10.2.0.0/16", ""); err != nil {
		return err
	}
	if err := c.request(ctx, ignored["Vpc"], "10.3.0.0/16", ""); err != nil {
		return err
	}
	r, err := c.peering(ctx, rejected["Vpc"], "pending acceptance", state(connectivity.PendingAcceptance))
	if err != nil {
		return err
	}
	if _, err := c.peering(ctx, ignored["Vpc"], "pending acceptance", state(connectivity.PendingAcceptance)); err != nil {
		return err
	}
	if err := peerEC2.RejectPeering(ctx, r.ConnectionID); err != nil {
		return err
	}
	c.progress("customer rejected %s", r.ConnectionID)
	if _, err := c.jumpUntil(ctx, rejected["Vpc"], "failed (rejected)", func(p connectivity.Peering) bool {
		return p.State == connectivity.Failed && strings.Contains(p.Reason, "rejected")
	}); err != nil {
		return err
	}
	if err := c.jump(ctx, connectivity.PeeringTTL); err != nil {
		return err
	}
	if _, err := c.jumpUntil(ctx, ignored["Vpc"], "failed (expired)", func(p connectivity.Peering) bool {
		return p.State == connectivity.Failed && strings.Contains(p.Reason, "expired")
	}); err != nil {
		return err
	}
	// The accepted one is deleted: its stack, then the connection made outside CloudFormation.
	if _, err := c.act(ctx, map[string]any{"action": "delete", "target": vpc}); err != nil {
		return err
	}
	if _, err := c.peering(ctx, vpc, "deleted", state(connectivity.Deleted)); err != nil {
		return err
	}
	conns, err := peerEC2.DescribePeerings(ctx, []string{p.ConnectionID}, nil)
	if err != nil || len(conns) != 1 || conns[0].Status != "deleted" {
		return c.fail("after the peering's deletion its connection is %+v (%v), want deleted", conns, err)
	}
	return nil
}
