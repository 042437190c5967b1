package cloud

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go"
)

// EC2 is a small client of the EC2 API (Query protocol, 2016-11-15) for the calls byoc makes
// outside CloudFormation: VPC peering connections a customer accepts by hand, and the
// connections of a PrivateLink endpoint service. It is hand-written on purpose:
// aws-sdk-go-v2's service/ec2 package takes 48 s of compile time and 3.2 GB of memory on a
// 2-core machine (measured), for the few operations byoc and its local scenarios use (five in
// the functions, three more by the scenarios playing the customer). It signs with the SDK's
// SigV4 signer and the configuration's credentials, endpoint and HTTP client, and retries
// throttling and 5xx as the SDK would.
type EC2 struct {
	cfg      aws.Config
	endpoint string
	signer   *v4.Signer
}

// NewEC2 returns the client of cfg's region and credentials. The endpoint is cfg's
// BaseEndpoint (AWS_ENDPOINT_URL), AWS_ENDPOINT_URL_EC2, or EC2's regional endpoint.
func NewEC2(cfg aws.Config) *EC2 {
	return &EC2{cfg: cfg, endpoint: endpointOf(cfg, "ec2"), signer: v4.NewSigner()}
}

// endpointOf is where a hand-written client of service sends its calls, as the SDK resolves
// it: AWS_ENDPOINT_URL_<SERVICE>, else the configuration's BaseEndpoint (AWS_ENDPOINT_URL),
// else the service's regional endpoint.
func endpointOf(cfg aws.Config, service string) string {
	endpoint := "https://" + service + "." + cfg.Region + ".amazonaws.com"
	if v := os.Getenv("AWS_ENDPOINT_URL_" + strings.ToUpper(service)); v != "" {
		endpoint = v
	} else if cfg.BaseEndpoint != nil {
		endpoint = *cfg.BaseEndpoint
	}
	return strings.TrimSuffix(endpoint, "/")
}

// EC2Error is an error EC2 answered. It carries the code (ErrorCode, as smithy's errors do)
// and the HTTP status, so IsTransient and the SDK's retry rules classify it.
type EC2Error struct {
	Status  int
	Code    string
	Message string
}

func (e *EC2Error) Error() string        { return fmt.Sprintf("EC2: %s: %s", e.Code, e.Message) }
func (e *EC2Error) ErrorCode() string    { return e.Code }
func (e *EC2Error) ErrorMessage() string { return e.Message }
func (e *EC2Error) HTTPStatusCode() int  { return e.Status }
func (e *EC2Error) ErrorFault() smithy.ErrorFault {
	if e.Status >= 500 {
		return smithy.FaultServer
	}
	return smithy.FaultClient
}

// unsettled is a call whose outcome is unknown (the connection dropped, the answer was cut
// off): retryable, as the SDK's rules say of any error with RetryableError() true.
type unsettled struct{ err error }

func (e *unsettled) Error() string        { return e.err.Error() }
func (e *unsettled) Unwrap() error        { return e.err }
func (e *unsettled) RetryableError() bool { return true }

const ec2Attempts = 3

// call sends one action and decodes its answer into out (the response element's fields),
// retrying what is transient.
func (c *EC2) call(ctx context.Context, action string, params url.Values, out any) error {
	return c.callAttempts(ctx, ec2Attempts, action, params, out)
}

// callAttempts is call with at most attempts tries: 1 for an action EC2 cannot recognise
// as a repeat (no idempotency token), whose retry would make a second resource.
func (c *EC2) callAttempts(ctx context.Context, attempts int, action string, params url.Values, out any) error {
	params.Set("Action", action)
	params.Set("Version", "2016-11-15")
	body := params.Encode()
	var err error
	for attempt := 1; attempt <= attempts; attempt++ {
		if err = c.send(ctx, body, out); err == nil || !IsTransient(err) || attempt == attempts {
			return err
		}
		backoff := time.Duration(rand.Int64N(int64(100*time.Millisecond) << attempt))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
	return err
}

func (c *EC2) send(ctx context.Context, body string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint+"/", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	creds, err := c.cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("EC2: credentials: %w", err)
	}
	sum := sha256.Sum256([]byte(body))
	if err := c.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "ec2", c.cfg.Region, time.Now()); err != nil {
		return err
	}
	client := c.cfg.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return &unsettled{err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return &unsettled{err}
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Code    string `xml:"Errors>Error>Code"`
			Message string `xml:"Errors>Error>Message"`
		}
		_ = xml.Unmarshal(data, &e)
		if e.Code == "" {
			e.Code, e.Message = http.StatusText(resp.StatusCode), strings.TrimSpace(string(data))
		}
		return &EC2Error{Status: resp.StatusCode, Code: e.Code, Message: e.Message}
	}
	if out == nil {
		return nil
	}
	if err := xml.NewDecoder(bytes.NewReader(data)).Decode(out); err != nil {
		return &unsettled{fmt.Errorf("EC2: read the answer: %w", err)}
	}
	return nil
}

// PeeringVpc is one side of a peering connection.
type PeeringVpc struct {
	OwnerID   string `xml:"ownerId"`
	VpcID     string `xml:"vpcId"`
	CidrBlock string `xml:"cidrBlock"`
	Region    string `xml:"region"`
}

// PeeringConnection is a VPC peering connection as EC2 describes it.
type PeeringConnection struct {
	ID             string     `xml:"vpcPeeringConnectionId"`
	Requester      PeeringVpc `xml:"requesterVpcInfo"`
	Accepter       PeeringVpc `xml:"accepterVpcInfo"`
	Status         string     `xml:"status>code"`
	Message        string     `xml:"status>message"`
	ExpirationTime string     `xml:"expirationTime"`
}

// CreatePeering requests a connection from vpcID (the caller's) to the peer's VPC, tagged
// with tags (how a retried step finds the connection its first try made). It is sent once:
// the action has no idempotency token, so the caller looks for the tagged connection before
// asking again.
func (c *EC2) CreatePeering(ctx context.Context, vpcID, peerAccount, peerVpcID, peerRegion string, tags map[string]string) (PeeringConnection, error) {
	p := url.Values{"VpcId": {vpcID}, "PeerVpcId": {peerVpcID}, "PeerOwnerId": {peerAccount}, "PeerRegion": {peerRegion}}
	if len(tags) > 0 {
		p.Set("TagSpecification.1.ResourceType", "vpc-peering-connection")
		i := 1
		for k, v := range tags {
			p.Set(fmt.Sprintf("TagSpecification.1.Tag.%d.Key", i), k)
			p.Set(fmt.Sprintf("TagSpecification.1.Tag.%d.Value", i), v)
			i++
		}
	}
	var out struct {
		Connection PeeringConnection `xml:"vpcPeeringConnection"`
	}
	err := c.callAttempts(ctx, 1, "CreateVpcPeeringConnection", p, &out)
	return out.Connection, err
}

// DescribePeerings lists the connections with the given ids, or those matching filters
// (name -> values) when ids is empty.
func (c *EC2) DescribePeerings(ctx context.Context, ids []string, filters map[string][]string) ([]PeeringConnection, error) {
	p := url.Values{}
	for i, id := range ids {
		p.Set("VpcPeeringConnectionId."+strconv.Itoa(i+1), id)
	}
	addFilters(p, filters)
	var out struct {
		Connections []PeeringConnection `xml:"vpcPeeringConnectionSet>item"`
	}
	err := c.call(ctx, "DescribeVpcPeeringConnections", p, &out)
	return out.Connections, err
}

// AcceptPeering accepts a pending connection (as its accepter account).
func (c *EC2) AcceptPeering(ctx context.Context, id string) error {
	return c.call(ctx, "AcceptVpcPeeringConnection", url.Values{"VpcPeeringConnectionId": {id}}, nil)
}

// RejectPeering rejects a pending connection (as its accepter account).
func (c *EC2) RejectPeering(ctx context.Context, id string) error {
	return c.call(ctx, "RejectVpcPeeringConnection", url.Values{"VpcPeeringConnectionId": {id}}, nil)
}

// DeletePeering deletes a connection (either side).
func (c *EC2) DeletePeering(ctx context.Context, id string) error {
	return c.call(ctx, "DeleteVpcPeeringConnection", url.Values{"VpcPeeringConnectionId": {id}}, nil)
}

// DNSEntry is one DNS name of an interface endpoint.
type DNSEntry struct {
	DNSName string `xml:"dnsName"`
}

// EndpointConnection is an interface endpoint connected to an endpoint service, as its
// owner sees it.
type EndpointConnection struct {
	ServiceID     string     `xml:"serviceId"`
	VpcEndpointID string     `xml:"vpcEndpointId"`
	Owner         string     `xml:"vpcEndpointOwner"`
	State         string     `xml:"vpcEndpointState"`
	DNSEntries    []DNSEntry `xml:"dnsEntrySet>item"`
}

// DescribeEndpointConnections lists the endpoints connected to serviceID.
func (c *EC2) DescribeEndpointConnections(ctx context.Context, serviceID string) ([]EndpointConnection, error) {
	p := url.Values{}
	addFilters(p, map[string][]string{"service-id": {serviceID}})
	var out struct {
		Connections []EndpointConnection `xml:"vpcEndpointConnectionSet>item"`
	}
	err := c.call(ctx, "DescribeVpcEndpointConnections", p, &out)
	return out.Connections, err
}

// AcceptEndpointConnections accepts pending endpoint connections to serviceID; the answer
// names the endpoints EC2 could not accept and why.
func (c *EC2) AcceptEndpointConnections(ctx context.Context, serviceID string, endpointIDs []string) (map[string]string, error) {
	p := url.Values{"ServiceId": {serviceID}}
	for i, id := range endpointIDs {
		p.Set("VpcEndpointId."+strconv.Itoa(i+1), id)
	}
	var out struct {
		Unsuccessful []struct {
			ResourceID string `xml:"resourceId"`
			Message    string `xml:"error>message"`
		} `xml:"unsuccessful>item"`
	}
	if err := c.call(ctx, "AcceptVpcEndpointConnections", p, &out); err != nil {
		return nil, err
	}
	failed := map[string]string{}
	for _, u := range out.Unsuccessful {
		failed[u.ResourceID] = u.Message
	}
	return failed, nil
}

// Endpoint is an interface endpoint as its owner (the consumer) sees it.
type Endpoint struct {
	ID         string     `xml:"vpcEndpointId"`
	State      string     `xml:"state"`
	DNSEntries []DNSEntry `xml:"dnsEntrySet>item"`
}

// CreateInterfaceEndpoint creates an interface endpoint in vpcID to the service named
// serviceName (as the consumer account).
func (c *EC2) CreateInterfaceEndpoint(ctx context.Context, vpcID, serviceName string) (Endpoint, error) {
	var out struct {
		Endpoint Endpoint `xml:"vpcEndpoint"`
	}
	err := c.call(ctx, "CreateVpcEndpoint", url.Values{"VpcId": {vpcID}, "ServiceName": {serviceName}, "VpcEndpointType": {"Interface"}}, &out)
	return out.Endpoint, err
}

// Route is a route of a route table.
type Route struct {
	Destination string `xml:"destinationCidrBlock"`
	PeeringID   string `xml:"vpcPeeringConnectionId"`
	State       string `xml:"state"`
}

// RouteTableRoutes returns the routes of a route table.
func (c *EC2) RouteTableRoutes(ctx context.Context, routeTableID string) ([]Route, error) {
	var out struct {
		Tables []struct {
			Routes []Route `xml:"routeSet>item"`
		} `xml:"routeTableSet>item"`
	}
	if err := c.call(ctx, "DescribeRouteTables", url.Values{"RouteTableId.1": {routeTableID}}, &out); err != nil {
		return nil, err
	}
	if len(out.Tables) == 0 {
		return nil, nil
	}
	return out.Tables[0].Routes, nil
}

func addFilters(p url.Values, filters map[string][]string) {
	i := 1
	for name, values := range filters {
		p.Set(fmt.Sprintf("Filter.%d.Name", i), name)
		for j, v := range values {
			p.Set(fmt.Sprintf("Filter.%d.Value.%d", i, j+1), v)
		}
		i++
	}
}
