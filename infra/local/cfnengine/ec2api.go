package cfnengine

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/byocloud/byoc/infra/local/accounts"
)

const ec2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"

// EC2 serves the part of the EC2 API (Query protocol, version 2016-11-15) that peering and
// PrivateLink need, over the network the stacks built: VPC peering connections (create,
// accept, reject, delete, describe), route tables' routes to them, and interface endpoints
// of endpoint services (create and describe as the consumer; describe and accept the
// connections as the service's owner). Who calls comes from the access key, as everywhere
// in the local cloud: a 12-digit key is that account's root user.
func (e *Engine) EC2() http.Handler { return http.HandlerFunc(e.serveEC2) }

type ec2Call struct {
	e               *Engine
	form            url.Values
	account, region string
	now             time.Time
}

func (e *Engine) serveEC2(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeEC2Error(w, "MalformedQueryString", err.Error())
		return
	}
	region := e.cfg.Region
	if scope, ok := accounts.SigningScope(r); ok && scope.Region != "" {
		region = scope.Region
	}
	c := &ec2Call{e: e, form: r.Form, account: e.cfg.Accounts.CallerAccount(r), region: region, now: e.clock.Now()}
	handlers := map[string]func() (any, error){
		"CreateVpcPeeringConnection":     c.createPeering,
		"AcceptVpcPeeringConnection":     func() (any, error) { return c.transition("accept") },
		"RejectVpcPeeringConnection":     func() (any, error) { return c.transition("reject") },
		"DeleteVpcPeeringConnection":     func() (any, error) { return c.transition("delete") },
		"DescribeVpcPeeringConnections":  c.describePeerings,
		"DescribeRouteTables":            c.describeRouteTables,
		"CreateVpcEndpoint":              c.createEndpoint,
		"DescribeVpcEndpoints":           c.describeEndpoints,
		"DescribeVpcEndpointConnections": c.describeEndpointConnections,
		"AcceptVpcEndpointConnections":   c.acceptEndpointConnections,
	}
	action := r.Form.Get("Action")
	h, ok := handlers[action]
	if !ok {
		writeEC2Error(w, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service (the local cloud serves %s).", action, strings.Join(sortedKeys(handlers), ", ")))
		return
	}
	e.mu.Lock()
	out, err := h()
	e.mu.Unlock()
	if err != nil {
		code, msg, found := strings.Cut(err.Error(), ": ")
		if !found {
			code, msg = "InvalidParameterValue", err.Error()
		}
		writeEC2Error(w, code, msg)
		return
	}
	var buf strings.Builder
	merr := xml.NewEncoder(&buf).EncodeElement(out, xml.StartElement{Name: xml.Name{Local: "result"}})
	body := []byte(buf.String())
	if merr != nil {
		writeEC2Error(w, "InternalError", merr.Error())
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	_, _ = fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n<%sResponse xmlns=\"%s\"><requestId>%s</requestId>%s</%sResponse>",
		action, ec2Namespace, uuid.NewString(), innerXML(body), action)
}

// innerXML strips the wrapper element xml.Marshal put around a result's fields.
func innerXML(b []byte) string {
	s := string(b)
	start, end := strings.Index(s, ">"), strings.LastIndex(s, "</")
	if start < 0 || end < start || strings.HasSuffix(s[:start], "/") {
		return ""
	}
	return s[start+1 : end]
}

func writeEC2Error(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	status := http.StatusBadRequest
	if code == "UnauthorizedOperation" {
		status = http.StatusForbidden
	}
	w.WriteHeader(status)
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(msg))
	_, _ = fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>%s</RequestID></Response>",
		code, b.String(), uuid.NewString())
}

// list reads a Query list: <prefix>.1, <prefix>.2, ...
func (c *ec2Call) list(prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := c.form[prefix+"."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

// filters reads Filter.N.Name / Filter.N.Value.M.
func (c *ec2Call) filters() map[string][]string {
	out := map[string][]string{}
	for i := 1; ; i++ {
		name := c.form.Get(fmt.Sprintf("Filter.%d.Name", i))
		if name == "" {
			return out
		}
		out[name] = c.list(fmt.Sprintf("Filter.%d.Value", i))
	}
}

func newEC2ID(prefix string) string {
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)[:17]
}

// The XML shapes of EC2's answers.
type (
	ec2Tag struct {
		Key   string `xml:"key"`
		Value string `xml:"value"`
	}
	vpcInfo struct {
		OwnerID   string `xml:"ownerId"`
		VpcID     string `xml:"vpcId"`
		CidrBlock string `xml:"cidrBlock,omitempty"`
		Region    string `xml:"region"`
	}
	peeringStatus struct {
		Code    string `xml:"code"`
		Message string `xml:"message"`
	}
	peeringItem struct {
		VpcPeeringConnectionID string        `xml:"vpcPeeringConnectionId"`
		RequesterVpcInfo       vpcInfo       `xml:"requesterVpcInfo"`
		AccepterVpcInfo        vpcInfo       `xml:"accepterVpcInfo"`
		Status                 peeringStatus `xml:"status"`
		ExpirationTime         string        `xml:"expirationTime,omitempty"`
		Tags                   []ec2Tag      `xml:"tagSet>item"`
	}
	dnsEntry struct {
		DNSName      string `xml:"dnsName"`
		HostedZoneID string `xml:"hostedZoneId"`
	}
	endpointItem struct {
		VpcEndpointID   string     `xml:"vpcEndpointId"`
		VpcEndpointType string     `xml:"vpcEndpointType"`
		VpcID           string     `xml:"vpcId"`
		ServiceName     string     `xml:"serviceName"`
		State           string     `xml:"state"`
		OwnerID         string     `xml:"ownerId"`
		DNSEntries      []dnsEntry `xml:"dnsEntrySet>item"`
		CreationTime    string     `xml:"creationTimestamp"`
	}
	endpointConnectionItem struct {
		ServiceID        string     `xml:"serviceId"`
		VpcEndpointID    string     `xml:"vpcEndpointId"`
		VpcEndpointOwner string     `xml:"vpcEndpointOwner"`
		VpcEndpointState string     `xml:"vpcEndpointState"`
		DNSEntries       []dnsEntry `xml:"dnsEntrySet>item"`
		CreationTime     string     `xml:"creationTimestamp"`
	}
	unsuccessfulItem struct {
		ResourceID string `xml:"resourceId"`
		Error      struct {
			Code    string `xml:"code"`
			Message string `xml:"message"`
		} `xml:"error"`
	}
	routeItem struct {
		DestinationCidrBlock   string `xml:"destinationCidrBlock"`
		VpcPeeringConnectionID string `xml:"vpcPeeringConnectionId"`
		State                  string `xml:"state"`
		Origin                 string `xml:"origin"`
	}
	routeTableItem struct {
		RouteTableID string      `xml:"routeTableId"`
		OwnerID      string      `xml:"ownerId"`
		Routes       []routeItem `xml:"routeSet>item"`
	}
)

func (c *ec2Call) peeringItem(p *peeringConnection) peeringItem {
	status, message := p.statusAt(c.now)
	it := peeringItem{VpcPeeringConnectionID: p.id, Status: peeringStatus{status, message},
		RequesterVpcInfo: vpcInfo{p.requester.Account, p.requester.VpcID, p.requester.CIDR, p.requester.Region},
		AccepterVpcInfo:  vpcInfo{p.accepter.Account, p.accepter.VpcID, p.accepter.CIDR, p.accepter.Region}}
	if status == "pending-acceptance" {
		it.ExpirationTime = p.expires.UTC().Format(time.RFC3339)
	}
	keys := make([]string, 0, len(p.tags))
	for k := range p.tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		it.Tags = append(it.Tags, ec2Tag{k, p.tags[k]})
	}
	return it
}

func (c *ec2Call) createPeering() (any, error) {
	tags := map[string]string{}
	for i := 1; ; i++ {
		prefix := fmt.Sprintf("TagSpecification.%d.", i)
		if c.form.Get(prefix+"ResourceType") == "" {
			break
		}
		for j := 1; ; j++ {
			k := c.form.Get(fmt.Sprintf("%sTag.%d.Key", prefix, j))
			if k == "" {
				break
			}
			tags[k] = c.form.Get(fmt.Sprintf("%sTag.%d.Value", prefix, j))
		}
	}
	vpc, peerVpc := c.form.Get("VpcId"), c.form.Get("PeerVpcId")
	if vpc == "" || peerVpc == "" {
		return nil, fmt.Errorf("MissingParameter: The request must contain the parameters VpcId and PeerVpcId")
	}
	p, err := c.e.net.requestPeering(newEC2ID("pcx-"), c.account, c.region, vpc,
		peeringSide{Account: c.form.Get("PeerOwnerId"), Region: c.form.Get("PeerRegion"), VpcID: peerVpc}, c.now, tags)
	if err != nil {
		return nil, err
	}
	return struct {
		Item peeringItem `xml:"vpcPeeringConnection"`
	}{c.peeringItem(p)}, nil
}

func (c *ec2Call) transition(action string) (any, error) {
	p, err := c.e.net.transition(c.form.Get("VpcPeeringConnectionId"), c.account, action, c.now)
	if err != nil {
		return nil, err
	}
	if action == "accept" {
		return struct {
			Item peeringItem `xml:"vpcPeeringConnection"`
		}{c.peeringItem(p)}, nil
	}
	return struct {
		Return bool `xml:"return"`
	}{true}, nil
}

func (c *ec2Call) describePeerings() (any, error) {
	ids, filters := c.list("VpcPeeringConnectionId"), c.filters()
	var items []peeringItem
	for _, p := range c.e.net.peerings {
		if c.account != p.requester.Account && c.account != p.accepter.Account {
			continue
		}
		if len(ids) > 0 && !slices.Contains(ids, p.id) {
			continue
		}
		it := c.peeringItem(p)
		if !matchPeering(it, p, filters) {
			continue
		}
		items = append(items, it)
	}
	for _, id := range ids {
		if !slices.ContainsFunc(items, func(it peeringItem) bool { return it.VpcPeeringConnectionID == id }) {
			return nil, fmt.Errorf("InvalidVpcPeeringConnectionID.NotFound: The vpcPeeringConnection ID '%s' does not exist", id)
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].VpcPeeringConnectionID < items[j].VpcPeeringConnectionID })
	return struct {
		Items []peeringItem `xml:"vpcPeeringConnectionSet>item"`
	}{items}, nil
}

func matchPeering(it peeringItem, p *peeringConnection, filters map[string][]string) bool {
	for name, values := range filters {
		var v string
		switch {
		case name == "status-code":
			v = it.Status.Code
		case name == "requester-vpc-info.vpc-id":
			v = it.RequesterVpcInfo.VpcID
		case name == "accepter-vpc-info.vpc-id":
			v = it.AccepterVpcInfo.VpcID
		case name == "vpc-peering-connection-id":
			v = it.VpcPeeringConnectionID
		case strings.HasPrefix(name, "tag:"):
			v = p.tags[strings.TrimPrefix(name, "tag:")]
		default:
			return false
		}
		if !slices.Contains(values, v) {
			return false
		}
	}
	return true
}

func (c *ec2Call) describeRouteTables() (any, error) {
	var items []routeTableItem
	for _, id := range c.list("RouteTableId") {
		it := routeTableItem{RouteTableID: id, OwnerID: c.account}
		for _, r := range c.e.net.routesOf(id) {
			if r.account != c.account {
				continue
			}
			it.Routes = append(it.Routes, routeItem{DestinationCidrBlock: r.destination, VpcPeeringConnectionID: r.peering,
				State: c.e.net.routeState(r, c.now), Origin: "CreateRoute"})
		}
		items = append(items, it)
	}
	return struct {
		Items []routeTableItem `xml:"routeTableSet>item"`
	}{items}, nil
}

func (c *ec2Call) serviceNamed(name string) *endpointService {
	for _, s := range c.e.net.services {
		if s.name() == name && s.region == c.region {
			return s
		}
	}
	return nil
}

func (c *ec2Call) endpointItem(ep *endpointRecord) endpointItem {
	svc := c.e.net.services[ep.serviceID]
	name := ""
	if svc != nil {
		name = svc.name()
	}
	return endpointItem{VpcEndpointID: ep.id, VpcEndpointType: "Interface", VpcID: ep.vpcID, ServiceName: name, State: ep.state,
		OwnerID: ep.account, DNSEntries: endpointDNS(ep), CreationTime: ep.created.UTC().Format(time.RFC3339)}
}

func endpointDNS(ep *endpointRecord) []dnsEntry {
	return []dnsEntry{{DNSName: fmt.Sprintf("%s-%s.%s.%s.vpce.amazonaws.com", ep.id, ep.id[len(ep.id)-8:], ep.serviceID, ep.region), HostedZoneID: "Z7HUB22UULQXV"}}
}

// createEndpoint is a consumer creating an interface endpoint to a service: visible only to
// the principals the service allows; pending until its owner accepts when it requires it.
func (c *ec2Call) createEndpoint() (any, error) {
	svc := c.serviceNamed(c.form.Get("ServiceName"))
	if svc == nil || !svc.principalAllowed(c.account) {
		return nil, fmt.Errorf("InvalidServiceName: The Vpc Endpoint Service '%s' does not exist", c.form.Get("ServiceName"))
	}
	if t := c.form.Get("VpcEndpointType"); t != "Interface" {
		return nil, fmt.Errorf("InvalidParameter: VpcEndpointType must be Interface for an endpoint service on a Network Load Balancer, not %q", t)
	}
	vpc, ok := c.e.net.vpcs[c.form.Get("VpcId")]
	if !ok || vpc.account != c.account {
		return nil, fmt.Errorf("InvalidVpcId.NotFound: The Vpc Id '%s' does not exist", c.form.Get("VpcId"))
	}
	state := "available"
	if svc.acceptanceRequired {
		state = "pendingAcceptance"
	}
	ep := &endpointRecord{id: newEC2ID("vpce-"), account: c.account, region: c.region, vpcID: vpc.id, serviceID: svc.id, state: state, created: c.now}
	c.e.net.endpoints[ep.id] = ep
	return struct {
		Item endpointItem `xml:"vpcEndpoint"`
	}{c.endpointItem(ep)}, nil
}

func (c *ec2Call) describeEndpoints() (any, error) {
	ids := c.list("VpcEndpointId")
	var items []endpointItem
	for _, ep := range c.e.net.endpoints {
		if ep.account == c.account && (len(ids) == 0 || slices.Contains(ids, ep.id)) {
			items = append(items, c.endpointItem(ep))
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].VpcEndpointID < items[j].VpcEndpointID })
	return struct {
		Items []endpointItem `xml:"vpcEndpointSet>item"`
	}{items}, nil
}

// describeEndpointConnections is the service owner's view of the endpoints connected to
// its services (filter service-id).
func (c *ec2Call) describeEndpointConnections() (any, error) {
	want := c.filters()["service-id"]
	var items []endpointConnectionItem
	for _, ep := range c.e.net.endpoints {
		svc := c.e.net.services[ep.serviceID]
		if svc == nil || svc.account != c.account || (len(want) > 0 && !slices.Contains(want, svc.id)) {
			continue
		}
		items = append(items, endpointConnectionItem{ServiceID: svc.id, VpcEndpointID: ep.id, VpcEndpointOwner: ep.account,
			VpcEndpointState: ep.state, DNSEntries: endpointDNS(ep), CreationTime: ep.created.UTC().Format(time.RFC3339)})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].VpcEndpointID < items[j].VpcEndpointID })
	return struct {
		Items []endpointConnectionItem `xml:"vpcEndpointConnectionSet>item"`
	}{items}, nil
}

func (c *ec2Call) acceptEndpointConnections() (any, error) {
	svc := c.e.net.services[c.form.Get("ServiceId")]
	if svc == nil || svc.account != c.account {
		return nil, fmt.Errorf("InvalidVpcEndpointServiceId.NotFound: The Vpc Endpoint Service Id '%s' does not exist", c.form.Get("ServiceId"))
	}
	var failed []unsuccessfulItem
	for _, id := range c.list("VpcEndpointId") {
		ep, ok := c.e.net.endpoints[id]
		switch {
		case !ok || ep.serviceID != svc.id:
			var u unsuccessfulItem
			u.ResourceID, u.Error.Code, u.Error.Message = id, "InvalidVpcEndpointId.NotFound", "The Vpc Endpoint Id '"+id+"' does not exist"
			failed = append(failed, u)
		case ep.state == "pendingAcceptance":
			ep.state = "available"
		case ep.state != "available":
			var u unsuccessfulItem
			u.ResourceID, u.Error.Code, u.Error.Message = id, "InvalidState", "Endpoint "+id+" is in state "+ep.state
			failed = append(failed, u)
		}
	}
	return struct {
		Unsuccessful []unsuccessfulItem `xml:"unsuccessful>item"`
	}{failed}, nil
}
