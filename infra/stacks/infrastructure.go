package stacks

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseks"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/byocloud/byoc/shared/contract"
)

// InfrastructureStackID is the construct id and template name (cdk.out/ByocInfrastructure.template.json)
// of the BYOC infrastructure: one stack per customer account and region, created by the
// provision step through the customer's management role.
const InfrastructureStackID = "ByocInfrastructure"

// Fixed choices of the infrastructure template (reference behaviour: "3 m5.xlarge nodes in a dedicated node
// group, one per AZ").
const (
	systemNodeInstanceType   = "m5.xlarge"
	systemNodeAmiType        = "AL2023_x86_64_STANDARD"
	systemNodeMaxSize        = 3 // the cluster autoscaler may grow each zone's group this far
	defaultKubernetesVersion = "1.33"
)

// Managed add-ons. The ones a node needs to become Ready are created before the node groups;
// the ones that run Deployments need nodes to become ACTIVE, so they follow the node groups.
var (
	addonsBeforeNodes = []string{"vpc-cni", "kube-proxy", "eks-pod-identity-agent"}
	addonsAfterNodes  = []string{"coredns", "aws-ebs-csi-driver"}
)

// Infrastructure is the synthesized BYOC infrastructure stack with the constructs tests and
// nag suppressions refer to.
type Infrastructure struct {
	Stack   awscdk.Stack
	Cluster awseks.CfnCluster
	Bucket  awss3.CfnBucket
	Roles   map[string]awsiam.CfnRole // by clusterRole.Suffix
}

// NewInfrastructureStack builds the parameterized infrastructure template. Every
// deployment-specific value is a parameter, so one template serves every customer; the
// provision Lambda computes the parameters. Only L1 constructs are used: the EKS L2 construct
// would add kubectl Lambda layers and custom resources, which a plain template cannot carry.
func NewInfrastructureStack(scope constructs.Construct, id string) *Infrastructure {
	stack := awscdk.NewStack(scope, jsii.String(id), customerStackProps(
		"byoc BYOC infrastructure: VPC, S3 bucket, EKS cluster and the IAM roles of the in-cluster components"))
	b := &infraBuilder{stack: stack, infra: &Infrastructure{Stack: stack, Roles: map[string]awsiam.CfnRole{}}}
	b.parameters()
	b.network()
	b.bucket()
	b.roles()
	b.cluster()
	return b.infra
}

type infraBuilder struct {
	stack awscdk.Stack
	infra *Infrastructure

	stateQueueArn                      *string
	kubernetesVersion                  *string
	nodeKubernetesVersion              *string
	nodeReleaseVersion                 *string // the parameter, or AWS::NoValue when it is empty
	zoneIDs, privateCIDRs, publicCIDRs [3]*string

	vpc                  awsec2.CfnVPC
	privateSubnets       [3]awsec2.CfnSubnet
	publicSubnets        [3]awsec2.CfnSubnet
	privateRouteTables   [3]awsec2.CfnRouteTable
	privateDefaultRoutes [3]awsec2.CfnRoute
}

// Names every resource derives from the two identity parameters.
var (
	clusterNameSub = fmt.Sprintf("${%s}-${%s}", contract.InfraParamResourcePrefix, contract.InfraParamDeploymentID)
)

func (b *infraBuilder) parameters() {
	cidr := `^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}/(1[6-9]|2[0-8])$`
	cidrRule := "an IPv4 CIDR block with a /16 to /28 prefix"
	param(b.stack, contract.InfraParamDeploymentID, "Deployment id: names the cluster, bucket and roles", deploymentIDPattern, deploymentIDRule, "")
	param(b.stack, contract.InfraParamResourcePrefix, "Prefix of every resource name; the management role may only touch resources with this prefix",
		resourcePrefixPattern, resourcePrefixRule, contract.DefaultPrefix)
	param(b.stack, contract.InfraParamVpcCidr, "CIDR block of the BYOC VPC", cidr, cidrRule, "")
	for i := range 3 {
		b.zoneIDs[i] = param(b.stack, contract.InfraParamZoneIDs[i], fmt.Sprintf("Availability zone ID of zone %d (e.g. use1-az1)", i+1),
			`^[a-z]{2,5}\d+-az\d+$`, "an availability zone ID such as use1-az1", "")
		b.privateCIDRs[i] = param(b.stack, contract.InfraParamPrivateSubnetCidrs[i], fmt.Sprintf("Private subnet CIDR in zone %d", i+1), cidr, cidrRule, "")
		b.publicCIDRs[i] = param(b.stack, contract.InfraParamPublicSubnetCidrs[i], fmt.Sprintf("Public subnet CIDR in zone %d", i+1), cidr, cidrRule, "")
	}
	b.kubernetesVersion = param(b.stack, contract.InfraParamKubernetesVersion, "EKS Kubernetes version",
		`^1\.\d{2}$`, "a Kubernetes minor version such as 1.33", defaultKubernetesVersion)
	b.nodeKubernetesVersion = param(b.stack, contract.InfraParamNodeKubernetesVersion,
		"Kubernetes version of the node groups: the control plane's, or one minor behind it between the two updates of an upgrade",
		`^1\.\d{2}$`, "a Kubernetes minor version such as 1.33", defaultKubernetesVersion)
	b.nodeReleaseVersion = optionalParam(b.stack, contract.InfraParamNodeReleaseVersion,
		"EKS AMI release version of the node groups; empty for the latest of their Kubernetes version",
		`^(1\.\d{2}\.\d+-\d{8})?$`, "empty or an EKS AMI release version such as 1.33.5-20251016")
	b.stateQueueArn = param(b.stack, contract.InfraParamStateQueueArn, "ARN of the vendor's SQS queue the state exporter writes to",
		`^arn:aws[a-z-]*:sqs:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,80}$`, "an SQS queue ARN", "")
	param(b.stack, contract.InfraParamControlPlaneAccountID, "AWS account of the vendor's control plane (its command channels)",
		`^\d{12}$`, "a 12-digit AWS account ID", "")
	param(b.stack, contract.InfraParamControlPlaneRoleArn, "The vendor's control-plane role: the only principal data-plane-mgmt trusts",
		`^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$`, "an IAM role ARN", "")
	awscdk.NewCfnParameter(b.stack, jsii.String(contract.InfraParamExternalID), &awscdk.CfnParameterProps{
		Type:        jsii.String("String"),
		Description: jsii.String("The deployment's ExternalId: data-plane-mgmt can only be assumed with it"),
		// Not a secret (it guards against the confused deputy), but not for display either.
		NoEcho:                jsii.Bool(true),
		MinLength:             jsii.Number(32),
		AllowedPattern:        jsii.String(`^[\w+=,.@:/-]+$`),
		ConstraintDescription: jsii.String("must be the deployment's 32+ character ExternalId"),
	})
}

// network: one public and one private subnet per zone, placed by zone ID so that zones line up
// with a peer account's; a NAT gateway per zone so that a zone outage leaves the others'
// egress intact; an S3 gateway endpoint so that ClickHouse's S3 traffic stays off the NAT.
func (b *infraBuilder) network() {
	s := b.stack
	b.vpc = awsec2.NewCfnVPC(s, jsii.String("Vpc"), &awsec2.CfnVPCProps{
		CidrBlock:          awscdk.Fn_Ref(jsii.String(contract.InfraParamVpcCidr)),
		EnableDnsHostnames: true, // EKS requires both DNS attributes
		EnableDnsSupport:   true,
		Tags:               nameTag(clusterNameSub),
	})
	suppress(b.vpc, "AwsSolutions-VPC7", "Flow logs are the customer's choice in their dedicated account (they cost per GB); "+
		"byoc's management role deliberately holds no CloudWatch Logs permissions and may not pass a role to vpc-flow-logs")
	igw := awsec2.NewCfnInternetGateway(s, jsii.String("InternetGateway"), &awsec2.CfnInternetGatewayProps{Tags: nameTag(clusterNameSub)})
	attachment := awsec2.NewCfnVPCGatewayAttachment(s, jsii.String("InternetGatewayAttachment"), &awsec2.CfnVPCGatewayAttachmentProps{
		VpcId: b.vpc.Ref(), InternetGatewayId: igw.Ref(),
	})
	publicRouteTable := awsec2.NewCfnRouteTable(s, jsii.String("PublicRouteTable"), &awsec2.CfnRouteTableProps{VpcId: b.vpc.Ref()})
	publicRoute := awsec2.NewCfnRoute(s, jsii.String("PublicDefaultRoute"), &awsec2.CfnRouteProps{
		RouteTableId: publicRouteTable.Ref(), DestinationCidrBlock: jsii.String("0.0.0.0/0"), GatewayId: igw.Ref(),
	})
	publicRoute.AddResourceDependency(attachment, nil)

	for i := range 3 {
		n := i + 1
		public := awsec2.NewCfnSubnet(s, jsii.String(fmt.Sprintf("PublicSubnet%d", n)), &awsec2.CfnSubnetProps{
			VpcId: b.vpc.Ref(), CidrBlock: b.publicCIDRs[i], AvailabilityZoneId: b.zoneIDs[i], MapPublicIpOnLaunch: false,
			// The load-balancer controller places internet-facing load balancers by this tag.
			Tags: &[]*awscdk.CfnTag{{Key: jsii.String("kubernetes.io/role/elb"), Value: jsii.String("1")}},
		})
		awsec2.NewCfnSubnetRouteTableAssociation(s, jsii.String(fmt.Sprintf("PublicSubnet%dRouteTable", n)), &awsec2.CfnSubnetRouteTableAssociationProps{
			SubnetId: public.Ref(), RouteTableId: publicRouteTable.Ref(),
		})
		natIP := awsec2.NewCfnEIP(s, jsii.String(fmt.Sprintf("NatIp%d", n)), &awsec2.CfnEIPProps{Domain: jsii.String("vpc")})
		natIP.AddResourceDependency(attachment, nil)
		nat := awsec2.NewCfnNatGateway(s, jsii.String(fmt.Sprintf("NatGateway%d", n)), &awsec2.CfnNatGatewayProps{
			AllocationId: natIP.AttrAllocationId(), SubnetId: public.Ref(),
		})

		private := awsec2.NewCfnSubnet(s, jsii.String(fmt.Sprintf("PrivateSubnet%d", n)), &awsec2.CfnSubnetProps{
			VpcId: b.vpc.Ref(), CidrBlock: b.privateCIDRs[i], AvailabilityZoneId: b.zoneIDs[i], MapPublicIpOnLaunch: false,
			Tags: &[]*awscdk.CfnTag{{Key: jsii.String("kubernetes.io/role/internal-elb"), Value: jsii.String("1")}},
		})
		routeTable := awsec2.NewCfnRouteTable(s, jsii.String(fmt.Sprintf("PrivateRouteTable%d", n)), &awsec2.CfnRouteTableProps{VpcId: b.vpc.Ref()})
		b.privateDefaultRoutes[i] = awsec2.NewCfnRoute(s, jsii.String(fmt.Sprintf("PrivateDefaultRoute%d", n)), &awsec2.CfnRouteProps{
			RouteTableId: routeTable.Ref(), DestinationCidrBlock: jsii.String("0.0.0.0/0"), NatGatewayId: nat.Ref(),
		})
		awsec2.NewCfnSubnetRouteTableAssociation(s, jsii.String(fmt.Sprintf("PrivateSubnet%dRouteTable", n)), &awsec2.CfnSubnetRouteTableAssociationProps{
			SubnetId: private.Ref(), RouteTableId: routeTable.Ref(),
		})
		b.publicSubnets[i], b.privateSubnets[i], b.privateRouteTables[i] = public, private, routeTable
	}

	awsec2.NewCfnVPCEndpoint(s, jsii.String("S3GatewayEndpoint"), &awsec2.CfnVPCEndpointProps{
		VpcId:           b.vpc.Ref(),
		ServiceName:     jsii.String(sub("com.amazonaws.${AWS::Region}.s3")),
		VpcEndpointType: jsii.String("Gateway"),
		RouteTableIds:   &[]any{b.privateRouteTables[0].Ref(), b.privateRouteTables[1].Ref(), b.privateRouteTables[2].Ref()},
	})

	output(s, contract.InfraOutputVpcID, b.vpc.Ref())
	output(s, contract.InfraOutputPrivateSubnetIDs, joinRefs(b.privateSubnets[0].Ref(), b.privateSubnets[1].Ref(), b.privateSubnets[2].Ref()))
	output(s, contract.InfraOutputPublicSubnetIDs, joinRefs(b.publicSubnets[0].Ref(), b.publicSubnets[1].Ref(), b.publicSubnets[2].Ref()))
	output(s, contract.InfraOutputPrivateRouteTableIDs, joinRefs(b.privateRouteTables[0].Ref(), b.privateRouteTables[1].Ref(), b.privateRouteTables[2].Ref()))

	// byoc's security group for the private load balancer: empty until a peering stack adds
	// its peer's ingress. The agent attaches it to the private NLB, so the rules live on a
	// group the load balancer controller does not reconcile away.
	peers := awsec2.NewCfnSecurityGroup(s, jsii.String("PrivateLbPeersSecurityGroup"), &awsec2.CfnSecurityGroupProps{
		GroupDescription: jsii.String("byoc: ClickHouse ports from peered VPCs to the private load balancer"),
		VpcId:            b.vpc.Ref(),
		SecurityGroupEgress: &[]any{&awsec2.CfnSecurityGroup_EgressProperty{
			IpProtocol: jsii.String("tcp"), FromPort: jsii.Number(0), ToPort: jsii.Number(65535), CidrIp: b.vpc.AttrCidrBlock(),
			Description: jsii.String("to the cluster's targets in the VPC only"),
		}},
	})
	output(s, contract.InfraOutputPeersSecurityGroupID, peers.AttrGroupId())
}

// bucket: ClickHouse's object storage. Encrypted, never public, TLS only. Retained when the
// stack is deleted or the bucket replaced: it holds the customer's data, which only an
// explicit teardown may remove. But not retained when the stack's first create rolls back
// (RetainExceptOnCreate): the bucket is empty then, and a kept one would hold its fixed name,
// so every recreate of the stack would fail on "already exists" instead of the real fault.
func (b *infraBuilder) bucket() {
	bucket := awss3.NewCfnBucket(b.stack, jsii.String("Bucket"), &awss3.CfnBucketProps{
		BucketName: jsii.String(subf("%s-${AWS::AccountId}", clusterNameSub)),
		BucketEncryption: &awss3.CfnBucket_BucketEncryptionProperty{
			ServerSideEncryptionConfiguration: &[]any{&awss3.CfnBucket_ServerSideEncryptionRuleProperty{
				ServerSideEncryptionByDefault: &awss3.CfnBucket_ServerSideEncryptionByDefaultProperty{SseAlgorithm: jsii.String("AES256")},
			}},
		},
		PublicAccessBlockConfiguration: &awss3.CfnBucket_PublicAccessBlockConfigurationProperty{
			BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true,
		},
		OwnershipControls: &awss3.CfnBucket_OwnershipControlsProperty{
			Rules: &[]any{&awss3.CfnBucket_OwnershipControlsRuleProperty{ObjectOwnership: jsii.String("BucketOwnerEnforced")}},
		},
	})
	bucket.ApplyRemovalPolicy(awscdk.RemovalPolicy_RETAIN_ON_UPDATE_OR_DELETE, nil)
	suppress(bucket, "AwsSolutions-S1", "Server access logs would need a second bucket and log-delivery policy per deployment; "+
		"only the deployment's own roles reach this bucket, and the customer can enable CloudTrail S3 data events for per-request records")
	awss3.NewCfnBucketPolicy(b.stack, jsii.String("BucketPolicy"), &awss3.CfnBucketPolicyProps{
		Bucket: bucket.Ref(),
		PolicyDocument: map[string]any{"Version": "2012-10-17", "Statement": []any{
			denyInsecureTransport("s3:*", *bucket.AttrArn(), *bucket.AttrArn()+"/*"),
		}},
	})
	b.infra.Bucket = bucket
	output(b.stack, contract.InfraOutputBucketName, bucket.Ref())
}

// roles: the IAM roles of the in-cluster components, EKS and the vendor's data-plane access.
// Each has exactly the permissions its component's upstream documentation asks for, narrowed
// to this deployment's VPC, cluster and tags where the service offers a condition for it.
func (b *infraBuilder) roles() {
	elb := "arn:${AWS::Partition}:elasticloadbalancing:${AWS::Region}:${AWS::AccountId}"
	securityGroups := sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:security-group/*")
	vpcArn := sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:vpc/") + *b.vpc.Ref()
	hostedZones := sub("arn:${AWS::Partition}:route53:::hostedzone/*")
	changes := sub("arn:${AWS::Partition}:route53:::change/*")
	clusterTag := "elbv2.k8s.aws/cluster" // the load-balancer controller tags what it creates with this key

	b.podRole(roleStateExporter, []grant{{actions: []string{"sqs:SendMessage"}, resources: []string{*b.stateQueueArn}}})

	b.podRole(roleLoadBalancerController, []grant{
		{sid: "LbcDescribe", resources: []string{"*"}, actions: []string{
			"ec2:DescribeAccountAttributes", "ec2:DescribeAddresses", "ec2:DescribeAvailabilityZones", "ec2:DescribeInternetGateways",
			"ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeInstances", "ec2:DescribeNetworkInterfaces",
			"ec2:DescribeTags", "ec2:DescribeRouteTables",
			"elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeLoadBalancerAttributes", "elasticloadbalancing:DescribeListeners",
			"elasticloadbalancing:DescribeListenerAttributes", "elasticloadbalancing:DescribeListenerCertificates", "elasticloadbalancing:DescribeSSLPolicies",
			"elasticloadbalancing:DescribeRules", "elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeTargetGroupAttributes",
			"elasticloadbalancing:DescribeTargetHealth", "elasticloadbalancing:DescribeTags",
		}},
		{sid: "LbcServiceLinkedRole", actions: []string{"iam:CreateServiceLinkedRole"}, resources: []string{"*"},
			conditions: map[string]any{"StringEquals": map[string]any{"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}}},
		{sid: "LbcCreateSecurityGroups", actions: []string{"ec2:CreateSecurityGroup"}, resources: []string{securityGroups, vpcArn}},
		{sid: "LbcTagSecurityGroups", actions: []string{"ec2:CreateTags"}, resources: []string{securityGroups},
			conditions: map[string]any{
				"StringEquals": map[string]any{"ec2:CreateAction": "CreateSecurityGroup"},
				"Null":         map[string]any{"aws:RequestTag/" + clusterTag: "false"},
			}},
		{sid: "LbcManageSecurityGroups", resources: []string{securityGroups},
			actions:    []string{"ec2:CreateTags", "ec2:DeleteTags", "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:DeleteSecurityGroup"},
			conditions: map[string]any{"Null": map[string]any{"aws:ResourceTag/" + clusterTag: "false"}}},
		// Opening the cluster's own security group to the load balancers' traffic: those groups
		// are EKS's, untagged by the controller, so they are pinned by VPC instead.
		{sid: "LbcOpenClusterSecurityGroups", resources: []string{securityGroups},
			actions:    []string{"ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"},
			conditions: map[string]any{"ArnEquals": map[string]any{"ec2:Vpc": vpcArn}}},
		{sid: "LbcCreateLoadBalancers", resources: []string{sub(elb + ":*")},
			actions:    []string{"elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup", "elasticloadbalancing:AddTags"},
			conditions: map[string]any{"Null": map[string]any{"aws:RequestTag/" + clusterTag: "false"}}},
		{sid: "LbcManageLoadBalancers", resources: []string{sub(elb + ":*")},
			actions: []string{
				"elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:SetIpAddressType", "elasticloadbalancing:SetSecurityGroups",
				"elasticloadbalancing:SetSubnets", "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:ModifyTargetGroup",
				"elasticloadbalancing:ModifyTargetGroupAttributes", "elasticloadbalancing:DeleteTargetGroup", "elasticloadbalancing:RegisterTargets",
				"elasticloadbalancing:DeregisterTargets", "elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags",
			},
			conditions: map[string]any{"Null": map[string]any{"aws:ResourceTag/" + clusterTag: "false"}}},
		{sid: "LbcManageListeners", resources: []string{sub(elb + ":*")}, actions: []string{
			"elasticloadbalancing:CreateListener", "elasticloadbalancing:DeleteListener", "elasticloadbalancing:ModifyListener",
			"elasticloadbalancing:ModifyListenerAttributes", "elasticloadbalancing:CreateRule", "elasticloadbalancing:DeleteRule",
			"elasticloadbalancing:ModifyRule",
		}},
	})

	b.podRole(roleEbsCsiDriver, nil, managedPolicyEBSCSI)

	b.podRole(roleExternalDNS, []grant{
		{sid: "DnsChangeRecords", resources: []string{hostedZones},
			actions: []string{"route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets", "route53:ListTagsForResource"}},
		{sid: "DnsListZones", resources: []string{"*"}, actions: []string{"route53:ListHostedZones"}},
	})

	b.podRole(roleCertManager, []grant{
		{sid: "DnsReadChanges", resources: []string{changes}, actions: []string{"route53:GetChange"}},
		// cert-manager answers ACME DNS-01 challenges: TXT records only.
		{sid: "DnsChangeRecords", resources: []string{hostedZones}, actions: []string{"route53:ChangeResourceRecordSets"},
			conditions: map[string]any{"ForAllValues:StringEquals": map[string]any{"route53:ChangeResourceRecordSetsRecordTypes": []string{"TXT"}}}},
		{sid: "DnsListZones", resources: []string{"*"}, actions: []string{"route53:ListHostedZonesByName"}},
	})

	b.podRole(roleClusterAutoscaler, []grant{
		{sid: "AutoscalerDescribe", resources: []string{"*"}, actions: []string{
			"autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances", "autoscaling:DescribeLaunchConfigurations",
			"autoscaling:DescribeScalingActivities", "autoscaling:DescribeTags", "ec2:DescribeImages", "ec2:DescribeInstanceTypes",
			"ec2:DescribeLaunchTemplateVersions", "ec2:GetInstanceTypesFromInstanceRequirements", "eks:DescribeNodegroup",
		}},
		{sid: "AutoscalerScaleNodeGroups", resources: []string{"*"},
			actions:    []string{"autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"},
			conditions: map[string]any{"StringEquals": map[string]any{"aws:ResourceTag/eks:cluster-name": sub(clusterNameSub)}}},
	})

	b.role(roleK8sControlPlane, trustDocument(map[string]any{"Service": serviceEKS}, []string{"sts:AssumeRole"}, nil), nil, managedPolicyEKSCluster)
	b.role(roleK8sWorker, trustDocument(map[string]any{"Service": "ec2.amazonaws.com"}, []string{"sts:AssumeRole"}, nil), nil,
		managedPolicyEKSWorker, managedPolicyEKSCNI, managedPolicyECRPull)

	// The vendor's control plane reconciles ClickHouse custom resources through this role. It can
	// describe this one cluster; what it may do inside is the Kubernetes group of its access entry.
	// Only the control plane's own role may assume it, with this deployment's ExternalId: not
	// any principal of the vendor's account, and not for another deployment.
	b.role(roleDataPlaneMgmt,
		trustDocument(map[string]any{"AWS": ref(contract.InfraParamControlPlaneRoleArn)}, []string{"sts:AssumeRole"},
			map[string]any{"StringEquals": map[string]any{"sts:ExternalId": ref(contract.InfraParamExternalID)}}),
		[]grant{
			{actions: []string{"eks:DescribeCluster"}, resources: []string{sub("arn:${AWS::Partition}:eks:${AWS::Region}:${AWS::AccountId}:cluster/" + clusterNameSub)}},
		})

	// The in-cluster agent reads this deployment's command channel, which lives in the vendor's
	// account next to the state queue (same region: the one in StateQueueArn). Only its pod can
	// assume the role (podRole), and the channel's policy admits only this role.
	b.podRole(roleAgent, []grant{
		{actions: commandChannelReadActions, resources: []string{commandQueueArn(b.stateQueueArn)}},
	})
}

// commandChannelReadActions are what a deployment's agent does on its command channel
// (GetQueueUrl finds it in the vendor's account); the channel's own policy
// (channel.CommandQueuePolicy) grants the same to the agent role only. Cross-account, both
// policies must allow.
var commandChannelReadActions = []string{"sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}

// commandQueueArn is the ARN of this deployment's command channel (channel.QueueName) in the
// vendor's account, in the region of the state queue.
func commandQueueArn(stateQueueArn *string) string {
	return *awscdk.Fn_Sub(jsii.String(fmt.Sprintf("arn:${AWS::Partition}:sqs:${VendorRegion}:${%s}:%s${%s}.fifo",
		contract.InfraParamControlPlaneAccountID, contract.CommandQueuePrefix, contract.InfraParamDeploymentID)),
		&map[string]*string{"VendorRegion": awscdk.Fn_Select(jsii.Number(3), awscdk.Fn_Split(jsii.String(":"), stateQueueArn, nil))})
}

// podRole is a role for one Kubernetes service account through EKS Pod Identity. The trust
// policy checks the session tags EKS Pod Identity sets, so only that service account of this
// cluster can assume it, even if another association pointed at the role.
func (b *infraBuilder) podRole(r clusterRole, grants []grant, managed ...string) {
	trust := trustDocument(map[string]any{"Service": servicePodIdentity}, []string{"sts:AssumeRole", "sts:TagSession"},
		map[string]any{"StringEquals": map[string]any{
			"aws:RequestTag/eks-cluster-name":           sub(clusterNameSub),
			"aws:RequestTag/kubernetes-namespace":       r.Namespace,
			"aws:RequestTag/kubernetes-service-account": r.ServiceAccount,
		}})
	b.role(r, trust, grants, managed...)
}

func (b *infraBuilder) role(r clusterRole, trust map[string]any, grants []grant, managed ...string) awsiam.CfnRole {
	props := &awsiam.CfnRoleProps{
		RoleName:                 jsii.String(subf("%s-%s", clusterNameSub, r.Suffix)),
		AssumeRolePolicyDocument: trust,
		// The bootstrap stack's boundary: the management role may create no role without it.
		PermissionsBoundary: jsii.String(sub(roleBoundaryArn)),
	}
	if len(grants) > 0 {
		props.Policies = &[]any{&awsiam.CfnRole_PolicyProperty{PolicyName: jsii.String(r.Suffix), PolicyDocument: policyDocument(grants...)}}
	}
	if len(managed) > 0 {
		arns := make([]any, len(managed))
		for i, m := range managed {
			arns[i] = managedPolicyArn(m)
		}
		props.ManagedPolicyArns = &arns
	}
	role := awsiam.NewCfnRole(b.stack, jsii.String(r.ID), props)
	b.infra.Roles[r.Suffix] = role
	suppressWildcards(role, grants)
	suppressManagedPolicies(role, managed)
	output(b.stack, r.OutputKey, role.AttrArn())
	if r == roleStateExporter {
		// SQS names a message's sender by role id: stateingest checks it against this.
		output(b.stack, contract.InfraOutputStateExporterRoleID, role.AttrRoleId())
	}
	return role
}

// cluster: the EKS cluster "<prefix>-<deployment id>", its system node groups (one per zone),
// add-ons, pod-identity associations and the vendor's access entry.
func (b *infraBuilder) cluster() {
	s := b.stack
	privateSubnetIDs := &[]*string{b.privateSubnets[0].Ref(), b.privateSubnets[1].Ref(), b.privateSubnets[2].Ref()}
	cluster := awseks.NewCfnCluster(s, jsii.String("Cluster"), &awseks.CfnClusterProps{
		Name:    jsii.String(sub(clusterNameSub)),
		Version: b.kubernetesVersion,
		RoleArn: b.infra.Roles[roleK8sControlPlane.Suffix].AttrArn(),
		ResourcesVpcConfig: &awseks.CfnCluster_ResourcesVpcConfigProperty{
			SubnetIds:             privateSubnetIDs,
			EndpointPrivateAccess: true,
			EndpointPublicAccess:  true,
		},
		// Access entries only (no aws-auth ConfigMap). The cluster's creator (the management
		// role, through CloudFormation) stays its administrator: it is the only principal that
		// can install the in-cluster components and bind data-plane-mgmt's Kubernetes group
		// (an access entry grants that group nothing by itself), and it is assumable only by
		// the control plane's role with the deployment's ExternalId. Without it an access entry
		// with AmazonEKSClusterAdminPolicy for the same role would be needed: the same power.
		AccessConfig: &awseks.CfnCluster_AccessConfigProperty{
			AuthenticationMode:                      jsii.String("API"),
			BootstrapClusterCreatorAdminPermissions: true,
		},
		// vpc-cni, kube-proxy and coredns come as managed add-ons below instead.
		BootstrapSelfManagedAddons: false,
		// Set explicitly: a cluster created through the API defaults to EXTENDED support,
		// billed at six times the standard price once its version leaves standard support.
		// byoc's upgrades keep every cluster inside standard support (both kinds are
		// force-upgraded outside any window when their support ends).
		UpgradePolicy: &awseks.CfnCluster_UpgradePolicyProperty{SupportType: jsii.String("STANDARD")},
		Logging: &awseks.CfnCluster_LoggingProperty{ClusterLogging: &awseks.CfnCluster_ClusterLoggingProperty{
			EnabledTypes: &[]any{
				logType("api"), logType("audit"), logType("authenticator"), logType("controllerManager"), logType("scheduler"),
			},
		}},
	})
	suppress(cluster, "AwsSolutions-EKS1", "The vendor's control plane reconciles ClickHouse resources through the Kubernetes API from outside the VPC "+
		"(the data-plane-mgmt role); every request still needs IAM authentication and an access entry")
	b.infra.Cluster = cluster

	var before []awscdk.CfnResource
	for _, name := range addonsBeforeNodes {
		before = append(before, b.addon(cluster, name))
	}
	var nodeGroups []awseks.CfnNodegroup
	for i := range 3 {
		n := i + 1
		ng := awseks.NewCfnNodegroup(s, jsii.String(fmt.Sprintf("SystemNodeGroup%d", n)), &awseks.CfnNodegroupProps{
			ClusterName:    cluster.Ref(),
			NodegroupName:  jsii.String(subf("%s-system-%d", clusterNameSub, n)),
			NodeRole:       b.infra.Roles[roleK8sWorker.Suffix].AttrArn(),
			Subnets:        &[]any{b.privateSubnets[i].Ref()},
			Version:        b.nodeKubernetesVersion,
			ReleaseVersion: b.nodeReleaseVersion,
			InstanceTypes:  jsii.Strings(systemNodeInstanceType),
			AmiType:        jsii.String(systemNodeAmiType),
			CapacityType:   jsii.String("ON_DEMAND"),
			ScalingConfig: &awseks.CfnNodegroup_ScalingConfigProperty{
				MinSize: jsii.Number(1), DesiredSize: jsii.Number(1), MaxSize: jsii.Number(systemNodeMaxSize),
			},
			Labels: &map[string]*string{"byoc/node-pool": jsii.String("system")},
		})
		// Nodes need their zone's NAT route to pull images and a CNI to become Ready.
		ng.AddResourceDependency(b.privateDefaultRoutes[i], nil)
		for _, addon := range before {
			ng.AddResourceDependency(addon, nil)
		}
		nodeGroups = append(nodeGroups, ng)
	}
	for _, name := range addonsAfterNodes {
		addon := b.addon(cluster, name)
		for _, ng := range nodeGroups {
			addon.AddResourceDependency(ng, nil)
		}
	}

	for _, r := range clusterRoles {
		if r.PassedTo != servicePodIdentity {
			continue
		}
		awseks.NewCfnPodIdentityAssociation(s, jsii.String(r.ID+"Association"), &awseks.CfnPodIdentityAssociationProps{
			ClusterName:    cluster.Ref(),
			Namespace:      jsii.String(r.Namespace),
			ServiceAccount: jsii.String(r.ServiceAccount),
			RoleArn:        b.infra.Roles[r.Suffix].AttrArn(),
		})
	}
	awseks.NewCfnAccessEntry(s, jsii.String("DataPlaneMgmtAccess"), &awseks.CfnAccessEntryProps{
		ClusterName:      cluster.Ref(),
		PrincipalArn:     b.infra.Roles[roleDataPlaneMgmt.Suffix].AttrArn(),
		Type:             jsii.String("STANDARD"),
		KubernetesGroups: jsii.Strings(dataPlaneMgmtGroup),
	})

	output(s, contract.InfraOutputClusterName, cluster.Ref())
	output(s, contract.InfraOutputClusterArn, cluster.AttrArn())
	output(s, contract.InfraOutputClusterEndpoint, cluster.AttrEndpoint())
	output(s, contract.InfraOutputClusterSecurityGroupID, cluster.AttrClusterSecurityGroupId())
}

func (b *infraBuilder) addon(cluster awseks.CfnCluster, name string) awscdk.CfnResource {
	addon := awseks.NewCfnAddon(b.stack, jsii.String(addonID(name)), &awseks.CfnAddonProps{
		ClusterName: cluster.Ref(),
		AddonName:   jsii.String(name),
		AddonVersion: optionalParam(b.stack, contract.InfraParamAddonVersion(name), "Version of the "+name+" add-on; empty for the one EKS chose at creation",
			`^(v\d+\.\d+\.\d+-eksbuild\.\d+)?$`, "empty or an EKS add-on version such as v1.19.2-eksbuild.1"),
		ResolveConflicts: jsii.String("OVERWRITE"),
	})
	// The synth-time validator reads the empty default into AddonVersion; Fn::If leaves
	// the property out when it is empty, which is what CloudFormation (and cfn-lint) see.
	awscdk.Validations_Of(addon).Acknowledge(&awscdk.Acknowledgment{Id: jsii.String("CloudFormation-Validate::F3033"),
		Reason: jsii.String("AddonVersion is omitted (AWS::NoValue) when its parameter is empty")})
	return addon
}

// addonID turns "aws-ebs-csi-driver" into "AddonAwsEbsCsiDriver".
func addonID(name string) string { return "Addon" + contract.Camel(name) }

func logType(t string) *awseks.CfnCluster_LoggingTypeConfigProperty {
	return &awseks.CfnCluster_LoggingTypeConfigProperty{Type: jsii.String(t)}
}

func managedPolicyArn(name string) string {
	return subf("arn:${AWS::Partition}:iam::aws:policy/%s", name)
}

func nameTag(value string) *[]*awscdk.CfnTag {
	return &[]*awscdk.CfnTag{{Key: jsii.String("Name"), Value: jsii.String(sub(value))}}
}

func joinRefs(refs ...*string) *string {
	return awscdk.Fn_Join(jsii.String(","), &refs)
}

// param declares a String parameter. An empty defaultValue means the parameter is required.
func param(stack awscdk.Stack, name, description, pattern, rule, defaultValue string) *string {
	props := &awscdk.CfnParameterProps{
		Type:                  jsii.String("String"),
		Description:           jsii.String(description),
		AllowedPattern:        jsii.String(pattern),
		ConstraintDescription: jsii.String("must be " + rule),
	}
	if defaultValue != "" {
		props.Default = jsii.String(defaultValue)
	}
	return awscdk.NewCfnParameter(stack, jsii.String(name), props).ValueAsString()
}

// optionalParam declares a String parameter defaulting to empty, and returns a value that is
// the parameter when it is set and AWS::NoValue (the property left out) when it is empty.
func optionalParam(stack awscdk.Stack, name, description, pattern, rule string) *string {
	p := awscdk.NewCfnParameter(stack, jsii.String(name), &awscdk.CfnParameterProps{
		Type: jsii.String("String"), Description: jsii.String(description), Default: jsii.String(""),
		AllowedPattern: jsii.String(pattern), ConstraintDescription: jsii.String("must be " + rule),
	})
	set := awscdk.NewCfnCondition(stack, jsii.String(name+"Set"), &awscdk.CfnConditionProps{
		Expression: awscdk.Fn_ConditionNot(awscdk.Fn_ConditionEquals(p.ValueAsString(), jsii.String(""))),
	})
	return awscdk.Fn_ConditionIf(set.LogicalId(), p.ValueAsString(), awscdk.Aws_NO_VALUE()).ToString()
}

func output(stack awscdk.Stack, name string, value *string) {
	awscdk.NewCfnOutput(stack, jsii.String(name), &awscdk.CfnOutputProps{Value: value})
}

// customerStackProps: the customer templates are plain parameterized templates. They must
// deploy with no CDK bootstrap in the customer's account and carry no assets and no CDK
// metadata resource.
func customerStackProps(description string) *awscdk.StackProps {
	return &awscdk.StackProps{
		Description:        jsii.String(description),
		Synthesizer:        awscdk.NewBootstraplessSynthesizer(&awscdk.BootstraplessSynthesizerProps{}),
		AnalyticsReporting: jsii.Bool(false),
	}
}
