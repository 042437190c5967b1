package stacks

import (
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"
)

// grant is one Allow statement of an identity policy. A statement whose resource (or action)
// has a wildcard must carry a Sid that is a key of wildcardReasons: the reason is written once,
// reviewed there, and TestEveryWildcardHasAWrittenReason holds every template to it.
type grant struct {
	sid        string
	actions    []string
	resources  []string
	conditions map[string]any
}

// wildcardReasons says, for every statement that needs one, why it cannot name its resources
// exactly. Deny statements (TLS-only resource policies) need none: they only take access away.
var wildcardReasons = map[string]string{
	// control plane
	"AssumeCustomerManagementRole":     "customer accounts are not known when the control plane is deployed: the account is the only wildcard, the role name is fixed (ClickHouseManagementRole) and each customer's trust policy also demands its ExternalId",
	"WriteXRayTraces":                  "X-Ray's PutTraceSegments and PutTelemetryRecords accept no resource",
	"DeliverWorkflowLogs":              "CloudWatch Logs' log-delivery actions used by Step Functions logging accept no resource",
	"AccountAdministersKey":            "in a key policy Resource * is the key itself; the account's root principal hands the key's administration to this account's IAM policies (AWS's default key policy), without which CloudFormation could neither update nor delete the key",
	"EventBridgeEncryptsOperatorTopic": "in a key policy Resource * is the key itself; the encryption context (aws:sns:topicArn) limits EventBridge's use to the operator topic",
	"CloudWatchEncryptsOperatorTopic":  "in a key policy Resource * is the key itself; the encryption context limits CloudWatch's use to the operator topic and aws:SourceArn to this stack's alarms",
	"ManageCommandChannels":            "command channels are created at provisioning, one per deployment (byoc-commands-<deployment id>.fifo): the name prefix, in this account and region, is the fixed part",
	"DescribeProvisionExecutions":      "execution names are chosen when a deployment is provisioned (provision-<deployment id>-<n>, or an operator's for a takeover): the provision workflow's name is the fixed part, and DescribeExecution only reads",
	"DescribeUpgradeExecutions":        "upgrade executions are named upgrade-<deployment id>-<purpose>-<time>, one per window or security start; the workflow is this stack's",
	"ArmMaintenanceSchedules":          "one schedule per deployment, named by its id, in the stack's maintenance group: the group is the fixed part",
	"SendCommands":                     "a workflow commands whichever deployment it serves, and each has its own channel (byoc-commands-<deployment id>.fifo): the name prefix, in this account and region, is the fixed part; each channel's policy lets only its deployment's agent read",

	"DescribePeeringExecutions": "peering executions are named peering-<deployment id>-<target>-<time>, one per change; the workflow is this stack's, and DescribeExecution only reads",
	"SendConnectivityCommands":  "the public load balancer and IP access lists are commanded on whichever deployment's channel the request names (byoc-commands-<deployment id>.fifo): the name prefix, in this account and region, is the fixed part",

	// bootstrap: the management role
	"PeerFromTaggedVpcs":           "VPC IDs are assigned at creation; aws:ResourceTag limits peering to VPCs byoc created with the managed-by tag",
	"CreateTaggedPeerings":         "a peering connection has no ARN before it is created; aws:RequestTag requires the managed-by tag",
	"TagConnectivityOnCreate":      "tags are written as part of the create call (ec2:CreateAction) whose connection or service has no ARN yet",
	"ManageTaggedPeerings":         "peering connection IDs are assigned at creation; aws:ResourceTag limits changes to connections byoc tagged",
	"CreateTaggedEndpointServices": "an endpoint service has no ARN before it is created; aws:RequestTag requires the managed-by tag",
	"ManageTaggedEndpointServices": "endpoint service IDs are assigned at creation; aws:ResourceTag limits changes to the service byoc tagged",
	"OpenPrivateLoadBalancer":      "the peers' security group is created by the infrastructure stack, its ID assigned then; aws:ResourceTag limits rule changes to groups byoc tagged",
	"ReadLoadBalancers":            "elasticloadbalancing:DescribeLoadBalancers is read-only and accepts no resource-level restriction for listing",
	"AcceptPeeringIntoThisVpc":     "peering connection IDs are assigned when the BYOC account requests one; ec2:AccepterVpc limits acceptance to connections into this one VPC",
	"AssumePeerAccepterRoles":      "the peer VPC's account is the customer's choice at each peering request: the account is the only wildcard, the role name (byoc-peer-accepter-<vpc id>) is fixed, and the role's trust names this account's management role",
	"DescribeNetwork":              "EC2 Describe actions are read-only and accept no resource; CloudFormation's EC2 and EKS handlers call a changing set of them",
	"CreateTaggedNetwork":          "a resource has no ARN before it is created; aws:RequestTag limits creates to resources carrying the managed-by tag",
	"TagNetworkOnCreate":           "tags are written as part of a create call (ec2:CreateAction) whose resource has no ARN yet",
	"ManageTaggedNetwork":          "EC2 resource IDs are assigned at creation; aws:ResourceTag limits changes to resources byoc created with the managed-by tag",
	"ManageStacks":                 "stack names are <prefix>-*; the stack UUID in the ARN is assigned by CloudFormation",
	"CreateTaggedStacks":           "stack names are <prefix>-*; the stack UUID in the ARN is assigned by CloudFormation; aws:RequestTag requires the managed-by tag",
	"ReadEksCatalog":               "eks:DescribeAddonVersions and eks:ListClusters accept no resource",
	"CreateTaggedEks":              "cluster names are <prefix>-<deployment id>; node group, add-on, access-entry and pod-identity ARNs end in IDs EKS assigns",
	"ManageEks":                    "cluster names are <prefix>-<deployment id>; node group, add-on, access-entry and pod-identity ARNs end in IDs EKS assigns",
	"ManageBuckets":                "bucket names are <prefix>-<deployment id>-<account>; the prefix is the fixed part",
	"EmptyDeploymentBuckets":       "object keys are ClickHouse's; bucket names are <prefix>-<deployment id>-<account>, the prefix is the fixed part; only s3:DeleteObject, for a teardown asked to delete the data",
	"FollowWorkflows":              "execution names end in the deployment id and attempt (provision-<id>-<n>, teardown-<id>-<n>) or a random suffix (command executions); the state machines are named",
	"CreateTaggedRoles":            "role names are <prefix>-<deployment id>-<component>; the prefix is the fixed part; the role must carry the managed-by tag and byoc's permissions boundary",
	"ManageRoles":                  "role names are <prefix>-<deployment id>-<component>; the prefix is the fixed part",
	"ChangeBoundedRoles":           "role names are <prefix>-<deployment id>-<component>; iam:PermissionsBoundary allows changes only to roles carrying byoc's boundary",
	"CreateTaggedPolicies":         "policy names are <prefix>-*; the prefix is the fixed part; aws:RequestTag requires the managed-by tag",
	"BoundaryClusterServices":      "a permissions boundary is a ceiling, not a grant: it names the services EKS's managed policies and the in-cluster components use (their own policies narrow them), and leaves out IAM, STS and data services",
	"BoundaryCommandChannels":      "a permissions boundary is a ceiling, not a grant: the agent's read actions on the vendor's command channels (byoc-commands-*.fifo in the account of ControlPlaneRoleArn, any region); the agent role's own policy names its one channel",
	"BoundaryDeploymentBuckets":    "a permissions boundary is a ceiling, not a grant: object access to the <prefix>-* deployment buckets, for the ClickHouse service roles the data plane adds",
	"AttachManagedPolicies":        "role names are <prefix>-<deployment id>-<component>; iam:PolicyARN allows only the AWS managed policies the infrastructure template attaches",
	"ManagePolicies":               "policy names are <prefix>-*; the prefix is the fixed part",
	"PassRolesToEks":               "the deployment id varies; the role-name suffix and iam:PassedToService pin each role to one service",
	"PassRolesToPodIdentity":       "the deployment id varies; the role-name suffix and iam:PassedToService pin each role to one service",
	"CreateServiceLinkedRoles":     "service-linked role names are chosen by AWS; iam:AWSServiceName limits them to the services the deployment uses",
	"CreateHostedZones":            "route53:CreateHostedZone and the hosted-zone listings accept no resource",
	"ManageHostedZones":            "hosted zone IDs are assigned by Route 53 at creation",
	"ReadDnsChanges":               "change IDs are assigned by Route 53 per request",

	// infrastructure: in-cluster component roles
	"LbcDescribe":                  "EC2 and Elastic Load Balancing Describe actions accept no resource",
	"LbcCreateSecurityGroups":      "a security group has no ARN before it is created; the VPC it is created in is the deployment's",
	"LbcTagSecurityGroups":         "security-group IDs are assigned at creation; the elbv2.k8s.aws/cluster tag condition limits changes to the controller's own groups",
	"LbcManageSecurityGroups":      "security-group IDs are assigned at creation; the elbv2.k8s.aws/cluster tag condition limits changes to the controller's own groups",
	"LbcOpenClusterSecurityGroups": "the cluster's security group is created by EKS with an ID assigned at creation; ec2:Vpc limits rule changes to groups of this deployment's VPC",
	"LbcCreateLoadBalancers":       "load balancers and target groups have no ARN before creation; aws:RequestTag requires the controller's cluster tag",
	"LbcManageLoadBalancers":       "load-balancer ARNs end in IDs assigned at creation; aws:ResourceTag limits changes to the controller's own load balancers",
	"LbcManageListeners":           "listener and rule ARNs end in IDs assigned at creation; they belong to load balancers only the controller manages",
	"LbcServiceLinkedRole":         "the Elastic Load Balancing service-linked role's name is chosen by AWS; iam:AWSServiceName pins it",
	"DnsListZones":                 "route53:ListHostedZones and ListHostedZonesByName accept no resource",
	"DnsChangeRecords":             "the hosted zone is created after the infrastructure (per service domain), so its ID is not known here",
	"DnsReadChanges":               "change IDs are assigned by Route 53 per request",
	"AutoscalerDescribe":           "Auto Scaling and EC2 Describe actions accept no resource",
	"AutoscalerScaleNodeGroups":    "Auto Scaling group names are generated by EKS; aws:ResourceTag/eks:cluster-name limits scaling to this cluster's node groups",
}

func (g grant) validate() {
	if g.sid != "" {
		if _, ok := wildcardReasons[g.sid]; !ok {
			panic(fmt.Sprintf("grant %q: a Sid is only used to name a wildcard reason, and wildcardReasons has none for it", g.sid))
		}
	}
}

// statement renders the grant for L2 constructs (roles of the control plane's functions).
func (g grant) statement() awsiam.PolicyStatement {
	g.validate()
	props := &awsiam.PolicyStatementProps{
		Effect:    awsiam.Effect_ALLOW,
		Actions:   jsii.Strings(g.actions...),
		Resources: jsii.Strings(g.resources...),
	}
	if g.sid != "" {
		props.Sid = jsii.String(g.sid)
	}
	if len(g.conditions) > 0 {
		props.Conditions = &g.conditions
	}
	return awsiam.NewPolicyStatement(props)
}

// json renders the grant as a policy-document statement for L1 resources.
func (g grant) json() map[string]any {
	g.validate()
	s := map[string]any{"Effect": "Allow", "Action": oneOrMany(g.actions), "Resource": oneOrMany(g.resources)}
	if g.sid != "" {
		s["Sid"] = g.sid
	}
	if len(g.conditions) > 0 {
		s["Condition"] = g.conditions
	}
	return s
}

// policyDocument is an identity-policy document of the grants.
func policyDocument(grants ...grant) map[string]any {
	statements := make([]any, len(grants))
	for i, g := range grants {
		statements[i] = g.json()
	}
	return map[string]any{"Version": "2012-10-17", "Statement": statements}
}

// trustDocument is a role trust policy: one statement allowing principal the actions.
func trustDocument(principal map[string]any, actions []string, conditions map[string]any) map[string]any {
	s := map[string]any{"Effect": "Allow", "Principal": principal, "Action": oneOrMany(actions)}
	if len(conditions) > 0 {
		s["Condition"] = conditions
	}
	return map[string]any{"Version": "2012-10-17", "Statement": []any{s}}
}

// denyInsecureTransport is the statement that makes a resource policy TLS-only. Its wildcard
// action and principal are deliberate: a Deny takes access away from everyone.
func denyInsecureTransport(actions string, resources ...string) map[string]any {
	return map[string]any{
		"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": map[string]any{"AWS": "*"},
		"Action": actions, "Resource": oneOrMany(resources),
		"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
	}
}

func oneOrMany(values []string) any {
	if len(values) == 1 {
		return values[0]
	}
	return values
}

// sub is Fn::Sub: the templates name parameters and pseudo parameters as ${Name}.
func sub(body string) string {
	return *awscdk.Fn_Sub(jsii.String(body), nil)
}

// subf is sub of a formatted body.
func subf(format string, args ...any) string {
	return sub(fmt.Sprintf(format, args...))
}

// reasonsOf lists the wildcard reasons of the grants that have one, for nag suppressions.
func reasonsOf(grants []grant) string {
	seen := map[string]bool{}
	var reasons []string
	for _, g := range grants {
		if r := wildcardReasons[g.sid]; r != "" && !seen[r] {
			seen[r] = true
			reasons = append(reasons, g.sid+": "+r)
		}
	}
	sort.Strings(reasons)
	return strings.Join(reasons, "; ")
}
