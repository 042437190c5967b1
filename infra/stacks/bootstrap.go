package stacks

import (
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/byocloud/byoc/shared/contract"
)

// BootstrapStackID is the construct id and template name (cdk.out/ByocBootstrap.template.json)
// of the template a customer applies, as stack contract.BootstrapStackName, to let byoc in:
// the counterpart of ClickHouse's byoc.yaml.
const BootstrapStackID = "ByocBootstrap"

// Bootstrap is the synthesized bootstrap stack with the constructs tests refer to.
type Bootstrap struct {
	Stack          awscdk.Stack
	ManagementRole awsiam.CfnRole
	// Policies of the management role by area, as the reference behaviour (docs/design.md) lists them.
	Policies map[string]awsiam.CfnManagedPolicy
	// RoleBoundary is the permissions boundary of every role the management role creates.
	RoleBoundary   awsiam.CfnManagedPolicy
	ForwardingRule awsevents.CfnRule
}

// NewBootstrapStack builds the bootstrap template: the management role the control plane
// assumes (nothing else in the account trusts the vendor), its permissions scoped as the reference behaviour
// describes, and the rule that forwards the CloudFormation events of byoc's stacks to the
// vendor's bus. It creates no VPC, bucket or cluster: the infrastructure stack does, later,
// through this role.
func NewBootstrapStack(scope constructs.Construct, id string) *Bootstrap {
	stack := awscdk.NewStack(scope, jsii.String(id), customerStackProps(
		"byoc bootstrap: lets the byoc control plane manage BYOC infrastructure in this account (stack name "+contract.BootstrapStackName+")"))
	b := &Bootstrap{Stack: stack, Policies: map[string]awsiam.CfnManagedPolicy{}}

	awscdk.NewCfnParameter(stack, jsii.String(contract.BootstrapParamExternalID), &awscdk.CfnParameterProps{
		Type:        jsii.String("String"),
		Description: jsii.String("ExternalId given by the vendor at invitation; the management role can only be assumed with it"),
		NoEcho:      jsii.Bool(true),
		// STS accepts 2 to 1224 characters of this set; invite generates at least 32.
		MinLength:             jsii.Number(32),
		MaxLength:             jsii.Number(1224),
		AllowedPattern:        jsii.String(`^[\w+=,.@:/-]+$`),
		ConstraintDescription: jsii.String("must be the 32+ character ExternalId from the invitation"),
	})
	param(stack, contract.BootstrapParamControlPlaneRoleArn, "ARN of the vendor's provisioning role, the only principal the management role trusts",
		`^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$`, "an IAM role ARN", "")
	param(stack, contract.BootstrapParamVendorEventBusArn, "ARN of the vendor's event bus that receives this account's CloudFormation events",
		`^arn:aws[a-z-]*:events:[a-z0-9-]+:\d{12}:event-bus/[\w.-]+$`, "an EventBridge event bus ARN", "")
	param(stack, contract.BootstrapParamResourcePrefix, "Prefix of every resource byoc creates; the management role is limited to it",
		resourcePrefixPattern, resourcePrefixRule, contract.DefaultPrefix)

	b.ManagementRole = awsiam.NewCfnRole(stack, jsii.String("ManagementRole"), &awsiam.CfnRoleProps{
		RoleName:    jsii.String(contract.ManagementRoleName),
		Description: jsii.String("Assumed by the byoc control plane to manage the BYOC infrastructure stacks"),
		AssumeRolePolicyDocument: trustDocument(
			map[string]any{"AWS": ref(contract.BootstrapParamControlPlaneRoleArn)}, []string{"sts:AssumeRole"},
			map[string]any{"StringEquals": map[string]any{"sts:ExternalId": ref(contract.BootstrapParamExternalID)}}),
	})
	for _, area := range managementPolicies() {
		policy := awsiam.NewCfnManagedPolicy(stack, jsii.String(area.id), &awsiam.CfnManagedPolicyProps{
			Description:    jsii.String(area.description),
			PolicyDocument: policyDocument(area.grants...),
			Roles:          &[]any{b.ManagementRole.Ref()},
		})
		suppressWildcards(policy, area.grants)
		b.Policies[area.id] = policy
	}
	boundary := roleBoundary()
	b.RoleBoundary = awsiam.NewCfnManagedPolicy(stack, jsii.String("RoleBoundary"), &awsiam.CfnManagedPolicyProps{
		ManagedPolicyName: jsii.String(contract.RoleBoundaryPolicyName),
		Description:       jsii.String("Permissions boundary of the roles byoc creates: the most any of them may ever do"),
		PolicyDocument:    policyDocument(boundary...),
	})
	suppressWildcards(b.RoleBoundary, boundary)
	b.ForwardingRule = forwardStackEvents(stack)

	awscdk.NewCfnOutput(stack, jsii.String(contract.BootstrapOutputManagementRoleArn), &awscdk.CfnOutputProps{
		Value:       b.ManagementRole.AttrArn(),
		Description: jsii.String("The role the byoc control plane assumes"),
	})
	return b
}

type policyArea struct {
	id, description string
	grants          []grant
}

// managementPolicies are the management role's permissions, one managed policy per area (a
// managed policy holds at most 6,144 characters; TestManagementPoliciesFitIAMLimits checks).
// Creates require the managed-by tag; everything else is limited to "<prefix>-" names.
func managementPolicies() []policyArea {
	prefix := "${" + contract.BootstrapParamResourcePrefix + "}"
	account := "${AWS::AccountId}"
	requestTag := map[string]any{"StringEquals": map[string]any{"aws:RequestTag/" + contract.ManagedByTagKey: contract.ManagedByTagValue}}
	resourceTag := map[string]any{"StringEquals": map[string]any{"aws:ResourceTag/" + contract.ManagedByTagKey: contract.ManagedByTagValue}}

	networkCreates := []string{
		"ec2:CreateVpc", "ec2:CreateSubnet", "ec2:CreateInternetGateway", "ec2:CreateRouteTable",
		"ec2:CreateNatGateway", "ec2:AllocateAddress", "ec2:CreateVpcEndpoint", "ec2:CreateSecurityGroup",
	}
	createActions := make([]string, len(networkCreates))
	for i, a := range networkCreates {
		createActions[i] = strings.TrimPrefix(a, "ec2:")
	}
	network := []grant{
		// Read-only, and CloudFormation's EC2, EKS and node-group handlers call a changing set
		// of Describe actions to read back what they created.
		{sid: "DescribeNetwork", resources: []string{"*"}, actions: []string{"ec2:Describe*"}},
		{sid: "CreateTaggedNetwork", resources: []string{"*"}, actions: networkCreates, conditions: requestTag},
		{sid: "TagNetworkOnCreate", resources: []string{"*"}, actions: []string{"ec2:CreateTags"},
			conditions: map[string]any{"StringEquals": map[string]any{"ec2:CreateAction": createActions}}},
		{sid: "ManageTaggedNetwork", resources: []string{"*"}, conditions: resourceTag, actions: []string{
			"ec2:ModifyVpcAttribute", "ec2:DeleteVpc", "ec2:ModifySubnetAttribute", "ec2:DeleteSubnet",
			"ec2:AttachInternetGateway", "ec2:DetachInternetGateway", "ec2:DeleteInternetGateway",
			"ec2:CreateRoute", "ec2:ReplaceRoute", "ec2:DeleteRoute", "ec2:AssociateRouteTable", "ec2:DisassociateRouteTable", "ec2:DeleteRouteTable",
			"ec2:DeleteNatGateway", "ec2:DisassociateAddress", "ec2:ReleaseAddress", "ec2:ModifyVpcEndpoint", "ec2:DeleteVpcEndpoints",
			"ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupEgress", "ec2:DeleteSecurityGroup",
			"ec2:CreateTags", "ec2:DeleteTags",
		}},
	}

	// Private connectivity (peering stacks, PrivateLink): peering connections and endpoint
	// services carry the managed-by tag like everything else, and so does byoc's security
	// group of the private load balancer; the accepter role lives in the peer's account,
	// unknown when this template is applied.
	peerVpc := sub("arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:vpc/*")
	connections := sub("arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:vpc-peering-connection/*")
	endpointServices := sub("arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:vpc-endpoint-service/*")
	connectivity := []grant{
		{sid: "PeerFromTaggedVpcs", resources: []string{peerVpc}, actions: []string{"ec2:CreateVpcPeeringConnection"}, conditions: resourceTag},
		{sid: "CreateTaggedPeerings", resources: []string{connections}, actions: []string{"ec2:CreateVpcPeeringConnection"}, conditions: requestTag},
		{sid: "TagConnectivityOnCreate", resources: []string{connections, endpointServices}, actions: []string{"ec2:CreateTags"},
			conditions: map[string]any{"StringEquals": map[string]any{"ec2:CreateAction": []string{"CreateVpcPeeringConnection", "CreateVpcEndpointServiceConfiguration"}}}},
		{sid: "ManageTaggedPeerings", resources: []string{connections}, conditions: resourceTag, actions: []string{
			"ec2:DeleteVpcPeeringConnection"}},
		{sid: "CreateTaggedEndpointServices", resources: []string{endpointServices}, conditions: requestTag, actions: []string{"ec2:CreateVpcEndpointServiceConfiguration"}},
		{sid: "ManageTaggedEndpointServices", resources: []string{endpointServices}, conditions: resourceTag, actions: []string{
			"ec2:DeleteVpcEndpointServiceConfigurations", "ec2:ModifyVpcEndpointServiceConfiguration", "ec2:ModifyVpcEndpointServicePermissions",
			"ec2:AcceptVpcEndpointConnections"}},
		{sid: "OpenPrivateLoadBalancer", resources: []string{sub("arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:security-group/*")},
			conditions: resourceTag, actions: []string{"ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"}},
		// CloudFormation's endpoint-service handler reads the load balancer it fronts.
		{sid: "ReadLoadBalancers", resources: []string{"*"}, actions: []string{"elasticloadbalancing:DescribeLoadBalancers"}},
		{sid: "AssumePeerAccepterRoles", resources: []string{sub("arn:${AWS::Partition}:iam::*:role/" + contract.PeerAccepterRolePrefix + "*")},
			actions: []string{"sts:AssumeRole"}},
	}

	eksResources := []string{
		subf("arn:${AWS::Partition}:eks:*:%s:cluster/%s-*", account, prefix),
		subf("arn:${AWS::Partition}:eks:*:%s:nodegroup/%s-*/%s-*/*", account, prefix, prefix),
		subf("arn:${AWS::Partition}:eks:*:%s:addon/%s-*/*/*", account, prefix),
		subf("arn:${AWS::Partition}:eks:*:%s:podidentityassociation/%s-*/*", account, prefix),
		subf("arn:${AWS::Partition}:eks:*:%s:access-entry/%s-*/*", account, prefix),
	}
	eks := []grant{
		{sid: "ReadEksCatalog", resources: []string{"*"}, actions: []string{"eks:DescribeAddonVersions", "eks:DescribeAddonConfiguration", "eks:ListClusters"}},
		{sid: "CreateTaggedEks", resources: eksResources, conditions: requestTag, actions: []string{
			"eks:CreateCluster", "eks:CreateNodegroup", "eks:CreateAddon", "eks:CreatePodIdentityAssociation", "eks:CreateAccessEntry",
		}},
		{sid: "ManageEks", resources: eksResources, actions: []string{
			"eks:DescribeCluster", "eks:UpdateClusterConfig", "eks:UpdateClusterVersion", "eks:DescribeUpdate", "eks:DeleteCluster",
			"eks:ListNodegroups", "eks:DescribeNodegroup", "eks:UpdateNodegroupConfig", "eks:UpdateNodegroupVersion", "eks:DeleteNodegroup",
			"eks:ListAddons", "eks:DescribeAddon", "eks:UpdateAddon", "eks:DeleteAddon",
			"eks:ListPodIdentityAssociations", "eks:DescribePodIdentityAssociation", "eks:UpdatePodIdentityAssociation", "eks:DeletePodIdentityAssociation",
			"eks:ListAccessEntries", "eks:DescribeAccessEntry", "eks:UpdateAccessEntry", "eks:DeleteAccessEntry",
			"eks:TagResource", "eks:UntagResource", "eks:ListTagsForResource",
		}},
	}

	roles := subf("arn:${AWS::Partition}:iam::%s:role/%s-*", account, prefix)
	passRoles := func(service string) []string {
		var arns []string
		for _, suffix := range rolesPassedTo(service) {
			arns = append(arns, subf("arn:${AWS::Partition}:iam::%s:role/%s-*-%s", account, prefix, suffix))
		}
		return arns
	}
	attachable := make([]string, len(attachableManagedPolicies))
	for i, p := range attachableManagedPolicies {
		attachable[i] = managedPolicyArn(p)
	}
	// Roles are created and their permissions changed only with the permissions boundary: a
	// role byoc creates can never exceed it, whatever its own policies say.
	bounded := map[string]any{"StringEquals": map[string]any{"iam:PermissionsBoundary": sub(roleBoundaryArn)}}
	iam := []grant{
		{sid: "CreateTaggedRoles", resources: []string{roles}, actions: []string{"iam:CreateRole"},
			conditions: map[string]any{"StringEquals": map[string]any{
				"aws:RequestTag/" + contract.ManagedByTagKey: contract.ManagedByTagValue,
				"iam:PermissionsBoundary":                    sub(roleBoundaryArn),
			}}},
		{sid: "ManageRoles", resources: []string{roles}, actions: []string{
			"iam:GetRole", "iam:UpdateRole", "iam:UpdateRoleDescription", "iam:UpdateAssumeRolePolicy", "iam:DeleteRole",
			"iam:TagRole", "iam:UntagRole", "iam:ListRoleTags", "iam:GetRolePolicy",
			"iam:ListRolePolicies", "iam:ListAttachedRolePolicies", "iam:ListInstanceProfilesForRole",
		}},
		{sid: "ChangeBoundedRoles", resources: []string{roles}, conditions: bounded,
			actions: []string{"iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:PutRolePermissionsBoundary"}},
		// Only the AWS managed policies the infrastructure template attaches.
		{sid: "AttachManagedPolicies", resources: []string{roles}, actions: []string{"iam:AttachRolePolicy", "iam:DetachRolePolicy"},
			conditions: map[string]any{
				"ArnEquals":    map[string]any{"iam:PolicyARN": attachable},
				"StringEquals": map[string]any{"iam:PermissionsBoundary": sub(roleBoundaryArn)},
			}},
		{sid: "CreateTaggedPolicies", resources: []string{subf("arn:${AWS::Partition}:iam::%s:policy/%s-*", account, prefix)},
			actions: []string{"iam:CreatePolicy"}, conditions: requestTag},
		{sid: "ManagePolicies", resources: []string{subf("arn:${AWS::Partition}:iam::%s:policy/%s-*", account, prefix)}, actions: []string{
			"iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListPolicyVersions", "iam:CreatePolicyVersion", "iam:DeletePolicyVersion",
			"iam:DeletePolicy", "iam:TagPolicy", "iam:UntagPolicy",
		}},
		{sid: "PassRolesToEks", resources: passRoles(serviceEKS), actions: []string{"iam:PassRole"},
			conditions: map[string]any{"StringEquals": map[string]any{"iam:PassedToService": serviceEKS}}},
		{sid: "PassRolesToPodIdentity", resources: passRoles(servicePodIdentity), actions: []string{"iam:PassRole"},
			conditions: map[string]any{"StringEquals": map[string]any{"iam:PassedToService": servicePodIdentity}}},
		{sid: "CreateServiceLinkedRoles", resources: []string{subf("arn:${AWS::Partition}:iam::%s:role/aws-service-role/*", account)},
			actions: []string{"iam:CreateServiceLinkedRole"},
			conditions: map[string]any{"StringEquals": map[string]any{"iam:AWSServiceName": []string{
				"eks.amazonaws.com", "eks-nodegroup.amazonaws.com", "autoscaling.amazonaws.com",
			}}}},
	}

	storageAndDNS := []grant{
		{sid: "ManageBuckets", resources: []string{subf("arn:${AWS::Partition}:s3:::%s-*", prefix)}, actions: []string{
			"s3:CreateBucket", "s3:DeleteBucket", "s3:ListBucket", "s3:GetBucketLocation",
			"s3:PutBucketPolicy", "s3:GetBucketPolicy", "s3:DeleteBucketPolicy",
			"s3:PutEncryptionConfiguration", "s3:GetEncryptionConfiguration",
			"s3:PutBucketPublicAccessBlock", "s3:GetBucketPublicAccessBlock",
			"s3:PutBucketOwnershipControls", "s3:GetBucketOwnershipControls",
			"s3:PutBucketTagging", "s3:GetBucketTagging",
			// CloudFormation's bucket handler reads the whole configuration back after each change.
			"s3:GetBucketVersioning", "s3:GetBucketLogging", "s3:GetBucketCORS", "s3:GetBucketWebsite", "s3:GetBucketNotification",
			"s3:GetBucketObjectLockConfiguration", "s3:GetLifecycleConfiguration", "s3:GetReplicationConfiguration",
			"s3:GetAccelerateConfiguration", "s3:GetAnalyticsConfiguration", "s3:GetInventoryConfiguration",
			"s3:GetMetricsConfiguration", "s3:GetIntelligentTieringConfiguration",
		}},
		// A teardown asked to delete the customer's data empties the retained bucket before
		// deleting it (DeleteBucket refuses a bucket with objects). Only objects of the
		// deployment buckets, and only deletion.
		{sid: "EmptyDeploymentBuckets", resources: []string{subf("arn:${AWS::Partition}:s3:::%s-*/*", prefix)}, actions: []string{"s3:DeleteObject"}},
		// Route 53 for external-dns and cert-manager's service domains (the reference behaviour's route53:*,
		// narrowed to the actions those zones need).
		{sid: "CreateHostedZones", resources: []string{"*"}, actions: []string{
			"route53:CreateHostedZone", "route53:ListHostedZones", "route53:ListHostedZonesByName", "route53:GetHostedZoneCount",
		}},
		{sid: "ManageHostedZones", resources: []string{sub("arn:${AWS::Partition}:route53:::hostedzone/*")}, actions: []string{
			"route53:GetHostedZone", "route53:UpdateHostedZoneComment", "route53:DeleteHostedZone",
			"route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets", "route53:ChangeTagsForResource", "route53:ListTagsForResource",
		}},
		{sid: "ReadDnsChanges", resources: []string{sub("arn:${AWS::Partition}:route53:::change/*")}, actions: []string{"route53:GetChange"}},
	}

	stackArns := []string{subf("arn:${AWS::Partition}:cloudformation:*:%s:stack/%s-*/*", account, prefix)}
	stacks := []grant{
		{sid: "CreateTaggedStacks", resources: stackArns, actions: []string{"cloudformation:CreateStack"}, conditions: requestTag},
		{sid: "ManageStacks", resources: stackArns, actions: []string{
			"cloudformation:DescribeStacks", "cloudformation:DescribeStackEvents", "cloudformation:DescribeStackResource",
			"cloudformation:DescribeStackResources", "cloudformation:ListStackResources", "cloudformation:GetTemplate",
			"cloudformation:UpdateStack", "cloudformation:DeleteStack", "cloudformation:UpdateTerminationProtection",
			"cloudformation:TagResource", "cloudformation:UntagResource",
		}},
	}

	return []policyArea{
		{"NetworkPolicy", "EC2 and VPC: create tagged, change only what byoc tagged", network},
		{"ConnectivityPolicy", "VPC peering and PrivateLink: tagged connections and services, the private load balancer's group, the peer's accepter role", connectivity},
		{"EksPolicy", "EKS on <prefix>-* clusters only", eks},
		{"IamPolicy", "IAM roles and policies named <prefix>-*, passed only to their service", iam},
		{"StorageAndDnsPolicy", "S3 buckets named <prefix>-* and Route 53 zones", storageAndDNS},
		{"StacksPolicy", "CloudFormation stacks named <prefix>-*", stacks},
	}
}

// roleBoundary is the ceiling of every role byoc creates: the services the in-cluster
// components and EKS's managed policies use, and object access to the deployment buckets
// (for the ClickHouse service roles the data plane adds later). It excludes everything that
// could widen access: IAM (but service-linked roles), STS, Organizations, other buckets.
func roleBoundary() []grant {
	prefix := "${" + contract.BootstrapParamResourcePrefix + "}"
	return []grant{
		{sid: "BoundaryClusterServices", resources: []string{"*"}, actions: append(clusterServiceActions(),
			"eks:DescribeCluster", "eks:DescribeNodegroup", "eks-auth:AssumeRoleForPodIdentity",
			"ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchImportUpstreamImage",
			"kms:DescribeKey", "iam:CreateServiceLinkedRole",
			"route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets", "route53:ListTagsForResource",
			"route53:ListHostedZones", "route53:ListHostedZonesByName", "route53:GetChange",
			"sqs:SendMessage",
		)},
		// The agent's command channel in the vendor's account (the in-cluster agent role).
		{sid: "BoundaryCommandChannels", actions: commandChannelReadActions, resources: []string{*awscdk.Fn_Sub(
			jsii.String("arn:${AWS::Partition}:sqs:*:${VendorAccount}:"+contract.CommandQueuePrefix+"*.fifo"),
			&map[string]*string{"VendorAccount": awscdk.Fn_Select(jsii.Number(4),
				awscdk.Fn_Split(jsii.String(":"), jsii.String(ref(contract.BootstrapParamControlPlaneRoleArn)), nil))})}},
		{sid: "BoundaryDeploymentBuckets", resources: []string{
			subf("arn:${AWS::Partition}:s3:::%s-*", prefix), subf("arn:${AWS::Partition}:s3:::%s-*/*", prefix),
		}, actions: []string{
			"s3:ListBucket", "s3:GetBucketLocation", "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
			"s3:AbortMultipartUpload", "s3:ListMultipartUploadParts", "s3:ListBucketMultipartUploads",
		}},
	}
}

// forwardStackEvents creates the rule on the account's default bus that sends the status
// changes of byoc's stacks (<prefix>-*) and of this bootstrap stack to the vendor's bus. An
// event lost on the way only delays the workflow: it keeps a slow poll as fallback.
func forwardStackEvents(stack awscdk.Stack) awsevents.CfnRule {
	role := awsiam.NewCfnRole(stack, jsii.String("ForwarderRole"), &awsiam.CfnRoleProps{
		Description: jsii.String("Lets EventBridge put byoc's stack events on the vendor's bus, and nothing else"),
		AssumeRolePolicyDocument: trustDocument(map[string]any{"Service": "events.amazonaws.com"}, []string{"sts:AssumeRole"},
			map[string]any{"StringEquals": map[string]any{"aws:SourceAccount": sub("${AWS::AccountId}")}}),
		Policies: &[]any{&awsiam.CfnRole_PolicyProperty{
			PolicyName: jsii.String("put-events-on-vendor-bus"),
			PolicyDocument: policyDocument(grant{actions: []string{"events:PutEvents"},
				resources: []string{ref(contract.BootstrapParamVendorEventBusArn)}}),
		}},
	})
	stackIDs := []any{
		map[string]any{"wildcard": subf("arn:${AWS::Partition}:cloudformation:*:${AWS::AccountId}:stack/${%s}-*", contract.BootstrapParamResourcePrefix)},
		map[string]any{"wildcard": subf("arn:${AWS::Partition}:cloudformation:*:${AWS::AccountId}:stack/%s/*", contract.BootstrapStackName)},
	}
	return awsevents.NewCfnRule(stack, jsii.String("ForwardStackEvents"), &awsevents.CfnRuleProps{
		Description: jsii.String(fmt.Sprintf("Forwards CloudFormation status changes of byoc's stacks and of %s to the vendor", contract.BootstrapStackName)),
		State:       jsii.String("ENABLED"),
		EventPattern: map[string]any{
			"source":      []string{contract.SourceCloudFormation},
			"detail-type": []string{contract.DetailTypeStackStatusChange},
			"detail":      map[string]any{"stack-id": stackIDs},
		},
		Targets: &[]any{&awsevents.CfnRule_TargetProperty{
			Id:      jsii.String("VendorBus"),
			Arn:     jsii.String(ref(contract.BootstrapParamVendorEventBusArn)),
			RoleArn: role.AttrArn(),
		}},
	})
}

func ref(name string) string {
	return *awscdk.Fn_Ref(jsii.String(name))
}
