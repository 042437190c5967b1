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

// Functions lists every Lambda function of the control plane, in build order.
var Functions = []string{FunctionInvite, FunctionOnboard, FunctionProvision, FunctionStackEvents}

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
	SourceCloudFormation        = "aws.cloudformation"
	DetailTypeStackStatusChange = "CloudFormation Stack Status Change"
)
