package cfnengine

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/byocloud/byoc/infra/local/accounts"
)

// The network the stacks build, as EC2 sees it: VPCs and their CIDRs, peering connections
// (made by a stack's AWS::EC2::VPCPeeringConnection or by the EC2 API), the routes stacks
// add towards them, VPC endpoint services and the endpoints connected to them. Peering
// follows EC2's rules: overlapping CIDRs fail, a request waits for the accepter account,
// a pending request expires after seven days, a route to a connection that is not active
// is a blackhole. Caller holds e.mu for every method here.
type network struct {
	vpcs      map[string]*vpcRecord // by id
	peerings  map[string]*peeringConnection
	routes    map[string]*routeRecord // by stack id + "/" + logical id
	services  map[string]*endpointService
	endpoints map[string]*endpointRecord
}

// PendingAcceptanceLifetime is how long a peering request waits for its accepter before
// EC2 expires it.
const PendingAcceptanceLifetime = 7 * 24 * time.Hour

type vpcRecord struct {
	account, region, id, cidr string
}

type peeringSide struct {
	Account, Region, VpcID, CIDR string
}

type peeringConnection struct {
	id                  string
	requester, accepter peeringSide
	status, message     string
	created, expires    time.Time
	tags                map[string]string
	stackID             string // the stack whose resource it is; "" when made through the API
}

type routeRecord struct {
	account, region, routeTable, destination, peering string
}

type endpointService struct {
	id, account, region string
	acceptanceRequired  bool
	loadBalancers       []string
	allowed             []string // principal ARNs (arn:aws:iam::<account>:root)
	permissionsOf       string   // the permissions resource that set allowed
}

func (s *endpointService) name() string { return "com.amazonaws.vpce." + s.region + "." + s.id }

type endpointRecord struct {
	id, account, region, vpcID, serviceID, state string
	created                                      time.Time
}

func newNetwork() *network {
	return &network{vpcs: map[string]*vpcRecord{}, peerings: map[string]*peeringConnection{}, routes: map[string]*routeRecord{},
		services: map[string]*endpointService{}, endpoints: map[string]*endpointRecord{}}
}

// status returns the connection's status at now: a pending request expires after seven days.
func (p *peeringConnection) statusAt(now time.Time) (string, string) {
	if p.status == "pending-acceptance" && !now.Before(p.expires) {
		return "expired", "Expired"
	}
	return p.status, p.message
}

// overlaps reports whether two CIDRs share addresses.
func overlaps(a, b string) bool {
	pa, errA := netip.ParsePrefix(a)
	pb, errB := netip.ParsePrefix(b)
	return errA == nil && errB == nil && pa.Overlaps(pb)
}

// requestPeering records a new connection from the requester VPC (owned by account, in
// region) to the peer's. It fails, as EC2 does, when the requester VPC is not the caller's;
// the connection itself is failed when the peer VPC does not exist or the CIDRs overlap.
func (n *network) requestPeering(id, account, region, vpcID string, peer peeringSide, now time.Time, tags map[string]string) (*peeringConnection, error) {
	req, ok := n.vpcs[vpcID]
	if !ok || req.account != account || req.region != region {
		return nil, fmt.Errorf("InvalidVpcID.NotFound: The vpc ID '%s' does not exist", vpcID)
	}
	if peer.Account == "" {
		peer.Account = account
	}
	if peer.Region == "" {
		peer.Region = region
	}
	p := &peeringConnection{id: id, requester: peeringSide{account, region, vpcID, req.cidr}, accepter: peer,
		status: "pending-acceptance", message: "Pending Acceptance by " + peer.Account, created: now, expires: now.Add(PendingAcceptanceLifetime), tags: tags}
	acc, found := n.vpcs[peer.VpcID]
	switch {
	case !found || acc.account != peer.Account || acc.region != peer.Region:
		p.status, p.message = "failed", fmt.Sprintf("The accepter VPC %s does not exist in account %s, region %s", peer.VpcID, peer.Account, peer.Region)
	case overlaps(req.cidr, acc.cidr):
		p.accepter.CIDR = acc.cidr
		p.status, p.message = "failed", "Overlapping CIDR range"
	default:
		p.accepter.CIDR = acc.cidr
	}
	n.peerings[id] = p
	return p, nil
}

// transition moves a connection as its accepter or either side asks; the error is EC2's.
func (n *network) transition(id, caller, action string, now time.Time) (*peeringConnection, error) {
	p, ok := n.peerings[id]
	if !ok || (caller != p.requester.Account && caller != p.accepter.Account) {
		return nil, fmt.Errorf("InvalidVpcPeeringConnectionID.NotFound: The vpcPeeringConnection ID '%s' does not exist", id)
	}
	status, _ := p.statusAt(now)
	switch action {
	case "accept", "reject":
		if caller != p.accepter.Account {
			return nil, fmt.Errorf("OperationNotPermitted: User %s cannot %s peering %s: only its accepter, account %s, can", caller, action, id, p.accepter.Account)
		}
		if status != "pending-acceptance" {
			return nil, fmt.Errorf("InvalidStateTransition: Cannot %s peering connection %s in state %s", action, id, status)
		}
		if action == "accept" {
			p.status, p.message = "active", "Active"
		} else {
			p.status, p.message = "rejected", "Rejected by "+caller
		}
	case "delete":
		switch status {
		case "active", "pending-acceptance":
			p.status, p.message = "deleted", "Deleted by "+caller
		case "deleted":
		default:
			return nil, fmt.Errorf("InvalidStateTransition: Cannot delete peering connection %s in state %s", id, status)
		}
	}
	return p, nil
}

// routeState is a route's state: a route to a peering connection that is not active is a
// blackhole.
func (n *network) routeState(r *routeRecord, now time.Time) string {
	p, ok := n.peerings[r.peering]
	if !ok {
		return "blackhole"
	}
	if status, _ := p.statusAt(now); status != "active" {
		return "blackhole"
	}
	return "active"
}

func (n *network) routesOf(routeTable string) []*routeRecord {
	var out []*routeRecord
	for _, r := range n.routes {
		if r.routeTable == routeTable {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].destination < out[j].destination })
	return out
}

// principalAllowed reports whether account may connect to the service.
func (s *endpointService) principalAllowed(account string) bool {
	if account == s.account {
		return true
	}
	for _, p := range s.allowed {
		if p == "*" || p == "arn:aws:iam::"+account+":root" || p == account {
			return true
		}
	}
	return false
}

// networkEffect applies a network resource of a stack: CloudFormation's side of EC2.
func (e *Engine) networkEffect(s *stack, r *liveResource) error {
	n := e.net
	now := e.clock.Now()
	switch r.typ {
	case "AWS::EC2::VPC":
		n.vpcs[r.physicalID] = &vpcRecord{account: s.account, region: s.region, id: r.physicalID, cidr: stringProp(r.props, "CidrBlock")}
	case "AWS::EC2::Route":
		if pcx := stringProp(r.props, "VpcPeeringConnectionId"); pcx != "" {
			n.routes[s.id+"/"+r.logicalID] = &routeRecord{account: s.account, region: s.region, routeTable: stringProp(r.props, "RouteTableId"),
				destination: stringProp(r.props, "DestinationCidrBlock"), peering: pcx}
		}
	case "AWS::EC2::VPCPeeringConnection":
		return e.peeringResource(s, r, now)
	case "AWS::EC2::VPCEndpointService":
		n.services[r.physicalID] = &endpointService{id: r.physicalID, account: s.account, region: s.region,
			acceptanceRequired: fmt.Sprint(r.props["AcceptanceRequired"]) == "true", loadBalancers: stringList(r.props["NetworkLoadBalancerArns"])}
	case "AWS::EC2::VPCEndpointServicePermissions":
		svc, ok := n.services[stringProp(r.props, "ServiceId")]
		if !ok || svc.account != s.account {
			return fmt.Errorf("Resource handler returned message: \"The Vpc Endpoint Service '%s' does not exist (Service: Ec2, Status Code: 400, Request ID: local)\" (HandlerErrorCode: NotFound)", stringProp(r.props, "ServiceId"))
		}
		svc.allowed, svc.permissionsOf = stringList(r.props["AllowedPrincipals"]), s.id+"/"+r.logicalID
	}
	return nil
}

// peeringResource is AWS::EC2::VPCPeeringConnection: CloudFormation requests the connection
// and waits for it to become active. Across accounts it accepts with PeerRoleArn, a role in
// the accepter account the caller may assume and which may accept; without one (or with one
// it cannot use) the connection never becomes active and the resource fails to stabilize.
func (e *Engine) peeringResource(s *stack, r *liveResource, now time.Time) error {
	peer := peeringSide{Account: stringProp(r.props, "PeerOwnerId"), Region: stringProp(r.props, "PeerRegion"), VpcID: stringProp(r.props, "PeerVpcId")}
	p, err := e.net.requestPeering(r.physicalID, s.account, s.region, stringProp(r.props, "VpcId"), peer, now, nil)
	if err != nil {
		return handlerError(err.Error())
	}
	p.stackID = s.id
	stabilize := func(why string) error {
		p.status, p.message = "deleted", "Deleted by "+s.account
		return handlerError(fmt.Sprintf("VpcPeeringConnection %s failed to stabilize: %s", p.id, why))
	}
	if p.status == "failed" {
		return stabilize(p.message)
	}
	if p.accepter.Account == s.account {
		p.status, p.message = "active", "Active"
		return nil
	}
	roleArn := stringProp(r.props, "PeerRoleArn")
	if roleArn == "" {
		return stabilize(fmt.Sprintf("it stayed pending-acceptance by account %s; a VPC in another account needs PeerRoleArn, a role there the requester may assume to accept it", p.accepter.Account))
	}
	caller := s.caller
	if caller.Account == "" {
		caller = accounts.RootPrincipal(s.account)
	}
	if why := e.cfg.Accounts.AssumeDenied(caller, roleArn); why != "" {
		return stabilize(fmt.Sprintf("the requester cannot assume PeerRoleArn %s (%s)", roleArn, why))
	}
	vpcArn := fmt.Sprintf("arn:%s:ec2:%s:%s:vpc/%s", partition(p.accepter.Region), p.accepter.Region, p.accepter.Account, p.accepter.VpcID)
	pcxArn := fmt.Sprintf("arn:%s:ec2:%s:%s:vpc-peering-connection/%s", partition(p.accepter.Region), p.accepter.Region, p.accepter.Account, p.id)
	requesterVpc := fmt.Sprintf("arn:%s:ec2:%s:%s:vpc/%s", partition(s.region), s.region, s.account, p.requester.VpcID)
	keys := map[string][]string{"ec2:AccepterVpc": {vpcArn}, "ec2:RequesterVpc": {requesterVpc}}
	if why := e.cfg.Accounts.RoleDenies(roleArn, "ec2:AcceptVpcPeeringConnection", pcxArn, keys); why != "" {
		return stabilize(fmt.Sprintf("PeerRoleArn %s may not accept it (%s)", roleArn, why))
	}
	p.status, p.message = "active", "Active"
	return nil
}

// handlerError is a resource failure as CloudFormation words EC2's answer.
func handlerError(msg string) error {
	return fmt.Errorf("Resource handler returned message: \"%s\" (HandlerErrorCode: NotStabilized)", strings.TrimSpace(msg))
}

// undoNetworkEffect forgets a network resource the stack removed (or never finished).
func (e *Engine) undoNetworkEffect(s *stack, r *liveResource) {
	n := e.net
	switch r.typ {
	case "AWS::EC2::VPC":
		delete(n.vpcs, r.physicalID)
	case "AWS::EC2::Route":
		delete(n.routes, s.id+"/"+r.logicalID)
	case "AWS::EC2::VPCPeeringConnection":
		if p, ok := n.peerings[r.physicalID]; ok && p.status != "failed" {
			p.status, p.message = "deleted", "Deleted by "+s.account
		}
	case "AWS::EC2::VPCEndpointService":
		delete(n.services, r.physicalID)
	case "AWS::EC2::VPCEndpointServicePermissions":
		if svc, ok := n.services[stringProp(r.props, "ServiceId")]; ok && svc.permissionsOf == s.id+"/"+r.logicalID {
			svc.allowed = nil
		}
	}
}

// networkTypes are the resource types networkEffect knows.
var networkTypes = map[string]bool{"AWS::EC2::VPC": true, "AWS::EC2::Route": true, "AWS::EC2::VPCPeeringConnection": true,
	"AWS::EC2::VPCEndpointService": true, "AWS::EC2::VPCEndpointServicePermissions": true}
