package cfnengine

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	"github.com/byocloud/byoc/infra/local/accounts"
	"github.com/byocloud/byoc/shared/cloud"
)

// jumpClock is real time plus an offset the test moves forward.
type jumpClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *jumpClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}
func (c *jumpClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
func (c *jumpClock) jump(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

const peerAccount = "222222222222"

func (f *fixture) ec2(account string) *cloud.EC2 {
	return cloud.NewEC2(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(f.url),
		Credentials: credentials.StaticCredentialsProvider{Value: accounts.AdminCredentials(account)}})
}

// stack creates a stack from resources in account, waits, and returns its status, reason
// and outputs.
func (f *fixture) stack(t *testing.T, account, name string, resources, outputs map[string]any) (string, string, map[string]string) {
	t.Helper()
	tpl := map[string]any{"Resources": resources}
	if outputs != nil {
		tpl["Outputs"] = outputs
	}
	body, _ := json.Marshal(tpl)
	_, err := f.cfn(accounts.AdminCredentials(account)).CreateStack(context.Background(), &cloudformation.CreateStackInput{
		StackName: aws.String(name), TemplateBody: aws.String(string(body)), Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityNamedIam},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	s := f.describe(t, f.cfn(accounts.AdminCredentials(account)), name)
	reason := ""
	for _, ev := range f.observedEvents() {
		if ev.StackName == name && strings.HasSuffix(ev.ResourceStatus, "_FAILED") {
			reason = ev.ResourceStatusReason
		}
	}
	return string(s.StackStatus), reason, outputsOf(s)
}

func vpc(cidr string) map[string]any {
	return map[string]any{"Vpc": map[string]any{"Type": "AWS::EC2::VPC", "Properties": map[string]any{"CidrBlock": cidr}},
		"Table": map[string]any{"Type": "AWS::EC2::RouteTable", "Properties": map[string]any{"VpcId": map[string]any{"Ref": "Vpc"}}}}
}

var vpcOutputs = map[string]any{"Vpc": map[string]any{"Value": map[string]any{"Ref": "Vpc"}}, "Table": map[string]any{"Value": map[string]any{"Ref": "Table"}}}

func peeringStack(vpcID, peerVpc, roleArn string, routeTable string) map[string]any {
	props := map[string]any{"VpcId": vpcID, "PeerVpcId": peerVpc, "PeerOwnerId": peerAccount}
	if roleArn != "" {
		props["PeerRoleArn"] = roleArn
	}
	return map[string]any{
		"Peering": map[string]any{"Type": "AWS::EC2::VPCPeeringConnection", "Properties": props},
		"Route": map[string]any{"Type": "AWS::EC2::Route", "Properties": map[string]any{"RouteTableId": routeTable,
			"DestinationCidrBlock": "10.1.0.0/16", "VpcPeeringConnectionId": map[string]any{"Ref": "Peering"}}},
	}
}

func accepterRole(name, trusted, vpcID string) map[string]any {
	return map[string]any{"Role": map[string]any{"Type": "AWS::IAM::Role", "Properties": map[string]any{
		"RoleName": name,
		"AssumeRolePolicyDocument": map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
			"Effect": "Allow", "Principal": map[string]any{"AWS": "arn:aws:iam::" + trusted + ":root"}, "Action": "sts:AssumeRole"}}},
		"Policies": []any{map[string]any{"PolicyName": "accept", "PolicyDocument": map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
			"Effect": "Allow", "Action": "ec2:AcceptVpcPeeringConnection", "Resource": "arn:aws:ec2:us-east-1:" + peerAccount + ":vpc-peering-connection/*",
			"Condition": map[string]any{"StringEquals": map[string]any{"ec2:AccepterVpc": "arn:aws:ec2:us-east-1:" + peerAccount + ":vpc/" + vpcID}}}}}}},
	}}}
}

// TestPeeringThroughCloudFormation: a cross-account VPCPeeringConnection needs PeerRoleArn,
// a role the requester may assume that may accept; overlapping CIDRs fail; with the role the
// connection is active and its routes too.
func TestPeeringThroughCloudFormation(t *testing.T) {
	f := newFixture(t)
	_, _, byoc := f.stack(t, customer, "byoc-vpc", vpc("10.0.0.0/16"), vpcOutputs)
	_, _, app := f.stack(t, peerAccount, "app-vpc", vpc("10.1.0.0/16"), vpcOutputs)
	_, _, clash := f.stack(t, peerAccount, "clash-vpc", vpc("10.0.128.0/17"), vpcOutputs)

	status, reason, _ := f.stack(t, customer, "no-role", peeringStack(byoc["Vpc"], app["Vpc"], "", byoc["Table"]), nil)
	if status != "ROLLBACK_COMPLETE" || !strings.Contains(reason, "failed to stabilize") || !strings.Contains(reason, "PeerRoleArn") {
		t.Errorf("without PeerRoleArn: %s %q, want ROLLBACK_COMPLETE failing to stabilize for want of PeerRoleArn", status, reason)
	}
	f.stack(t, peerAccount, "accepter", accepterRole("accepter", customer, app["Vpc"]), nil)
	f.stack(t, peerAccount, "stranger", accepterRole("stranger", "333333333333", app["Vpc"]), nil)
	role := "arn:aws:iam::" + peerAccount + ":role/accepter"

	status, reason, _ = f.stack(t, customer, "clash", peeringStack(byoc["Vpc"], clash["Vpc"], role, byoc["Table"]), nil)
	if status != "ROLLBACK_COMPLETE" || !strings.Contains(reason, "Overlapping CIDR range") {
		t.Errorf("overlapping CIDRs: %s %q", status, reason)
	}
	status, reason, _ = f.stack(t, customer, "untrusted", peeringStack(byoc["Vpc"], app["Vpc"], "arn:aws:iam::"+peerAccount+":role/stranger", byoc["Table"]), nil)
	if status != "ROLLBACK_COMPLETE" || !strings.Contains(reason, "cannot assume") {
		t.Errorf("a role that does not trust the requester: %s %q", status, reason)
	}
	status, reason, _ = f.stack(t, customer, "peered", peeringStack(byoc["Vpc"], app["Vpc"], role, byoc["Table"]), nil)
	if status != "CREATE_COMPLETE" {
		t.Fatalf("with the accepter role: %s %q", status, reason)
	}
	pcx, err := f.ec2(peerAccount).DescribePeerings(context.Background(), nil, map[string][]string{"status-code": {"active"}})
	if err != nil || len(pcx) != 1 || pcx[0].Accepter.VpcID != app["Vpc"] || pcx[0].Requester.CidrBlock != "10.0.0.0/16" {
		t.Fatalf("the accepter sees %+v, %v; want one active connection from the BYOC VPC", pcx, err)
	}
	routes, err := f.ec2(customer).RouteTableRoutes(context.Background(), byoc["Table"])
	if err != nil || len(routes) != 1 || routes[0].State != "active" || routes[0].PeeringID != pcx[0].ID {
		t.Errorf("routes %+v, %v; want one active route through %s", routes, err, pcx[0].ID)
	}
	if _, err := f.cfn(accounts.AdminCredentials(customer)).DeleteStack(context.Background(), &cloudformation.DeleteStackInput{StackName: aws.String("peered")}); err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	if got, _ := f.ec2(customer).DescribePeerings(context.Background(), []string{pcx[0].ID}, nil); len(got) != 1 || got[0].Status != "deleted" {
		t.Errorf("after the stack's deletion the connection is %+v, want deleted", got)
	}
}

// TestPeeringThroughTheAPI: a request waits for its accepter account (only it may accept),
// a route to it is a blackhole until then, an unaccepted request expires after seven days,
// and a rejected one stays rejected.
func TestPeeringThroughTheAPI(t *testing.T) {
	clock := &jumpClock{}
	f := newFixture(t, func(c *Config) { c.Clock = clock })
	ctx := context.Background()
	_, _, byoc := f.stack(t, customer, "byoc-vpc", vpc("10.0.0.0/16"), vpcOutputs)
	_, _, app := f.stack(t, peerAccount, "app-vpc", vpc("10.1.0.0/16"), vpcOutputs)
	requester, accepter := f.ec2(customer), f.ec2(peerAccount)

	if _, err := accepter.CreatePeering(ctx, byoc["Vpc"], peerAccount, app["Vpc"], "us-east-1", nil); cloud.ErrorCode(err) != "InvalidVpcID.NotFound" {
		t.Errorf("requesting from another account's VPC: %v, want InvalidVpcID.NotFound", err)
	}
	p, err := requester.CreatePeering(ctx, byoc["Vpc"], peerAccount, app["Vpc"], "us-east-1", map[string]string{"byoc:peering": "d1/" + app["Vpc"]})
	if err != nil || p.Status != "pending-acceptance" || p.ExpirationTime == "" {
		t.Fatalf("CreatePeering: %+v, %v", p, err)
	}
	routeBody := map[string]any{"Route": map[string]any{"Type": "AWS::EC2::Route", "Properties": map[string]any{"RouteTableId": byoc["Table"],
		"DestinationCidrBlock": "10.1.0.0/16", "VpcPeeringConnectionId": p.ID}}}
	f.stack(t, customer, "routes", routeBody, nil)
	if routes, _ := requester.RouteTableRoutes(ctx, byoc["Table"]); len(routes) != 1 || routes[0].State != "blackhole" {
		t.Errorf("a route to a pending connection: %+v, want a blackhole", routes)
	}
	if err := requester.AcceptPeering(ctx, p.ID); cloud.ErrorCode(err) != "OperationNotPermitted" {
		t.Errorf("the requester accepting its own request: %v, want OperationNotPermitted", err)
	}
	found, err := requester.DescribePeerings(ctx, nil, map[string][]string{"tag:byoc:peering": {"d1/" + app["Vpc"]}})
	if err != nil || len(found) != 1 || found[0].ID != p.ID {
		t.Errorf("found by tag: %+v, %v", found, err)
	}
	if err := accepter.AcceptPeering(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if routes, _ := requester.RouteTableRoutes(ctx, byoc["Table"]); len(routes) != 1 || routes[0].State != "active" {
		t.Errorf("a route to the accepted connection: %+v, want active", routes)
	}

	late, _ := requester.CreatePeering(ctx, byoc["Vpc"], peerAccount, app["Vpc"], "us-east-1", nil)
	rejected, _ := requester.CreatePeering(ctx, byoc["Vpc"], peerAccount, app["Vpc"], "us-east-1", nil)
	if err := accepter.RejectPeering(ctx, rejected.ID); err != nil {
		t.Fatal(err)
	}
	clock.jump(PendingAcceptanceLifetime)
	got, err := requester.DescribePeerings(ctx, []string{late.ID, rejected.ID, p.ID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, c := range got {
		status[c.ID] = c.Status
	}
	if status[late.ID] != "expired" || status[rejected.ID] != "rejected" || status[p.ID] != "active" {
		t.Errorf("after seven days: %v, want the unanswered request expired, the rejected one rejected, the accepted one active", status)
	}
	if err := accepter.AcceptPeering(ctx, late.ID); cloud.ErrorCode(err) != "InvalidStateTransition" {
		t.Errorf("accepting an expired request: %v, want InvalidStateTransition", err)
	}
	if _, err := f.ec2("333333333333").DescribePeerings(ctx, []string{p.ID}, nil); cloud.ErrorCode(err) != "InvalidVpcPeeringConnectionID.NotFound" {
		t.Errorf("a third account describing the connection: %v, want NotFound", err)
	}

	// A second opinion on the answers' shape: the AWS CLI (botocore, from EC2's own model)
	// reads them.
	if _, err := exec.LookPath("aws"); err == nil {
		cmd := exec.Command("aws", "ec2", "describe-vpc-peering-connections", "--vpc-peering-connection-ids", p.ID, "--endpoint-url", f.url,
			"--region", "us-east-1", "--output", "json")
		cmd.Env = append(cmd.Environ(), "AWS_ACCESS_KEY_ID="+peerAccount, "AWS_SECRET_ACCESS_KEY=local", "AWS_SESSION_TOKEN=")
		out, err := cmd.CombinedOutput()
		var v struct {
			VpcPeeringConnections []struct {
				VpcPeeringConnectionId string
				Status                 struct{ Code string }
				AccepterVpcInfo        struct{ OwnerId, VpcId, CidrBlock string }
			}
		}
		if err != nil || json.Unmarshal(out, &v) != nil || len(v.VpcPeeringConnections) != 1 || v.VpcPeeringConnections[0].Status.Code != "active" ||
			v.VpcPeeringConnections[0].AccepterVpcInfo.CidrBlock != "10.1.0.0/16" {
			t.Errorf("aws ec2 describe-vpc-peering-connections: %v\n%s", err, out)
		}
	}
}

// TestEndpointService: only the principals a service allows see it; their endpoints wait
// for the owner's acceptance.
func TestEndpointService(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, _, app := f.stack(t, peerAccount, "app-vpc", vpc("10.1.0.0/16"), vpcOutputs)
	f.stack(t, "333333333333", "stranger-vpc", vpc("10.2.0.0/16"), vpcOutputs)
	_, _, svc := f.stack(t, customer, "privatelink", map[string]any{
		"Service": map[string]any{"Type": "AWS::EC2::VPCEndpointService", "Properties": map[string]any{"AcceptanceRequired": true,
			"NetworkLoadBalancerArns": []any{"arn:aws:elasticloadbalancing:us-east-1:" + customer + ":loadbalancer/net/private/abc"}}},
		"Allowed": map[string]any{"Type": "AWS::EC2::VPCEndpointServicePermissions", "Properties": map[string]any{
			"ServiceId": map[string]any{"Ref": "Service"}, "AllowedPrincipals": []any{"arn:aws:iam::" + peerAccount + ":root"}}},
	}, map[string]any{"Service": map[string]any{"Value": map[string]any{"Ref": "Service"}}})
	name := "com.amazonaws.vpce.us-east-1." + svc["Service"]
	if _, err := f.ec2("333333333333").CreateInterfaceEndpoint(ctx, "vpc-x", name); cloud.ErrorCode(err) != "InvalidServiceName" {
		t.Errorf("a principal the service does not allow: %v, want InvalidServiceName", err)
	}
	ep, err := f.ec2(peerAccount).CreateInterfaceEndpoint(ctx, app["Vpc"], name)
	if err != nil || ep.State != "pendingAcceptance" {
		t.Fatalf("endpoint %+v, %v", ep, err)
	}
	owner := f.ec2(customer)
	conns, err := owner.DescribeEndpointConnections(ctx, svc["Service"])
	if err != nil || len(conns) != 1 || conns[0].VpcEndpointID != ep.ID || conns[0].Owner != peerAccount || conns[0].State != "pendingAcceptance" {
		t.Fatalf("connections %+v, %v", conns, err)
	}
	failed, err := owner.AcceptEndpointConnections(ctx, svc["Service"], []string{ep.ID, "vpce-00000000000000000"})
	if err != nil || len(failed) != 1 || failed["vpce-00000000000000000"] == "" {
		t.Errorf("accept: %v, %v; want only the unknown endpoint refused", failed, err)
	}
	if conns, _ := owner.DescribeEndpointConnections(ctx, svc["Service"]); len(conns) != 1 || conns[0].State != "available" || len(conns[0].DNSEntries) == 0 {
		t.Errorf("after acceptance: %+v", conns)
	}
}
