// Package connectivity is the domain of a deployment's private connectivity (pure: no AWS):
// VPC peerings with the customer's other VPCs, the PrivateLink endpoint service, the private
// and public load balancers, and the IP access lists of public endpoints. It validates every
// request (each refusal names the field and the rule), decides what is allowed (removing the
// public load balancer needs a verified private path; deleting the last private path while
// it is removed is refused), and derives what the customer sees: the exact routes to add on
// their side and each service's public and -private endpoints.
//
// The state lives in the deployment's record (store.Deployment.Network), so a change and its
// audit entry are one conditional write, and a check such as "no overlap with another
// peering" cannot race a concurrent request.
package connectivity

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/settings"
)

// State is where a private path (a peering, the PrivateLink service) stands. The names follow
// what peering products show (MongoDB Atlas, Aiven): the customer recognises them.
type State string

const (
	PendingAcceptance State = "pending-acceptance" // waiting for the customer to accept the connection
	Provisioning      State = "provisioning"       // being built
	Active            State = "active"
	Failed            State = "failed" // Reason says why: overlap, rejected, expired, role not assumable...
	Deleting          State = "deleting"
	Deleted           State = "deleted"
)

// Live reports whether a path in state s holds its CIDRs and counts against the limits.
func (s State) Live() bool { return s != Failed && s != Deleted }

// Working reports whether a workflow is still changing a path in state s.
func (s State) Working() bool { return s == Provisioning || s == PendingAcceptance || s == Deleting }

// AWS's limits on a VPC's peerings.
const (
	MaxActivePeerings  = 50
	MaxPendingPeerings = 25
	MaxPeerCIDRs       = 5 // a VPC has at most 5 IPv4 CIDRs by default
	// MaxTotalPeerCIDRs bounds the peer CIDRs of all live peerings: each takes two inbound
	// rules (8443, 9440) on the peers' security group, whose default quota is 60, and a route
	// in each private route table (50 routes by default, some already used).
	MaxTotalPeerCIDRs  = 30
	MaxAccessList      = 100
	MaxAllowedAccounts = 10
	// KeepEnded is how many failed or deleted peerings the record keeps for their history
	// (the audit trail keeps every change): the record must stay well under DynamoDB's
	// 400 KB item limit.
	KeepEnded = 20
)

// PeeringTTL is how long AWS keeps a peering request waiting for its accepter.
const PeeringTTL = 7 * 24 * time.Hour

// ClickHousePorts are the ports the private load balancer serves: HTTPS and the native
// protocol over TLS.
var ClickHousePorts = []int{8443, 9440}

// Network is a deployment's connectivity.
type Network struct {
	// PrivateLB is the private Network Load Balancer, once the agent enabled it.
	PrivateLB *LoadBalancer `json:"privateLb,omitempty"`
	// PublicRemoved: the public load balancer was removed (after a verified private path).
	PublicRemoved bool       `json:"publicRemoved,omitempty"`
	PublicChanged *time.Time `json:"publicChanged,omitempty"`
	Peerings      []Peering  `json:"peerings,omitempty"`
	// PrivateLink is the endpoint service on the private load balancer, when asked for.
	PrivateLink *PrivateLink `json:"privateLink,omitempty"`
	// AccessLists are the CIDRs allowed to reach each service's public endpoint (service id
	// -> CIDRs); a service without one is open to the internet.
	AccessLists map[string][]string `json:"accessLists,omitempty"`
}

// LoadBalancer is what the agent reports of the private load balancer it runs.
type LoadBalancer struct {
	DNSName         string `json:"dnsName"`
	SecurityGroupID string `json:"securityGroupId"`
	Arn             string `json:"arn"`
}

// Peering is one VPC peering of the deployment, identified by the peer VPC.
type Peering struct {
	PeerVpcID       string   `json:"peerVpcId"`
	Name            string   `json:"name"`
	PeerAccount     string   `json:"peerAccount"`
	PeerRegion      string   `json:"peerRegion"`
	PeerCIDRs       []string `json:"peerCidrs"`
	AccepterRoleArn string   `json:"accepterRoleArn,omitempty"`
	State           State    `json:"state"`
	Reason          string   `json:"reason,omitempty"`
	ConnectionID    string   `json:"connectionId,omitempty"` // pcx-...
	// Execution is the peering workflow execution that owns the peering's current change.
	Execution   string     `json:"execution,omitempty"`
	RequestedAt time.Time  `json:"requestedAt"`
	UpdatedAt   time.Time  `json:"updatedAt"`
	ExpiresAt   *time.Time `json:"expiresAt,omitempty"` // a request waiting for acceptance
}

// Manual reports whether the customer accepts the connection by hand (no accepter role):
// byoc creates it outside CloudFormation and waits for the acceptance.
func (p Peering) Manual() bool { return p.AccepterRoleArn == "" }

// PrivateLink is the deployment's VPC endpoint service.
type PrivateLink struct {
	State           State      `json:"state"`
	Reason          string     `json:"reason,omitempty"`
	AllowedAccounts []string   `json:"allowedAccounts"`
	ServiceID       string     `json:"serviceId,omitempty"`
	ServiceName     string     `json:"serviceName,omitempty"`
	Execution       string     `json:"execution,omitempty"`
	Endpoints       []Endpoint `json:"endpoints,omitempty"`
	UpdatedAt       time.Time  `json:"updatedAt"`
}

// Endpoint is a customer's interface endpoint registered with the service.
type Endpoint struct {
	ID       string   `json:"id"`
	Owner    string   `json:"owner"`
	State    string   `json:"state"` // EC2's: pendingAcceptance, available, ...
	DNSNames []string `json:"dnsNames,omitempty"`
}

// PeeringRequest is what a peering request carries (operator action or BYOC Peering
// Requested event).
type PeeringRequest struct {
	DeploymentID    string   `json:"deploymentId"`
	PeerAccount     string   `json:"peerAccount"`
	PeerVpcID       string   `json:"peerVpcId"`
	PeerRegion      string   `json:"peerRegion"`
	PeerCIDRs       []string `json:"peerCidrs"`
	AccepterRoleArn string   `json:"accepterRoleArn,omitempty"`
	Name            string   `json:"name"`
}

var (
	accountPattern = regexp.MustCompile(`^[0-9]{12}$`)
	vpcPattern     = regexp.MustCompile(`^vpc-([0-9a-f]{8}|[0-9a-f]{17})$`)
	namePattern    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}$`)
	roleArnPattern = regexp.MustCompile(`^arn:aws(-[a-z]+)*:iam::([0-9]{12}):role/[\w+=,.@/-]{1,512}$`)
	endpointID     = regexp.MustCompile(`^vpce-[0-9a-f]{8,17}$`)
	sgPattern      = regexp.MustCompile(`^sg-([0-9a-f]{8}|[0-9a-f]{17})$`)
	dnsPattern     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$`)
)

// Rules for the messages.
const (
	AccountRule  = "must be a 12-digit AWS account id"
	VpcRule      = "must be a VPC id: vpc- and 8 or 17 lowercase hex digits"
	NameRule     = "must be 1 to 63 letters, digits, spaces, dots, underscores or hyphens, starting with a letter or digit"
	RoleRule     = "must be the peer-side template's accepter role in the peer account (arn:aws:iam::<peerAccount>:role/byoc-peer-accepter-<peerVpcId>)"
	EndpointRule = "must be a VPC endpoint id: vpce- and 8 to 17 lowercase hex digits"
)

// ValidPeerVpcID reports whether id is a VPC id.
func ValidPeerVpcID(id string) bool { return vpcPattern.MatchString(id) }

// ValidEndpointID reports whether id is a VPC endpoint id.
func ValidEndpointID(id string) bool { return endpointID.MatchString(id) }

// CheckPeering validates a request against the deployment's VPC CIDR and network and the
// regions peers may be in. It returns the request normalized (CIDRs canonical) or a
// *settings.ValidationError naming every broken rule. A request for a peer VPC the
// deployment already has is not checked here: it is the same peering (Find).
func CheckPeering(r PeeringRequest, vpcCIDR string, n Network, regions []string) (PeeringRequest, error) {
	c := settings.Collector{Of: "peering request"}
	if !accountPattern.MatchString(r.PeerAccount) {
		c.Add("peerAccount", r.PeerAccount, AccountRule)
	}
	if !vpcPattern.MatchString(r.PeerVpcID) {
		c.Add("peerVpcId", r.PeerVpcID, VpcRule)
	}
	if !slices.Contains(regions, r.PeerRegion) {
		c.Add("peerRegion", r.PeerRegion, "must be a region byoc supports: "+strings.Join(regions, ", "))
	}
	if !namePattern.MatchString(r.Name) {
		c.Add("name", r.Name, NameRule)
	}
	if r.AccepterRoleArn != "" {
		m := roleArnPattern.FindStringSubmatch(r.AccepterRoleArn)
		if m == nil || m[2] != r.PeerAccount || !strings.HasSuffix(r.AccepterRoleArn, ":role/"+contract.PeerAccepterRolePrefix+r.PeerVpcID) {
			c.Add("accepterRoleArn", r.AccepterRoleArn, RoleRule)
		}
	}
	if len(r.PeerCIDRs) == 0 || len(r.PeerCIDRs) > MaxPeerCIDRs {
		c.Add("peerCidrs", strings.Join(r.PeerCIDRs, ","), fmt.Sprintf("must list 1 to %d CIDRs of the peer VPC", MaxPeerCIDRs))
	}
	own, _ := netip.ParsePrefix(vpcCIDR)
	var canonical []string
	for i, s := range r.PeerCIDRs {
		field := fmt.Sprintf("peerCidrs[%d]", i)
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() || p.Masked() != p {
			c.Add(field, s, "must be an IPv4 CIDR with no host bits set (10.1.0.0/16)")
			continue
		}
		switch {
		case p.Overlaps(own):
			c.Add(field, s, "overlaps the deployment's VPC CIDR "+vpcCIDR)
		case slices.ContainsFunc(canonical, func(o string) bool { return netip.MustParsePrefix(o).Overlaps(p) }):
			c.Add(field, s, "overlaps another CIDR of this request")
		default:
			if other := overlappingPeering(n, p, r.PeerVpcID); other != "" {
				c.Add(field, s, "overlaps a CIDR of the deployment's peering with "+other)
			}
		}
		canonical = append(canonical, p.String())
	}
	total := len(canonical)
	for _, q := range n.Peerings {
		if q.State.Live() && q.PeerVpcID != r.PeerVpcID {
			total += len(q.PeerCIDRs)
		}
	}
	if total > MaxTotalPeerCIDRs {
		c.Add("peerCidrs", strings.Join(r.PeerCIDRs, ","), fmt.Sprintf("the deployment's peerings may route at most %d peer CIDRs in all (two rules each on the private load balancer's security group, quota 60); this makes %d", MaxTotalPeerCIDRs, total))
	}
	active, pending := n.counts()
	if active >= MaxActivePeerings {
		c.Add("deploymentId", r.DeploymentID, fmt.Sprintf("has %d active peerings, AWS's limit per VPC", MaxActivePeerings))
	}
	if pending >= MaxPendingPeerings {
		c.Add("deploymentId", r.DeploymentID, fmt.Sprintf("has %d pending peerings, AWS's limit per VPC", MaxPendingPeerings))
	}
	if err := c.Err(); err != nil {
		return PeeringRequest{}, err
	}
	r.PeerCIDRs = canonical
	return r, nil
}

func overlappingPeering(n Network, p netip.Prefix, except string) string {
	for _, q := range n.Peerings {
		if !q.State.Live() || q.PeerVpcID == except {
			continue
		}
		for _, s := range q.PeerCIDRs {
			if o, err := netip.ParsePrefix(s); err == nil && o.Overlaps(p) {
				return q.PeerVpcID
			}
		}
	}
	return ""
}

func (n Network) counts() (active, pending int) {
	for _, p := range n.Peerings {
		switch p.State {
		case Active:
			active++
		case PendingAcceptance, Provisioning:
			pending++
		}
	}
	return active, pending
}

// Canonical is r with its CIDRs in canonical form where they parse (for comparing a repeated
// request with the peering it made).
func Canonical(r PeeringRequest) PeeringRequest {
	r.PeerCIDRs = slices.Clone(r.PeerCIDRs)
	for i, s := range r.PeerCIDRs {
		if p, err := netip.ParsePrefix(s); err == nil {
			r.PeerCIDRs[i] = p.Masked().String()
		}
	}
	return r
}

// PruneEnded drops the oldest ended peerings beyond KeepEnded: deleted ones, and failed
// ones that never made a connection (a failed one with a connection may still hold it, and
// must stay deletable).
func PruneEnded(ps []Peering) []Peering {
	prunable := func(p Peering) bool { return p.State == Deleted || p.State == Failed && p.ConnectionID == "" }
	ended := 0
	for _, p := range ps {
		if prunable(p) {
			ended++
		}
	}
	out := make([]Peering, 0, len(ps))
	for _, p := range ps { // oldest first: the order they were requested in
		if prunable(p) && ended > KeepEnded {
			ended--
			continue
		}
		out = append(out, p)
	}
	return out
}

// Find returns the index of the peering with peerVpcID, or -1.
func (n Network) Find(peerVpcID string) int {
	return slices.IndexFunc(n.Peerings, func(p Peering) bool { return p.PeerVpcID == peerVpcID })
}

// SamePeering reports whether a request asks for what peering p already is: a repeated
// request, answered with the existing peering rather than refused.
func SamePeering(p Peering, r PeeringRequest) bool {
	return p.PeerAccount == r.PeerAccount && p.PeerRegion == r.PeerRegion && p.AccepterRoleArn == r.AccepterRoleArn &&
		slices.Equal(p.PeerCIDRs, r.PeerCIDRs)
}

// ActivePrivatePaths counts the paths that reach the deployment without the public load
// balancer: active peerings, and the PrivateLink service when an endpoint is connected.
func (n Network) ActivePrivatePaths() int {
	count := 0
	for _, p := range n.Peerings {
		if p.State == Active {
			count++
		}
	}
	if n.PrivateLink != nil && n.PrivateLink.State == Active &&
		slices.ContainsFunc(n.PrivateLink.Endpoints, func(e Endpoint) bool { return e.State == "available" }) {
		count++
	}
	return count
}

// ErrRefused is a request the deployment's state does not allow (not a malformed one).
type ErrRefused struct{ Reason string }

func (e *ErrRefused) Error() string { return e.Reason }

// CheckRemovePublic says whether the public load balancer may be removed: only with an
// active private path, and only when the operator says it was verified to work.
func CheckRemovePublic(n Network, verified bool) error {
	if n.ActivePrivatePaths() == 0 {
		return &ErrRefused{Reason: "the public load balancer can be removed only once a private path (an active peering, or PrivateLink with a connected endpoint) exists"}
	}
	if !verified {
		return &ErrRefused{Reason: "verified must be true: confirm that the services were reached through the private path before removing the public one"}
	}
	return nil
}

// CheckDeletePath says whether a private path may be deleted: the last active one is kept
// while the public load balancer is removed (deleting it would lock the customer out),
// unless forced.
func CheckDeletePath(n Network, active, force bool) error {
	if n.PublicRemoved && active && n.ActivePrivatePaths() <= 1 && !force {
		return &ErrRefused{Reason: "this is the deployment's last private path and its public load balancer is removed: deleting it would leave no way in; restore the public load balancer first, or pass force"}
	}
	return nil
}

// CheckLoadBalancer validates what the agent reported of the private load balancer: the
// agent runs in the customer's cluster, so its report is checked like any input.
func CheckLoadBalancer(lb LoadBalancer, account, region string) error {
	c := settings.Collector{Of: "private load balancer report"}
	if !dnsPattern.MatchString(lb.DNSName) || !strings.HasSuffix(lb.DNSName, ".elb."+region+".amazonaws.com") {
		c.Add("dnsName", lb.DNSName, "must be the load balancer's DNS name in "+region+" (<name>.elb."+region+".amazonaws.com)")
	}
	if !sgPattern.MatchString(lb.SecurityGroupID) {
		c.Add("securityGroupId", lb.SecurityGroupID, "must be a security group id: sg- and 8 or 17 lowercase hex digits")
	}
	if !strings.HasPrefix(lb.Arn, "arn:aws:elasticloadbalancing:"+region+":"+account+":loadbalancer/net/") {
		c.Add("arn", lb.Arn, "must be a Network Load Balancer of the deployment's account and region")
	}
	return c.Err()
}

// PrivateHostname is a service's private endpoint: its public hostname with -private added
// to the first label.
func PrivateHostname(public string) string {
	first, rest, found := strings.Cut(public, ".")
	if !found || public == "" {
		return ""
	}
	return first + "-private." + rest
}

// Endpoints are the hostnames a service is reachable at.
type Endpoints struct {
	Public  string `json:"public,omitempty"`
	Private string `json:"private,omitempty"`
}

// EndpointsOf gives a service's endpoints: the public one unless the public load balancer
// was removed, the -private one once a peering is active.
func (n Network) EndpointsOf(hostname string) Endpoints {
	var e Endpoints
	if !n.PublicRemoved {
		e.Public = hostname
	}
	if slices.ContainsFunc(n.Peerings, func(p Peering) bool { return p.State == Active }) {
		e.Private = PrivateHostname(hostname)
	}
	return e
}

// PeerRoute is a route the customer adds on their side of a peering.
type PeerRoute struct {
	Destination  string `json:"destination"`  // the BYOC VPC CIDR
	ConnectionID string `json:"connectionId"` // the peering connection
	Where        string `json:"where"`
}

// PeerRoutes are the routes the customer must add in the peer VPC: its route tables that
// should reach the deployment, to the BYOC CIDR through the connection.
func PeerRoutes(p Peering, vpcCIDR string) []PeerRoute {
	if p.ConnectionID == "" {
		return nil
	}
	return []PeerRoute{{Destination: vpcCIDR, ConnectionID: p.ConnectionID,
		Where: fmt.Sprintf("every route table of %s (account %s, %s) whose subnets must reach the deployment", p.PeerVpcID, p.PeerAccount, p.PeerRegion)}}
}

// AccessListChange is ClickHouse Cloud's shape of an IP access list change.
type AccessListChange struct {
	Add    []string `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
	// AllowAnywhere acknowledges adding 0.0.0.0/0 (or ::/0): the endpoint open to the internet.
	AllowAnywhere bool `json:"allowAnywhere,omitempty"`
}

// ApplyAccessList applies a change to a service's list, refusing (naming each field and rule)
// invalid CIDRs, removing one that is not there, more than MaxAccessList entries, or
// anywhere without acknowledgement. The result is sorted and has no duplicates.
func ApplyAccessList(current []string, ch AccessListChange) ([]string, error) {
	c := settings.Collector{Of: "IP access list"}
	if len(ch.Add) == 0 && len(ch.Remove) == 0 {
		c.Add("add", "", "a change must add or remove at least one CIDR")
	}
	next := slices.Clone(current)
	for i, s := range ch.Remove {
		p, err := netip.ParsePrefix(s)
		if err != nil || !slices.Contains(next, p.Masked().String()) {
			c.Add(fmt.Sprintf("remove[%d]", i), s, "must be a CIDR on the list")
			continue
		}
		next = slices.DeleteFunc(next, func(x string) bool { return x == p.Masked().String() })
	}
	for i, s := range ch.Add {
		field := fmt.Sprintf("add[%d]", i)
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Masked() != p {
			c.Add(field, s, "must be a CIDR with no host bits set (203.0.113.0/24, 198.51.100.7/32)")
			continue
		}
		if p.Bits() == 0 && !ch.AllowAnywhere {
			c.Add(field, s, "opens the endpoint to the whole internet: set allowAnywhere to confirm")
			continue
		}
		if !slices.Contains(next, p.String()) {
			next = append(next, p.String())
		}
	}
	if len(next) == 0 && len(current) > 0 && !ch.AllowAnywhere {
		c.Add("remove", strings.Join(ch.Remove, ","), "removing every CIDR opens the endpoint to the whole internet: set allowAnywhere to confirm")
	}
	if len(next) > MaxAccessList {
		c.Add("add", fmt.Sprint(len(next)), fmt.Sprintf("the list may hold at most %d CIDRs", MaxAccessList))
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	slices.Sort(next)
	return next, nil
}

// CheckAllowedAccounts validates the accounts allowed to connect to the PrivateLink service.
func CheckAllowedAccounts(accounts []string) error {
	c := settings.Collector{Of: "PrivateLink request"}
	if len(accounts) == 0 || len(accounts) > MaxAllowedAccounts {
		c.Add("allowedAccounts", strings.Join(accounts, ","), fmt.Sprintf("must list 1 to %d accounts", MaxAllowedAccounts))
	}
	for i, a := range accounts {
		if !accountPattern.MatchString(a) {
			c.Add(fmt.Sprintf("allowedAccounts[%d]", i), a, AccountRule)
		}
	}
	return c.Err()
}

// PrivateLinkTarget names the PrivateLink service where a peering's peer VPC id would.
const PrivateLinkTarget = "privatelink"

// StackName is the customer stack of a network target: a peering (by peer VPC id) or the
// PrivateLink service. The peering workflow creates them; teardown deletes them.
func StackName(prefix, deploymentID, target string) string {
	if target == PrivateLinkTarget {
		return fmt.Sprintf("%s-%s-privatelink", prefix, deploymentID)
	}
	return fmt.Sprintf("%s-%s-peering-%s", prefix, deploymentID, strings.TrimPrefix(target, "vpc-"))
}

// Stacks are the customer stacks the network holds, peerings first: every peering not yet
// deleted, and the PrivateLink service if it was ever offered.
func (n Network) Stacks(prefix, deploymentID string) []string {
	var out []string
	for _, p := range n.Peerings {
		if p.State != Deleted {
			out = append(out, StackName(prefix, deploymentID, p.PeerVpcID))
		}
	}
	if n.PrivateLink != nil {
		out = append(out, StackName(prefix, deploymentID, PrivateLinkTarget))
	}
	return out
}
