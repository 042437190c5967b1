package stacks

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/byocloud/byoc/shared/connectivity"
	"github.com/byocloud/byoc/shared/contract"
)

// Construct ids and template names of the connectivity stacks.
const (
	PeeringStackID     = "ByocPeering"     // per peering, in the BYOC account (byoc creates it)
	PrivateLinkStackID = "ByocPrivateLink" // the endpoint service, in the BYOC account (byoc creates it)
	PeerAccessStackID  = "ByocPeerAccess"  // in the peer VPC's account (the customer applies it)
)

var (
	vpcIDPattern = `^vpc-([0-9a-f]{8}|[0-9a-f]{17})$`
	pcxPattern   = `^(pcx-([0-9a-f]{8}|[0-9a-f]{17}))?$`
	cidrOrEmpty  = `^((\d{1,3}\.){3}\d{1,3}/\d{1,2})?$`
	accountRule  = `^\d{12}$`
)

// emptyParam declares a String parameter defaulting to empty and returns its plain value,
// for conditions that test it (optionalParam's value is already conditional).
func emptyParam(stack awscdk.Stack, name, description, pattern, rule string) *string {
	return awscdk.NewCfnParameter(stack, jsii.String(name), &awscdk.CfnParameterProps{
		Type: jsii.String("String"), Description: jsii.String(description), Default: jsii.String(""),
		AllowedPattern: jsii.String(pattern), ConstraintDescription: jsii.String("must be " + rule),
	}).ValueAsString()
}

// NewPeeringStack is one VPC peering in the BYOC account: the connection (unless the
// customer accepts it by hand, when byoc made it outside CloudFormation and passes its id),
// a route to each peer CIDR in every private route table, and ingress from each peer CIDR to
// the private load balancer on the ClickHouse ports, on byoc's own security group of the
// load balancer (the infrastructure stack's; the agent attaches it to the NLB). A template has no loops, so the peer
// CIDRs are five optional parameters (a VPC's limit) with a condition each.
func NewPeeringStack(scope constructs.Construct, id string) awscdk.Stack {
	s := awscdk.NewStack(scope, jsii.String(id), customerStackProps("byoc VPC peering: the connection, routes and load balancer ingress for one peer VPC"))
	vpc := param(s, contract.PeeringParamVpcID, "The BYOC VPC", vpcIDPattern, "a VPC id", "")
	peerVpc := param(s, contract.PeeringParamPeerVpcID, "The peer VPC", vpcIDPattern, "a VPC id", "")
	peerAccount := param(s, contract.PeeringParamPeerAccountID, "The peer VPC's account", accountRule, "a 12-digit account id", "")
	peerRegion := param(s, contract.PeeringParamPeerRegion, "The peer VPC's region", `^[a-z]{2}(-[a-z]+)+-\d$`, "a region", "")
	peerRole := optionalParam(s, contract.PeeringParamPeerRoleArn, "Accepter role in the peer account (CloudFormation accepts with it); empty when ConnectionId is given",
		`^(arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+)?$`, "an IAM role ARN or empty")
	existing := emptyParam(s, contract.PeeringParamConnectionID, "An accepted connection made outside CloudFormation; empty: the stack creates it", pcxPattern, "a peering connection id or empty")
	tables := awscdk.NewCfnParameter(s, jsii.String(contract.PeeringParamRouteTableIDs), &awscdk.CfnParameterProps{
		Type: jsii.String("CommaDelimitedList"), Description: jsii.String("The three private route tables of the BYOC VPC"),
	})
	sg := param(s, contract.PeeringParamSecurityGroupID, "byoc's security group of the private load balancer (the infrastructure stack's)", `^sg-([0-9a-f]{8}|[0-9a-f]{17})$`, "a security group id", "")

	create := awscdk.NewCfnCondition(s, jsii.String("CreateConnection"), &awscdk.CfnConditionProps{
		Expression: awscdk.Fn_ConditionEquals(existing, jsii.String(""))})
	conn := awsec2.NewCfnVPCPeeringConnection(s, jsii.String("Connection"), &awsec2.CfnVPCPeeringConnectionProps{
		VpcId: vpc, PeerVpcId: peerVpc, PeerOwnerId: peerAccount, PeerRegion: peerRegion, PeerRoleArn: peerRole,
		Tags: &[]*awscdk.CfnTag{{Key: jsii.String("Name"), Value: awscdk.Fn_Sub(jsii.String("byoc peering with ${"+contract.PeeringParamPeerVpcID+"}"), nil)}},
	})
	conn.CfnOptions().SetCondition(create)
	connectionID := awscdk.Token_AsString(awscdk.Fn_ConditionIf(jsii.String("CreateConnection"), conn.Ref(), existing), nil)

	for n, name := range contract.PeeringParamPeerCidrs {
		cidr := emptyParam(s, name, fmt.Sprintf("Peer CIDR %d (empty: unused)", n+1), cidrOrEmpty, "an IPv4 CIDR or empty")
		has := awscdk.NewCfnCondition(s, jsii.String(fmt.Sprintf("HasPeerCidr%d", n+1)), &awscdk.CfnConditionProps{
			Expression: awscdk.Fn_ConditionNot(awscdk.Fn_ConditionEquals(cidr, jsii.String("")))})
		for t := range 3 {
			route := awsec2.NewCfnRoute(s, jsii.String(fmt.Sprintf("Route%dTable%d", n+1, t+1)), &awsec2.CfnRouteProps{
				RouteTableId: awscdk.Fn_Select(jsii.Number(t), tables.ValueAsList()), DestinationCidrBlock: cidr, VpcPeeringConnectionId: connectionID,
			})
			route.CfnOptions().SetCondition(has)
		}
		for _, port := range connectivity.ClickHousePorts {
			in := awsec2.NewCfnSecurityGroupIngress(s, jsii.String(fmt.Sprintf("Ingress%dPort%d", n+1, port)), &awsec2.CfnSecurityGroupIngressProps{
				GroupId: sg, IpProtocol: jsii.String("tcp"), FromPort: jsii.Number(port), ToPort: jsii.Number(port), CidrIp: cidr,
				Description: awscdk.Fn_Sub(jsii.String(fmt.Sprintf("ClickHouse port %d from peer VPC ${%s}", port, contract.PeeringParamPeerVpcID)), nil),
			})
			in.CfnOptions().SetCondition(has)
		}
	}
	output(s, contract.PeeringOutputConnectionID, connectionID)
	return s
}

// NewPrivateLinkStack is the deployment's VPC endpoint service on the private load balancer:
// a connection waits for byoc's acceptance (only endpoints the customer registered are
// accepted), and only the accounts the customer named may connect.
func NewPrivateLinkStack(scope constructs.Construct, id string) awscdk.Stack {
	s := awscdk.NewStack(scope, jsii.String(id), customerStackProps("byoc PrivateLink: the endpoint service of the deployment's private load balancer"))
	nlb := param(s, contract.PrivateLinkParamLoadBalancer, "The private Network Load Balancer",
		`^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:loadbalancer/net/[\w-]+/[0-9a-f]+$`, "a Network Load Balancer ARN", "")
	principals := awscdk.NewCfnParameter(s, jsii.String(contract.PrivateLinkParamPrincipals), &awscdk.CfnParameterProps{
		Type: jsii.String("CommaDelimitedList"), Description: jsii.String("Principals allowed to connect (arn:aws:iam::<account>:root)"),
	})
	svc := awsec2.NewCfnVPCEndpointService(s, jsii.String("Service"), &awsec2.CfnVPCEndpointServiceProps{
		AcceptanceRequired: jsii.Bool(true), NetworkLoadBalancerArns: &[]any{nlb},
	})
	awsec2.NewCfnVPCEndpointServicePermissions(s, jsii.String("Permissions"), &awsec2.CfnVPCEndpointServicePermissionsProps{
		ServiceId: svc.Ref(), AllowedPrincipals: principals.ValueAsList(),
	})
	output(s, contract.PrivateLinkOutputServiceID, svc.Ref())
	output(s, contract.PrivateLinkOutputServiceName, awscdk.Fn_Sub(jsii.String("com.amazonaws.vpce.${AWS::Region}.${Service}"), nil))
	return s
}

// NewPeerAccessStack is what the customer applies in the peer VPC's account: a role the BYOC
// account's management role may assume only to accept peering connections into that VPC
// (CloudFormation accepts with it), and, once given the connection id, the routes from the
// peer VPC's route tables to the BYOC VPC.
func NewPeerAccessStack(scope constructs.Construct, id string) awscdk.Stack {
	s := awscdk.NewStack(scope, jsii.String(id), customerStackProps("byoc peer access: lets a BYOC deployment peer with a VPC of this account (stack name "+contract.PeerAccessStackName+"-<VPC id>)"))
	param(s, contract.PeerAccessParamByocAccountID, "The BYOC deployment's account", accountRule, "a 12-digit account id", "")
	param(s, contract.PeerAccessParamPeerVpcID, "The VPC of this account to peer with", vpcIDPattern, "a VPC id", "")
	conn := emptyParam(s, contract.PeerAccessParamConnectionID, "The active peering connection (after acceptance); empty: no routes yet", pcxPattern, "a peering connection id or empty")
	byocCidr := emptyParam(s, contract.PeerAccessParamByocCidr, "The BYOC VPC's CIDR (the routes' destination)", cidrOrEmpty, "an IPv4 CIDR or empty")

	role := awsiam.NewCfnRole(s, jsii.String("AccepterRole"), &awsiam.CfnRoleProps{
		RoleName:    awscdk.Fn_Sub(jsii.String(contract.PeerAccepterRolePrefix+"${"+contract.PeerAccessParamPeerVpcID+"}"), nil),
		Description: jsii.String("Assumed by the BYOC deployment's management role (through CloudFormation) only to accept its peering into this VPC"),
		AssumeRolePolicyDocument: trustDocument(map[string]any{"AWS": sub("arn:${AWS::Partition}:iam::${" + contract.PeerAccessParamByocAccountID + "}:root")},
			[]string{"sts:AssumeRole"}, map[string]any{"ArnEquals": map[string]any{
				"aws:PrincipalArn": sub("arn:${AWS::Partition}:iam::${" + contract.PeerAccessParamByocAccountID + "}:role/" + contract.ManagementRoleName)}}),
		Policies: &[]any{&awsiam.CfnRole_PolicyProperty{PolicyName: jsii.String("AcceptPeeringIntoThisVpc"), PolicyDocument: policyDocument(grant{
			sid:       "AcceptPeeringIntoThisVpc",
			actions:   []string{"ec2:AcceptVpcPeeringConnection"},
			resources: []string{sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:vpc-peering-connection/*")},
			conditions: map[string]any{"StringEquals": map[string]any{
				"ec2:AccepterVpc": sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:vpc/${" + contract.PeerAccessParamPeerVpcID + "}")}},
		})}},
	})
	hasConn := awscdk.NewCfnCondition(s, jsii.String("HasConnection"), &awscdk.CfnConditionProps{
		Expression: awscdk.Fn_ConditionAnd(awscdk.Fn_ConditionNot(awscdk.Fn_ConditionEquals(conn, jsii.String(""))),
			awscdk.Fn_ConditionNot(awscdk.Fn_ConditionEquals(byocCidr, jsii.String(""))))})
	for n, name := range contract.PeerAccessParamRouteTables {
		table := emptyParam(s, name, fmt.Sprintf("Route table %d of the peer VPC to route to the BYOC VPC (empty: unused)", n+1),
			`^(rtb-([0-9a-f]{8}|[0-9a-f]{17}))?$`, "a route table id or empty")
		cond := awscdk.NewCfnCondition(s, jsii.String(fmt.Sprintf("RoutesTable%d", n+1)), &awscdk.CfnConditionProps{
			Expression: awscdk.Fn_ConditionAnd(hasConn, awscdk.Fn_ConditionNot(awscdk.Fn_ConditionEquals(table, jsii.String(""))))})
		r := awsec2.NewCfnRoute(s, jsii.String(fmt.Sprintf("RouteToByoc%d", n+1)), &awsec2.CfnRouteProps{
			RouteTableId: table, DestinationCidrBlock: byocCidr, VpcPeeringConnectionId: conn,
		})
		r.CfnOptions().SetCondition(cond)
	}
	output(s, contract.PeerAccessOutputRoleArn, role.AttrArn())
	return s
}
