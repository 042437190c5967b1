// Package contract holds the names that the CDK app, the functions and the local cloud must
// agree on: function names, environment variables, event shapes and fixed resource names.
// It is the one place to change any of them.
package contract

// Functions: each is functions/<name>, built to build/<name>/bootstrap.
const (
	FunctionInvite      = "invite"
	FunctionOnboard     = "onboard"
	FunctionProvision   = "provision"
	FunctionStackEvents = "stackevents"
)

// Functions lists every Lambda function of the control plane, in build order: the CDK
// creates one function per entry and the local cloud hosts every entry.
var Functions = []string{FunctionInvite, FunctionOnboard, FunctionProvision, FunctionStackEvents,
	FunctionStateIngest, FunctionStateSweep, FunctionStateWait, FunctionSendCommand,
	FunctionMaintenance, FunctionReleases, FunctionUpgrade, FunctionPeering, FunctionTeardown, FunctionAPI}

// Environment variables the control-plane stack gives the functions.
const (
	EnvTableName            = "TABLE_NAME"              // the single DynamoDB table
	EnvEventBusName         = "EVENT_BUS_NAME"          // the vendor bus (name)
	EnvEventBusArn          = "EVENT_BUS_ARN"           // the vendor bus (ARN), a bootstrap parameter
	EnvProvisionMachineArn  = "PROVISION_STATE_MACHINE" // ARN of the provision workflow
	EnvProvisionerRoleArn   = "PROVISIONER_ROLE_ARN"    // the role customers' management roles trust
	EnvBootstrapTemplateURL = "BOOTSTRAP_TEMPLATE_URL"  // where customers fetch the bootstrap template
	EnvInfraTemplatePath    = "INFRA_TEMPLATE_PATH"     // infrastructure template file (in the Lambda bundle)
	EnvStateQueueArn        = "STATE_QUEUE_ARN"         // vendor SQS queue the state exporters write to
	EnvSupportedRegions     = "SUPPORTED_REGIONS"       // comma-separated; empty means the default list
	EnvMaxProvisionAttempts = "MAX_PROVISION_ATTEMPTS"  // bound on delete-and-recreate after rollback
)

// Fixed names in customer accounts. The control plane's sts:AssumeRole permission names only
// ManagementRoleName, so it must never vary per customer.
const (
	ManagementRoleName = "ClickHouseManagementRole"
	BootstrapStackName = "clickhouse-byoc-bootstrap"
	DefaultPrefix      = "clickhouse-cloud"
	InfraTemplateFile  = "infrastructure.template.json"
	ManagedByTagKey    = "clickhouse-byoc" // the tag key creates must carry (<prefix>-byoc in the seed)
)

// EventBridge shapes we consume and emit.
const (
	SourceCloudFormation = "aws.cloudformation"
	// BusStatementOnlyStackEvents is the vendor bus policy statement (owned by the
	// control-plane template) that lets other accounts put nothing but SourceCloudFormation.
	BusStatementOnlyStackEvents = "customers-put-only-stack-events"
	DetailTypeStackStatusChange = "CloudFormation Stack Status Change"
)

// FunctionTagKey tags each control-plane Lambda with its contract.Functions name, so the local
// cloud and operators can tell which template resource runs which build/<name>/bootstrap.
const FunctionTagKey = "byoc:function"

// ManagedByTagValue is the value of the ManagedByTagKey tag. The provision step puts
// {ManagedByTagKey: ManagedByTagValue} on the stacks it creates; CloudFormation propagates
// stack tags to the resources, and the management role's create permissions require the
// pair as aws:RequestTag (IAM condition keys are literal in a template, which is why the key
// is fixed rather than "<prefix>-byoc").
const ManagedByTagValue = "true"

// The customer bootstrap template (cdk.out/ByocBootstrap.template.json): parameter names the
// invite quick-create link fills in, and its output.
const (
	BootstrapParamExternalID          = "ExternalId"
	BootstrapParamControlPlaneRoleArn = "ControlPlaneRoleArn" // = EnvProvisionerRoleArn's value
	BootstrapParamVendorEventBusArn   = "VendorEventBusArn"   // = EnvEventBusArn's value
	BootstrapParamResourcePrefix      = "ResourcePrefix"
	BootstrapOutputManagementRoleArn  = "ManagementRoleArn"
)

// The infrastructure template (InfraTemplateFile in the provision bundle): parameters the
// provision step supplies and outputs it records. Subnet and zone parameters are numbered
// 1..3 in zone order (index i of the arrays is zone i).
const (
	InfraParamDeploymentID      = "DeploymentId"
	InfraParamResourcePrefix    = "ResourcePrefix"
	InfraParamVpcCidr           = "VpcCidr"
	InfraParamKubernetesVersion = "KubernetesVersion" // optional; the template has a default
	// The node groups' Kubernetes minor and AMI release: upgraded in their own stack update
	// after the control plane's (CloudFormation cannot change a node group's version together
	// with other changes). An empty release is the latest AMI of the minor.
	InfraParamNodeKubernetesVersion = "NodeKubernetesVersion"
	InfraParamNodeReleaseVersion    = "NodeReleaseVersion"
	InfraParamStateQueueArn         = "StateQueueArn"
	InfraParamControlPlaneAccountID = "ControlPlaneAccountId"
	// The data-plane-mgmt role trusts only the control plane's role, with the deployment's
	// ExternalId (the same pair the bootstrap's management role trusts).
	InfraParamControlPlaneRoleArn = "ControlPlaneRoleArn"
	InfraParamExternalID          = "ExternalId"
)

var (
	InfraParamZoneIDs            = [3]string{"ZoneId1", "ZoneId2", "ZoneId3"}
	InfraParamPrivateSubnetCidrs = [3]string{"PrivateSubnet1Cidr", "PrivateSubnet2Cidr", "PrivateSubnet3Cidr"}
	InfraParamPublicSubnetCidrs  = [3]string{"PublicSubnet1Cidr", "PublicSubnet2Cidr", "PublicSubnet3Cidr"}
)

// InfraParamAddonVersion is the infrastructure parameter holding an EKS add-on's version
// ("aws-ebs-csi-driver" -> "AddonVersionAwsEbsCsiDriver"); empty is the version EKS chose
// when the add-on was created.
func InfraParamAddonVersion(addon string) string { return "AddonVersion" + Camel(addon) }

// Camel turns a dashed name into CamelCase: "aws-ebs-csi-driver" -> "AwsEbsCsiDriver".
func Camel(name string) string {
	out := make([]byte, 0, len(name))
	upper := true
	for _, c := range []byte(name) {
		if c == '-' {
			upper = true
			continue
		}
		if upper && c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		upper = false
		out = append(out, c)
	}
	return string(out)
}

// Outputs of the infrastructure stack. List outputs are comma-separated, in zone order.
const (
	InfraOutputVpcID                = "VpcId"
	InfraOutputPrivateSubnetIDs     = "PrivateSubnetIds"
	InfraOutputPublicSubnetIDs      = "PublicSubnetIds"
	InfraOutputPrivateRouteTableIDs = "PrivateRouteTableIds"
	// InfraOutputPeersSecurityGroupID is byoc's own security group for the private load
	// balancer: the agent attaches it to the private NLB, and each peering stack adds the
	// peer's ingress rules to it (the load balancer controller's own group is left alone: it
	// removes rules it did not add).
	InfraOutputPeersSecurityGroupID          = "PrivateLbPeersSecurityGroupId"
	InfraOutputClusterName                   = "ClusterName"
	InfraOutputClusterArn                    = "ClusterArn"
	InfraOutputClusterEndpoint               = "ClusterEndpoint"
	InfraOutputClusterSecurityGroupID        = "ClusterSecurityGroupId"
	InfraOutputBucketName                    = "BucketName"
	InfraOutputStateExporterRoleArn          = "StateExporterRoleArn"
	InfraOutputLoadBalancerControllerRoleArn = "LoadBalancerControllerRoleArn"
	InfraOutputEbsCsiDriverRoleArn           = "EbsCsiDriverRoleArn"
	InfraOutputExternalDNSRoleArn            = "ExternalDnsRoleArn"
	InfraOutputCertManagerRoleArn            = "CertManagerRoleArn"
	InfraOutputClusterAutoscalerRoleArn      = "ClusterAutoscalerRoleArn"
	InfraOutputK8sControlPlaneRoleArn        = "K8sControlPlaneRoleArn"
	InfraOutputK8sWorkerRoleArn              = "K8sWorkerRoleArn"
	InfraOutputDataPlaneMgmtRoleArn          = "DataPlaneMgmtRoleArn"
	InfraOutputAgentRoleArn                  = "AgentRoleArn"
)

// The control-plane table (EnvTableName): string partition and sort keys, a TTL attribute
// (epoch seconds) that expires task-token waiters and event idempotency records, and one
// sparse index for the scheduled sweeps. shared/store.TableDefinition is the authoritative
// shape.
const (
	TableAttrPartitionKey = "PK"
	TableAttrSortKey      = "SK"
	TableAttrTTL          = "ttl"
)

// Service state (issue 5): the functions that ingest State Exporter messages, sweep for
// silent services, register workflow tasks waiting on a state condition and send commands
// to the data plane.
const (
	FunctionStateIngest = "stateingest" // SQS-triggered by the state queue
	FunctionStateSweep  = "statesweep"  // scheduled: staleness, unpublished alerts, queue policy
	FunctionStateWait   = "statewait"   // invoked with .waitForTaskToken by workflows
	FunctionSendCommand = "sendcommand" // invoked by workflows: a command to a deployment's agent
)

// StateSweepScheduleInput is the input the state sweep's schedule gives statesweep:
// Scheduler replaces the placeholder with the run's scheduled time (RFC 3339), so a retried
// run judges staleness as of its schedule. The local cloud's scheduler substitutes it too.
const StateSweepScheduleInput = `{"scheduledTime":"<aws.scheduler.scheduled-time>"}`

// Environment of the state functions.
const (
	EnvStateQueueURL   = "STATE_QUEUE_URL"   // the state queue (statesweep keeps its policy)
	EnvStateStaleAfter = "STATE_STALE_AFTER" // Go duration; silence after which a service is stale (default 5m)
)

// InfraOutputStateExporterRoleID is the state exporter role's unique id (Fn::GetAtt
// Role.RoleId, "AROA..."). SQS identifies a message's sender by role id, not ARN, so the
// control plane records it to verify who sent a state message.
const InfraOutputStateExporterRoleID = "StateExporterRoleId"

// Events the state functions put on the vendor bus (source SourceState). Each detail is
// described in docs/state.md.
const (
	SourceState                       = "byoc.state"
	DetailTypeServiceHealthChanged    = "BYOC Service Health Changed"
	DetailTypeDeploymentHealthChanged = "BYOC Deployment Health Changed"
	DetailTypeStateMessageRejected    = "BYOC State Message Rejected"
	// DetailTypeOnboardingStalled: a deployment still invited long after its invitation
	// (the customer has not applied the bootstrap stack, or its completion event was lost).
	DetailTypeOnboardingStalled = "BYOC Onboarding Stalled"
)

// Data-plane command channels: one SQS FIFO queue per deployment, named
// CommandQueuePrefix + deployment id + ".fifo", readable only by the deployment's agent role.
const CommandQueuePrefix = "byoc-commands-"

// LocalSenderIDAttribute is a message attribute only the local cloud reads. kumo does not
// set SQS's SenderId, so in the local cloud the sender's identity ("<role id>:<session>")
// travels in this message attribute (stamped by the front door from the SendMessage
// caller's credentials, or set by the data-plane simulator), and the local SQS poller moves
// it into the SenderId attribute of the event it builds. In AWS, SenderId is set by SQS and
// stateingest never reads this attribute.
const LocalSenderIDAttribute = "byoc-local-sender-id"

// RoleBoundaryPolicyName is the customer-account managed policy (created by the bootstrap
// stack) that every role byoc creates must carry as its permissions boundary: the management
// role may create and change roles only with it, so a role it creates can never hold more
// than the in-cluster components need. Fixed, and outside the "<prefix>-" names the
// management role may edit, so that role cannot widen it.
const RoleBoundaryPolicyName = "ClickHouseBYOCRoleBoundary"

// Maintenance: windows, releases and upgrades (docs/maintenance.md).
const (
	// FunctionMaintenance is fired by each deployment's maintenance schedule and answers the
	// window actions (show, set, defer).
	FunctionMaintenance = "maintenance"
	// FunctionReleases publishes releases, shows and resumes them, and moves their rollouts
	// on (a schedule every five minutes).
	FunctionReleases = "releases"
	// FunctionUpgrade runs the steps of the upgrade workflow.
	FunctionUpgrade = "upgrade"

	// EnvScheduleGroup is the schedule group holding one maintenance schedule per
	// deployment, named by its id ("<stack name>-maintenance").
	EnvScheduleGroup = "MAINTENANCE_SCHEDULE_GROUP"

	EnvUpgradeMachineArn    = "UPGRADE_STATE_MACHINE"      // ARN of the upgrade workflow
	EnvMaintenanceTargetArn = "MAINTENANCE_FUNCTION_ARN"   // what the maintenance schedules invoke
	EnvSchedulerRoleArn     = "MAINTENANCE_SCHEDULER_ROLE" // the role those schedules invoke it with
	EnvSchedulerDLQArn      = "MAINTENANCE_SCHEDULER_DLQ"  // where Scheduler puts a fire it could not deliver

	// Events on the vendor bus (source SourceMaintenance); the detail is maintenance.Notice.
	SourceMaintenance              = "byoc.maintenance"
	DetailTypeMaintenanceUpcoming  = "BYOC Maintenance Upcoming"  // 72 h before a window with work due
	DetailTypeMaintenanceScheduled = "BYOC Maintenance Scheduled" // an off-cycle security upgrade, before it starts
	DetailTypeMaintenanceStarted   = "BYOC Maintenance Started"
	DetailTypeMaintenanceCompleted = "BYOC Maintenance Completed"
	DetailTypeMaintenanceFailed    = "BYOC Maintenance Failed"
	DetailTypeReleaseHalted        = "BYOC Release Halted"
)

// FunctionPeering handles a deployment's private connectivity: peering requests (operator
// action or BYOC Peering Requested), the peering workflow's steps, PrivateLink, the public
// load balancer and IP access lists.
const FunctionPeering = "peering"

// The connectivity templates: the peering stack and the PrivateLink stack byoc creates in the
// customer's BYOC account (their bodies travel in the peering function's bundle), and the
// peer-side template the customer applies in the account of the VPC they peer with.
const (
	PeeringTemplateFile     = "peering.template.json"
	PrivateLinkTemplateFile = "privatelink.template.json"

	PeeringParamVpcID            = "VpcId"
	PeeringParamPeerVpcID        = "PeerVpcId"
	PeeringParamPeerAccountID    = "PeerAccountId"
	PeeringParamPeerRegion       = "PeerRegion"
	PeeringParamPeerRoleArn      = "PeerRoleArn"  // empty: the connection exists (ConnectionId)
	PeeringParamConnectionID     = "ConnectionId" // empty: the stack creates the connection
	PeeringParamRouteTableIDs    = "PrivateRouteTableIds"
	PeeringParamSecurityGroupID  = "LoadBalancerSecurityGroupId"
	PeeringOutputConnectionID    = "PeeringConnectionId"
	PrivateLinkParamLoadBalancer = "LoadBalancerArn"
	PrivateLinkParamPrincipals   = "AllowedPrincipals"
	PrivateLinkOutputServiceID   = "ServiceId"
	PrivateLinkOutputServiceName = "ServiceName"

	PeerAccessParamByocAccountID = "ByocAccountId"
	PeerAccessParamPeerVpcID     = "PeerVpcId"
	PeerAccessParamConnectionID  = "ConnectionId"
	PeerAccessParamByocCidr      = "ByocVpcCidr"
	PeerAccessOutputRoleArn      = "AccepterRoleArn"
	// PeerAccepterRolePrefix names the accepter role of the peer-side template
	// (<prefix><peer VPC id>); the management role may assume only roles so named.
	PeerAccepterRolePrefix = "byoc-peer-accepter-"
	PeerAccessStackName    = "clickhouse-byoc-peer-access" // one per peer VPC: <name>-<vpc id>
	PeerAccessTemplateFile = "ByocPeerAccess.template.json"
)

// PeeringParamPeerCidrs are the peer CIDR parameters of the peering template (a VPC has at
// most five IPv4 CIDRs), and PeerAccessParamRouteTables the route tables the peer-side
// template adds the route to the BYOC VPC in.
var (
	PeeringParamPeerCidrs      = [5]string{"PeerCidr1", "PeerCidr2", "PeerCidr3", "PeerCidr4", "PeerCidr5"}
	PeerAccessParamRouteTables = [4]string{"RouteTableId1", "RouteTableId2", "RouteTableId3", "RouteTableId4"}
)

// Connectivity events on the vendor bus. An operator's system asks for a peering with
// BYOC Peering Requested (source byoc.operator, the vendor's own account: the bus policy
// refuses byoc.* sources from any other); the peering function announces each peering's
// state changes as BYOC Peering Changed (source byoc.peering).
const (
	SourceOperator               = "byoc.operator"
	DetailTypePeeringRequested   = "BYOC Peering Requested"
	SourcePeering                = "byoc.peering"
	DetailTypePeeringChanged     = "BYOC Peering Changed"
	EnvPeeringMachineArn         = "PEERING_STATE_MACHINE" // ARN of the peering workflow
	OutputPeeringStateMachineArn = "PeeringStateMachineArn"
	OutputPeerAccessTemplateURL  = "PeerAccessTemplateUrl"
)

// The operator surface: the API function, and the teardown workflow's steps.
const (
	FunctionAPI      = "api"
	FunctionTeardown = "teardown"
)

// The operator API (functions/api): one HTTP API, IAM-authenticated, in front of the
// operator actions. docs/api.md
const (
	EnvCommandMachineArn   = "COMMAND_STATE_MACHINE"  // ARN of the command workflow
	EnvTeardownMachineArn  = "TEARDOWN_STATE_MACHINE" // ARN of the teardown workflow
	EnvInviteFunction      = "INVITE_FUNCTION"        // the operator functions the API forwards to
	EnvMaintenanceFunction = "MAINTENANCE_FUNCTION"
	EnvReleasesFunction    = "RELEASES_FUNCTION"
	EnvPeeringFunction     = "PEERING_FUNCTION"

	// OutputApiUrl is the control-plane stack's output the CLI reads the API's address from.
	OutputApiUrl = "ApiUrl"
	// OutputTableName is the control-plane stack's output naming its table (the CLI's
	// one-off migrations read it).
	OutputTableName = "TableName"
	// APIPathPrefix is the version prefix of every API resource.
	APIPathPrefix = "/v1/"
)

// A deployment's retirement (functions/teardown). docs/teardown.md
const (
	SourceLifecycle             = "byoc.lifecycle"
	DetailTypeDeploymentDeleted = "BYOC Deployment Deleted" // the customer may delete the bootstrap stack
	// FailureTeardown is the Failure status of a teardown that stopped (a provisioning's is
	// the infrastructure stack's status).
	FailureTeardown = "TEARDOWN_FAILED"
)

// BusStatementCustomer is the vendor bus policy statement that admits one customer account
// (invite adds it, teardown removes it).
func BusStatementCustomer(accountID string) string { return "customer-" + accountID }
