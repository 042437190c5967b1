package stacks

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsscheduler"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/byocloud/byoc/infra/workflows"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/store"
)

// ControlPlaneStackID is the construct id and template name of the vendor's stack
// (cdk.out/ByocControlPlane.template.json); `cdk deploy ByocControlPlane` deploys it.
const ControlPlaneStackID = "ByocControlPlane"

// maxProvisionAttempts bounds delete-and-recreate after a failed infrastructure stack.
const maxProvisionAttempts = "3"

// Service state (docs/state.md "CDK wiring").
const (
	// stateIngestTimeout is stateingest's timeout: a batch of ten is judged concurrently and
	// costs a few DynamoDB round trips per message, far below it.
	stateIngestTimeout = 30
	// stateQueueVisibility is the state queue's visibility timeout: at least six times
	// stateingest's timeout, as Lambda's SQS event source asks, so a batch still being
	// handled (or retried by Lambda after throttling) is not delivered twice.
	stateQueueVisibility = 6 * stateIngestTimeout
	// stateIngestBatch and stateIngestWindow: batches of ten, gathered for at most a second,
	// so a lone report is judged within a second and a burst costs one invocation per ten.
	stateIngestBatch  = 10
	stateIngestWindow = 1
	// stateSweepRate: the sweep runs every minute (the sweep index has minute resolution).
	stateSweepRate = "rate(1 minute)"
	// stateSweepRetries is how often Scheduler retries a sweep it could not invoke; after
	// that the event goes to the events DLQ. The next minute's sweep catches up anyway.
	stateSweepRetries = 2
	// stateSweepMaxAge: a sweep not delivered within five minutes is superseded by the
	// sweeps since; Scheduler sends it to the DLQ instead of running it late.
	stateSweepMaxAge = 300
)

// Control-plane output names (operators and the local cloud read them).
const (
	OutputVendorEventBusName       = "VendorEventBusName"
	OutputVendorEventBusArn        = "VendorEventBusArn"
	OutputProvisionerRoleArn       = "ProvisionerRoleArn"
	OutputTableName                = contract.OutputTableName
	OutputStateQueueArn            = "StateQueueArn"
	OutputStateQueueURL            = "StateQueueUrl"
	OutputProvisionStateMachineArn = "ProvisionStateMachineArn"
	OutputCommandStateMachineArn   = "CommandStateMachineArn"
	OutputBootstrapTemplateURL     = "BootstrapTemplateUrl"
)

// OutputFunctionName is the output holding the deployed name of function fn (e.g.
// "InviteFunctionName": operators invoke invite with it).
func OutputFunctionName(fn string) string { return title(fn) + "FunctionName" }

// ControlPlaneProps are the control-plane stack's inputs.
type ControlPlaneProps struct {
	// CodeDirs maps each contract.Functions name to the directory deployed as its code: the
	// one holding its linux/arm64 bootstrap (for provision, the staged bundle that also holds
	// the infrastructure template).
	CodeDirs map[string]string
	// BootstrapTemplateURL is where customers fetch the bootstrap template (a literal URL or a
	// CloudFormation token).
	BootstrapTemplateURL string
	// PeerAccessTemplateURL is where customers fetch the peer-side template: beside the
	// bootstrap template.
	PeerAccessTemplateURL string
	// ProvisionDefinition is the provision workflow (ASL) with its ${...} placeholders.
	ProvisionDefinition string
	// SupportedRegions is the comma-separated region list given to invite and provision;
	// empty keeps their built-in default.
	SupportedRegions string
	// Tracing turns on X-Ray for the functions and the workflow.
	Tracing bool
	// StateStaleAfter is statesweep's STATE_STALE_AFTER (a Go duration, 1m to 24h); empty
	// leaves the function's default (5m) and sets no variable.
	StateStaleAfter string
}

// ControlPlane is the synthesized control-plane stack with the constructs tests refer to.
type ControlPlane struct {
	Stack            awscdk.Stack
	Table            awsdynamodb.Table
	Bus              awsevents.EventBus
	EventsDLQ        awssqs.Queue
	StateQueue       awssqs.Queue
	StateDLQ         awssqs.Queue
	Functions        map[string]awslambda.Function
	ProvisionMachine awsstepfunctions.CfnStateMachine
	CommandMachine   awsstepfunctions.CfnStateMachine
	UpgradeMachine   awsstepfunctions.CfnStateMachine
	PeeringMachine   awsstepfunctions.CfnStateMachine
	TeardownMachine  awsstepfunctions.CfnStateMachine
	MaintenanceGroup awsscheduler.CfnScheduleGroup
	SweepSchedule    awsscheduler.CfnSchedule
	OperatorKey      awskms.Key
	OperatorTopic    awssns.Topic
}

// NewControlPlaneStack builds the vendor's stack: the table, the vendor bus and its rules, the
// state queue, the functions (contract.Functions), the provision workflow, the state sweep's
// schedule, the alarms and the operator notification topic with its rules.
func NewControlPlaneStack(scope constructs.Construct, id string, props ControlPlaneProps) (*ControlPlane, error) {
	if err := checkDefinition(props.ProvisionDefinition); err != nil {
		return nil, err
	}
	if err := checkStaleAfter(props.StateStaleAfter); err != nil {
		return nil, err
	}
	indexes, err := tableIndexes(store.TableDefinition(""))
	if err != nil {
		return nil, err
	}
	for _, fn := range contract.Functions {
		if props.CodeDirs[fn] == "" {
			return nil, fmt.Errorf("control plane: CodeDirs[%q] is empty: every function needs a code directory", fn)
		}
	}
	stack := awscdk.NewStack(scope, jsii.String(id), &awscdk.StackProps{
		Description: jsii.String("byoc control plane: event-driven provisioning of ClickHouse BYOC infrastructure in customer accounts"),
	})
	b := &controlPlaneBuilder{props: props, cp: &ControlPlane{Stack: stack, Functions: map[string]awslambda.Function{}}}
	b.data(indexes)
	b.functionsAndWorkflow()
	b.stateFunctions()
	b.maintenance()
	b.connectivity()
	b.teardown()
	b.operatorAPI()
	b.rules()
	b.operatorTopic()
	alarms := b.alarms()
	b.admitPublishers(b.operatorEventRules(), alarms)
	b.outputs()
	return b.cp, nil
}

type controlPlaneBuilder struct {
	props ControlPlaneProps
	cp    *ControlPlane
	roles map[string]awsiam.Role
}

// checkDefinition refuses a workflow whose placeholders are not exactly the ones this stack
// substitutes: a missing one would deploy a workflow invoking nothing, an unknown one would
// reach Step Functions as a literal "${...}".
func checkDefinition(def string) error {
	if strings.TrimSpace(def) == "" {
		return fmt.Errorf("control plane: ProvisionDefinition is empty: it must be the provision workflow (infra/workflows)")
	}
	got := workflows.Placeholders(def)
	want := []string{workflows.ProvisionFunctionArn}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		return fmt.Errorf("control plane: ProvisionDefinition placeholders are %v: the stack substitutes exactly %v", got, want)
	}
	return nil
}

// checkStaleAfter applies statesweep's rule for STATE_STALE_AFTER at synthesis, so a wrong
// value fails `cdk synth` rather than every sweep's cold start.
func checkStaleAfter(v string) error {
	if _, err := health.ParseStaleAfter(v); err != nil {
		return fmt.Errorf("control plane: StateStaleAfter %w", err)
	}
	return nil
}

// tableIndexes turns the global secondary indexes of the table the repository expects
// (servicestate.TableDefinition) into the CDK's, so the stack and the code share one
// definition of the index names, keys and projections.
func tableIndexes(def *dynamodb.CreateTableInput) ([]*awsdynamodb.GlobalSecondaryIndexProps, error) {
	attrTypes := map[string]types.ScalarAttributeType{}
	for _, a := range def.AttributeDefinitions {
		attrTypes[aws.ToString(a.AttributeName)] = a.AttributeType
	}
	attribute := func(name string) (*awsdynamodb.Attribute, error) {
		t, ok := map[types.ScalarAttributeType]awsdynamodb.AttributeType{
			types.ScalarAttributeTypeS: awsdynamodb.AttributeType_STRING,
			types.ScalarAttributeTypeN: awsdynamodb.AttributeType_NUMBER,
			types.ScalarAttributeTypeB: awsdynamodb.AttributeType_BINARY,
		}[attrTypes[name]]
		if !ok {
			return nil, fmt.Errorf("control plane: table index key %q has no attribute definition", name)
		}
		return &awsdynamodb.Attribute{Name: jsii.String(name), Type: t}, nil
	}
	var out []*awsdynamodb.GlobalSecondaryIndexProps
	for _, gsi := range def.GlobalSecondaryIndexes {
		props := &awsdynamodb.GlobalSecondaryIndexProps{IndexName: gsi.IndexName}
		for _, k := range gsi.KeySchema {
			a, err := attribute(aws.ToString(k.AttributeName))
			if err != nil {
				return nil, err
			}
			if k.KeyType == types.KeyTypeHash {
				props.PartitionKey = a
			} else {
				props.SortKey = a
			}
		}
		switch p := gsi.Projection; {
		case p == nil || p.ProjectionType == types.ProjectionTypeAll:
			props.ProjectionType = awsdynamodb.ProjectionType_ALL
		case p.ProjectionType == types.ProjectionTypeKeysOnly:
			props.ProjectionType = awsdynamodb.ProjectionType_KEYS_ONLY
		case p.ProjectionType == types.ProjectionTypeInclude:
			props.ProjectionType = awsdynamodb.ProjectionType_INCLUDE
			props.NonKeyAttributes = jsii.Strings(p.NonKeyAttributes...)
		default:
			return nil, fmt.Errorf("control plane: index %s: unknown projection %q", aws.ToString(gsi.IndexName), p.ProjectionType)
		}
		out = append(out, props)
	}
	return out, nil
}

func (b *controlPlaneBuilder) data(indexes []*awsdynamodb.GlobalSecondaryIndexProps) {
	s := b.cp.Stack
	// Key names and TTL attribute are the store's (contract.TableAttr*); on-demand, PITR, encrypted.
	// Retained on stack deletion: it is the record of every customer deployment.
	b.cp.Table = awsdynamodb.NewTable(s, jsii.String("Table"), &awsdynamodb.TableProps{
		PartitionKey:        &awsdynamodb.Attribute{Name: jsii.String(contract.TableAttrPartitionKey), Type: awsdynamodb.AttributeType_STRING},
		SortKey:             &awsdynamodb.Attribute{Name: jsii.String(contract.TableAttrSortKey), Type: awsdynamodb.AttributeType_STRING},
		BillingMode:         awsdynamodb.BillingMode_PAY_PER_REQUEST,
		TimeToLiveAttribute: jsii.String(contract.TableAttrTTL),
		Encryption:          awsdynamodb.TableEncryption_AWS_MANAGED,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	// SweepIndex (servicestate): the sweep's key queries for silent services and unpublished
	// alerts.
	for _, index := range indexes {
		b.cp.Table.AddGlobalSecondaryIndex(index)
	}

	// Invite adds each customer account to the bus's policy (events:PutPermission, statement
	// "customer-<account>"). The template owns one statement of it (below), never the whole
	// policy (the bus's Policy property), or a stack update would revoke every customer.
	b.cp.Bus = awsevents.NewEventBus(s, jsii.String("VendorBus"), &awsevents.EventBusProps{
		Description: jsii.String("CloudFormation events forwarded from invited customer accounts"),
	})
	// What an admitted customer may put: only CloudFormation's own events, which PutEvents
	// cannot forge (aws.* sources are refused to callers) and which the customer's forwarding
	// rule relays. Invite's statements admit accounts; this one statement (not one per
	// customer: the policy's size is capped) denies every other source to every account but
	// this one, so no customer can put byoc.* events that look like the control plane's.
	// L1: the L2's AddToResourcePolicy rewrites the statement id. Synthesis prints jsii's
	// "CfnEventBusPolicy#principal is deprecated" for it although Principal is not set: the
	// L1 constructor assigns every property.
	awsevents.NewCfnEventBusPolicy(s, jsii.String("VendorBusCustomersPutOnlyStackEvents"), &awsevents.CfnEventBusPolicyProps{
		EventBusName: b.cp.Bus.EventBusName(),
		StatementId:  jsii.String(contract.BusStatementOnlyStackEvents),
		Statement: map[string]any{
			"Effect":    "Deny",
			"Principal": "*",
			"Action":    "events:PutEvents",
			"Resource":  b.cp.Bus.EventBusArn(),
			"Condition": map[string]any{
				"StringNotEquals":             map[string]any{"aws:PrincipalAccount": *s.Account()},
				"ForAnyValue:StringNotEquals": map[string]any{"events:source": []any{contract.SourceCloudFormation}},
			},
		},
	})

	// A dead-letter queue keeps messages 14 days; the state queue 4 (a report older than
	// that is long superseded). Dead-letter queues carry the stack's TLS-only policy.
	dlq := func(id string) awssqs.Queue {
		return awssqs.NewQueue(s, jsii.String(id), &awssqs.QueueProps{
			Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
			EnforceSSL:      jsii.Bool(true),
			RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
		})
	}
	b.cp.EventsDLQ = dlq("EventsDlq")
	suppress(b.cp.EventsDLQ, "AwsSolutions-SQS3",
		"this queue is itself a dead-letter queue: of the vendor-bus rule targets, of onboard's, stackevents' and statesweep's asynchronous invocations and of the state sweep's schedule")
	b.cp.StateDLQ = dlq("StateDlq")
	// The state queue has no policy in the template: statesweep (and provision, as it
	// registers a data plane) writes it with channel.AdmitExporters, admitting every
	// registered exporter role and denying plain HTTP. SetQueueAttributes replaces the whole
	// policy, so a template-owned AWS::SQS::QueuePolicy would be reset by every deploy and
	// refuse the exporters until the next sweep.
	b.cp.StateQueue = awssqs.NewQueue(s, jsii.String("StateQueue"), &awssqs.QueueProps{
		Encryption:        awssqs.QueueEncryption_SQS_MANAGED,
		RetentionPeriod:   awscdk.Duration_Days(jsii.Number(4)),
		VisibilityTimeout: awscdk.Duration_Seconds(jsii.Number(stateQueueVisibility)),
		DeadLetterQueue:   &awssqs.DeadLetterQueue{Queue: b.cp.StateDLQ, MaxReceiveCount: jsii.Number(5)},
	})
	suppress(b.cp.StateQueue, "AwsSolutions-SQS4",
		"the state queue's policy, TLS-only deny included, is written at run time by statesweep and provision (channel.AdmitExporters) "+
			"because it lists every registered exporter role; a template-owned queue policy would replace it on every deploy")
}

func (b *controlPlaneBuilder) functionsAndWorkflow() {
	s := b.cp.Stack
	table := b.cp.Table.TableArn()
	tableGrant := grant{resources: []string{*table}, actions: []string{
		"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem",
		"dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem", "dynamodb:DescribeTable",
	}}
	b.roles = map[string]awsiam.Role{}

	// provision: its role is the one customers' management roles trust (the provisioner); it
	// reads the vendor's account from that ARN. Recording a deployment it opens the
	// deployment's command channel and admits its exporter to the state queue.
	provision := b.function(contract.FunctionProvision, 120, map[string]*string{
		contract.EnvTableName:            b.cp.Table.TableName(),
		contract.EnvStateQueueArn:        b.cp.StateQueue.QueueArn(),
		contract.EnvStateQueueURL:        b.cp.StateQueue.QueueUrl(),
		contract.EnvInfraTemplatePath:    jsii.String("/var/task/" + contract.InfraTemplateFile),
		contract.EnvMaxProvisionAttempts: jsii.String(maxProvisionAttempts),
	}, nil, tableGrant, grant{
		sid:       "AssumeCustomerManagementRole",
		actions:   []string{"sts:AssumeRole"},
		resources: []string{subf("arn:${AWS::Partition}:iam::*:role/%s", contract.ManagementRoleName)},
	}, b.stateQueuePolicyGrant(), grant{
		sid:     "ManageCommandChannels",
		actions: []string{"sqs:CreateQueue", "sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:SetQueueAttributes", "sqs:TagQueue", "sqs:DeleteQueue"},
		// sendcommand holds the send actions on the same pattern (SendCommands).
		resources: []string{commandQueuesArn},
	})

	machine := b.provisionWorkflow(provision)

	// Task-token permissions go in separate policies: provision's function must exist before
	// the workflow that invokes it, so its role's default policy cannot name the workflow.
	taskTokens := grant{resources: []string{*machine.AttrArn()},
		actions: []string{"states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"}}
	awsiam.NewPolicy(s, jsii.String("ProvisionTaskTokens"), &awsiam.PolicyProps{
		Roles: &[]awsiam.IRole{b.roles[contract.FunctionProvision]}, Statements: &[]awsiam.PolicyStatement{taskTokens.statement()},
	})

	b.function(contract.FunctionOnboard, 30, map[string]*string{
		contract.EnvTableName:           b.cp.Table.TableName(),
		contract.EnvProvisionMachineArn: machine.AttrArn(),
	}, b.cp.EventsDLQ, tableGrant, grant{resources: []string{*machine.AttrArn()}, actions: []string{"states:StartExecution"}},
		// A restart steps over closed executions of the names it tries.
		grant{sid: "DescribeProvisionExecutions", resources: []string{b.provisionExecutionsArn()}, actions: []string{"states:DescribeExecution"}})

	b.function(contract.FunctionStackEvents, 30, map[string]*string{
		contract.EnvTableName: b.cp.Table.TableName(),
	}, b.cp.EventsDLQ, tableGrant, taskTokens)

	inviteEnv := map[string]*string{
		contract.EnvTableName:            b.cp.Table.TableName(),
		contract.EnvEventBusName:         b.cp.Bus.EventBusName(),
		contract.EnvEventBusArn:          b.cp.Bus.EventBusArn(),
		contract.EnvProvisionerRoleArn:   b.roles[contract.FunctionProvision].RoleArn(),
		contract.EnvBootstrapTemplateURL: jsii.String(b.props.BootstrapTemplateURL),
		contract.EnvStateQueueArn:        b.cp.StateQueue.QueueArn(),
	}
	b.function(contract.FunctionInvite, 30, inviteEnv, nil, tableGrant, grant{
		resources: []string{*b.cp.Bus.EventBusArn()}, actions: []string{"events:PutPermission", "events:RemovePermission"},
	})
	if b.props.SupportedRegions != "" {
		for _, fn := range []string{contract.FunctionInvite, contract.FunctionProvision} {
			b.cp.Functions[fn].AddEnvironment(jsii.String(contract.EnvSupportedRegions), jsii.String(b.props.SupportedRegions), nil)
		}
	}
}

// commandQueuesArn matches every deployment's command channel in this account and region
// (channel.QueueName: contract.CommandQueuePrefix + deployment id + ".fifo").
var commandQueuesArn = subf("arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:%s*", contract.CommandQueuePrefix)

// stateQueuePolicyGrant lets a function keep the state queue's policy
// (channel.AdmitExporters reads it and writes it only when it changed).
func (b *controlPlaneBuilder) stateQueuePolicyGrant() grant {
	return grant{resources: []string{*b.cp.StateQueue.QueueArn()}, actions: []string{"sqs:GetQueueAttributes", "sqs:SetQueueAttributes"}}
}

// stateFunctions: the service-state path (docs/state.md). stateingest is fed by the state
// queue; statesweep runs every minute from an EventBridge Scheduler schedule; the command
// workflow invokes sendcommand and then statewait, whose task stateingest resumes.
func (b *controlPlaneBuilder) stateFunctions() {
	table := *b.cp.Table.TableArn()
	// Item access only: transactions are authorized per item action (ConditionCheckItem for
	// their condition checks); the state functions never scan, batch or describe.
	items := grant{resources: []string{table}, actions: []string{
		"dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem",
	}}
	putEvents := grant{resources: []string{*b.cp.Bus.EventBusArn()}, actions: []string{"events:PutEvents"}}

	ingest := b.function(contract.FunctionStateIngest, stateIngestTimeout, map[string]*string{
		contract.EnvTableName:    b.cp.Table.TableName(),
		contract.EnvEventBusName: b.cp.Bus.EventBusName(),
	}, nil, items, putEvents)
	// The event source grants the consume actions on the state queue. Failed messages are
	// reported one by one (ReportBatchItemFailures), so a poison message never makes the
	// good ones of its batch run again; after 5 receives SQS moves it to the state DLQ.
	ingest.AddEventSource(awslambdaeventsources.NewSqsEventSource(b.cp.StateQueue, &awslambdaeventsources.SqsEventSourceProps{
		BatchSize:               jsii.Number(stateIngestBatch),
		MaxBatchingWindow:       awscdk.Duration_Seconds(jsii.Number(stateIngestWindow)),
		ReportBatchItemFailures: jsii.Bool(true),
	}))

	sweepEnv := map[string]*string{
		contract.EnvTableName:     b.cp.Table.TableName(),
		contract.EnvEventBusName:  b.cp.Bus.EventBusName(),
		contract.EnvStateQueueURL: b.cp.StateQueue.QueueUrl(),
	}
	if b.props.StateStaleAfter != "" {
		sweepEnv[contract.EnvStateStaleAfter] = jsii.String(b.props.StateStaleAfter)
	}
	// A sweep that fails after Lambda's own retries lands in the events DLQ, whose alarm
	// then says the sweep is stuck (the next minute's sweep would otherwise hide it).
	sweep := b.function(contract.FunctionStateSweep, 60, sweepEnv, b.cp.EventsDLQ, items,
		grant{resources: []string{table + "/index/" + servicestate.SweepIndex}, actions: []string{"dynamodb:Query"}},
		putEvents, b.stateQueuePolicyGrant(),
		// Whether a provisioning deployment's execution still runs (failAbandoned).
		grant{sid: "DescribeProvisionExecutions", resources: []string{b.provisionExecutionsArn()}, actions: []string{"states:DescribeExecution"}})
	b.sweepSchedule(sweep)

	b.function(contract.FunctionStateWait, 30, map[string]*string{
		contract.EnvTableName: b.cp.Table.TableName(),
	}, nil, items)

	// sendcommand records a command (CreateCommand: PutItem, GetItem on a retry; then
	// UpdateItem to sent) and puts it on its deployment's command queue.
	b.function(contract.FunctionSendCommand, 30, map[string]*string{
		contract.EnvTableName: b.cp.Table.TableName(),
	}, nil,
		grant{resources: []string{table}, actions: []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}},
		grant{sid: "SendCommands", resources: []string{commandQueuesArn}, actions: []string{"sqs:GetQueueUrl", "sqs:SendMessage"}})

	b.commandWorkflow()
}

// sweepSchedule runs statesweep every minute. Its input carries the scheduled time, so a
// retried sweep judges staleness as of its schedule, not of the retry. An L1 resource so
// that its role holds exactly the statements written here.
func (b *controlPlaneBuilder) sweepSchedule(sweep awslambda.Function) {
	s := b.cp.Stack
	role := awsiam.NewRole(s, jsii.String("StateSweepScheduleRole"), &awsiam.RoleProps{
		// Only schedules of this account may use the role (confused-deputy guard).
		AssumedBy: awsiam.NewPrincipalWithConditions(awsiam.NewServicePrincipal(jsii.String("scheduler.amazonaws.com"), nil),
			&map[string]any{"StringEquals": map[string]any{"aws:SourceAccount": s.Account()}}),
		Description: jsii.String("Lets EventBridge Scheduler invoke the byoc statesweep function, and nothing else"),
	})
	grants := []grant{
		{resources: []string{*sweep.FunctionArn()}, actions: []string{"lambda:InvokeFunction"}},
		// Scheduler delivers events it could not deliver to the DLQ with this role.
		{resources: []string{*b.cp.EventsDLQ.QueueArn()}, actions: []string{"sqs:SendMessage"}},
	}
	for _, g := range grants {
		role.AddToPolicy(g.statement())
	}
	schedule := awsscheduler.NewCfnSchedule(s, jsii.String("StateSweepSchedule"), &awsscheduler.CfnScheduleProps{
		Description:        jsii.String("Runs the byoc state sweep: stale services, unpublished alerts, the state queue's policy"),
		ScheduleExpression: jsii.String(stateSweepRate),
		FlexibleTimeWindow: &awsscheduler.CfnSchedule_FlexibleTimeWindowProperty{Mode: jsii.String("OFF")},
		State:              jsii.String("ENABLED"),
		Target: &awsscheduler.CfnSchedule_TargetProperty{
			Arn:     sweep.FunctionArn(),
			RoleArn: role.RoleArn(),
			Input:   jsii.String(contract.StateSweepScheduleInput),
			RetryPolicy: &awsscheduler.CfnSchedule_RetryPolicyProperty{
				MaximumRetryAttempts:     jsii.Number(stateSweepRetries),
				MaximumEventAgeInSeconds: jsii.Number(stateSweepMaxAge),
			},
			DeadLetterConfig: &awsscheduler.CfnSchedule_DeadLetterConfigProperty{Arn: b.cp.EventsDLQ.QueueArn()},
		},
	})
	// Scheduler checks nothing at creation, but the first run must find the role's policy.
	schedule.Node().AddDependency(role)
	b.cp.SweepSchedule = schedule
}

// sharedRoles: functions that run as another function's role. upgrade changes customer
// stacks as provision does, and customers' management roles trust the provisioner role
// alone: both workflows act in customer accounts as that one identity.
var sharedRoles = map[string]string{contract.FunctionUpgrade: contract.FunctionProvision, contract.FunctionPeering: contract.FunctionProvision,
	contract.FunctionTeardown: contract.FunctionProvision}

// function creates one Lambda function with its own role (or the one it shares) and log
// group. The role starts empty: it gets write access to its log group and exactly the
// grants given.
func (b *controlPlaneBuilder) function(name string, timeoutSeconds float64, env map[string]*string, asyncDLQ awssqs.IQueue, grants ...grant) awslambda.Function {
	s := b.cp.Stack
	id := title(name)
	var role awsiam.Role
	if owner, ok := sharedRoles[name]; ok {
		role = b.roles[owner]
	} else {
		role = awsiam.NewRole(s, jsii.String(id+"Role"), &awsiam.RoleProps{
			AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
			Description: jsii.String("Role of the byoc " + name + " function"),
		})
	}
	if name == contract.FunctionProvision {
		env[contract.EnvProvisionerRoleArn] = role.RoleArn()
	}
	logs := awslogs.NewLogGroup(s, jsii.String(id+"Logs"), &awslogs.LogGroupProps{
		Retention:     awslogs.RetentionDays_ONE_MONTH,
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	logs.GrantWrite(role)
	if b.props.Tracing {
		grants = append(grants, xrayGrant())
	}
	for _, g := range grants {
		role.AddToPolicy(g.statement())
	}
	suppressWildcards(role, grants)

	props := &awslambda.FunctionProps{
		Code:         awslambda.Code_FromAsset(jsii.String(b.props.CodeDirs[name]), nil),
		Runtime:      awslambda.Runtime_PROVIDED_AL2023(),
		Architecture: awslambda.Architecture_ARM_64(),
		Handler:      jsii.String("bootstrap"),
		Role:         role,
		LogGroup:     logs,
		Environment:  &env,
		Timeout:      awscdk.Duration_Seconds(jsii.Number(timeoutSeconds)),
		MemorySize:   jsii.Number(256),
		Description:  jsii.String("byoc " + name),
	}
	if asyncDLQ != nil {
		props.DeadLetterQueue = asyncDLQ
	}
	fn := awslambda.NewFunction(s, jsii.String(id+"Function"), props)
	if b.props.Tracing {
		// Set on the L1 resource: the L2 Tracing option would add its own unnamed X-Ray
		// statement next to xrayGrant.
		fn.Node().DefaultChild().(awslambda.CfnFunction).AddPropertyOverride(jsii.String("TracingConfig.Mode"), jsii.String("Active"))
	}
	awscdk.Tags_Of(fn).Add(jsii.String(contract.FunctionTagKey), jsii.String(name), nil)
	b.roles[name] = role
	b.cp.Functions[name] = fn
	return fn
}

func xrayGrant() grant {
	return grant{sid: "WriteXRayTraces", resources: []string{"*"},
		actions: []string{"xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"}}
}

// provisionWorkflow is the provision state machine, from the embedded ASL with
// ${ProvisionFunctionArn} substituted by CloudFormation.
func (b *controlPlaneBuilder) provisionWorkflow(provision awslambda.Function) awsstepfunctions.CfnStateMachine {
	machine := b.workflow("Provision", "provision", "Role of the byoc provision workflow", b.props.ProvisionDefinition,
		map[string]awslambda.Function{workflows.ProvisionFunctionArn: provision})
	b.cp.ProvisionMachine = machine
	return machine
}

// commandWorkflow is the command state machine (workflows.Command): sendcommand, then
// statewait until the service acknowledges the command. stateingest and statewait resume
// its waiting task; the grant is a policy of its own, since the workflow's definition names
// statewait, which must exist first.
func (b *controlPlaneBuilder) commandWorkflow() {
	machine := b.workflow("Command", "command", "Role of the byoc command workflow", workflows.Command, map[string]awslambda.Function{
		workflows.SendCommandFunctionArn: b.cp.Functions[contract.FunctionSendCommand],
		workflows.StateWaitFunctionArn:   b.cp.Functions[contract.FunctionStateWait],
	})
	resume := grant{resources: []string{*machine.AttrArn()}, actions: []string{"states:SendTaskSuccess", "states:SendTaskFailure"}}
	awsiam.NewPolicy(b.cp.Stack, jsii.String("CommandTaskTokens"), &awsiam.PolicyProps{
		Roles:      &[]awsiam.IRole{b.roles[contract.FunctionStateIngest], b.roles[contract.FunctionStateWait]},
		Statements: &[]awsiam.PolicyStatement{resume.statement()},
	})
	b.cp.CommandMachine = machine
}

// workflow creates a Standard state machine from an ASL definition whose ${...} placeholders
// CloudFormation fills with the ARNs of the functions it invokes. An L1 resource so that its
// role holds exactly the statements written here: invoking those functions, delivering its
// logs (ALL, without execution data) and, with tracing, X-Ray.
func (b *controlPlaneBuilder) workflow(id, logName, description, definition string, invokes map[string]awslambda.Function) awsstepfunctions.CfnStateMachine {
	s := b.cp.Stack
	role := awsiam.NewRole(s, jsii.String(id+"WorkflowRole"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("states.amazonaws.com"), nil),
		Description: jsii.String(description),
	})
	subs := map[string]*string{}
	var functions []string
	for _, placeholder := range slices.Sorted(maps.Keys(invokes)) {
		subs[placeholder] = invokes[placeholder].FunctionArn()
		functions = append(functions, *invokes[placeholder].FunctionArn())
	}
	grants := []grant{
		{resources: functions, actions: []string{"lambda:InvokeFunction"}},
		{sid: "DeliverWorkflowLogs", resources: []string{"*"}, actions: []string{
			"logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
			"logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
		}},
	}
	if b.props.Tracing {
		grants = append(grants, xrayGrant())
	}
	for _, g := range grants {
		role.AddToPolicy(g.statement())
	}
	suppressWildcards(role, grants)

	// Under /aws/vendedlogs/ so that CloudWatch Logs' account-wide resource policy does not
	// grow with every log group.
	logs := awslogs.NewLogGroup(s, jsii.String(id+"WorkflowLogs"), &awslogs.LogGroupProps{
		LogGroupName:  jsii.String(sub("/aws/vendedlogs/states/${AWS::StackName}-" + logName)),
		Retention:     awslogs.RetentionDays_THREE_MONTHS,
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	machine := awsstepfunctions.NewCfnStateMachine(s, jsii.String(id+"Workflow"), &awsstepfunctions.CfnStateMachineProps{
		StateMachineType:        jsii.String("STANDARD"),
		RoleArn:                 role.RoleArn(),
		DefinitionString:        jsii.String(definition),
		DefinitionSubstitutions: &subs,
		LoggingConfiguration: &awsstepfunctions.CfnStateMachine_LoggingConfigurationProperty{
			Level: jsii.String("ALL"),
			// Execution data stays out of the logs: the history already has it, and logs are
			// read more widely than the workflow's history.
			IncludeExecutionData: false,
			Destinations: &[]any{&awsstepfunctions.CfnStateMachine_LogDestinationProperty{
				CloudWatchLogsLogGroup: &awsstepfunctions.CfnStateMachine_CloudWatchLogsLogGroupProperty{LogGroupArn: logs.LogGroupArn()},
			}},
		},
		TracingConfiguration: &awsstepfunctions.CfnStateMachine_TracingConfigurationProperty{Enabled: b.props.Tracing},
	})
	// Step Functions checks the role's log permissions when the machine is created.
	machine.Node().AddDependency(role)
	if !b.props.Tracing {
		suppress(machine, "AwsSolutions-SF2", "X-Ray is opt-in (CDK context xrayTracing=true); the execution history and ALL-level logs cover diagnosis without it")
	}
	return machine
}

// rules: both kinds of forwarded stack events reach their function through the vendor bus,
// with retries and the events DLQ for what cannot be delivered.
func (b *controlPlaneBuilder) rules() {
	s := b.cp.Stack
	target := func(fn awslambda.Function) awsevents.IRuleTarget {
		return awseventstargets.NewLambdaFunction(fn, &awseventstargets.LambdaFunctionProps{
			DeadLetterQueue: b.cp.EventsDLQ,
			RetryAttempts:   jsii.Number(ruleRetryAttempts),
			MaxEventAge:     awscdk.Duration_Seconds(jsii.Number(ruleMaxEventAge)),
		})
	}
	stackStatus := func(detail *map[string]any) *awsevents.EventPattern {
		return &awsevents.EventPattern{
			Source:     jsii.Strings(contract.SourceCloudFormation),
			DetailType: jsii.Strings(contract.DetailTypeStackStatusChange),
			Detail:     detail,
		}
	}
	// onboard sees only the bootstrap stack; it still checks the name itself (the local
	// cloud's bus or a future rule change must not make it act on another stack).
	awsevents.NewRule(s, jsii.String("OnboardRule"), &awsevents.RuleProps{
		Description: jsii.String("Bootstrap stack status changes to onboard"),
		EventBus:    b.cp.Bus,
		EventPattern: stackStatus(&map[string]any{"stack-id": []any{map[string]any{
			"wildcard": subf("arn:${AWS::Partition}:cloudformation:*:*:stack/%s/*", contract.BootstrapStackName),
		}}}),
		Targets: &[]awsevents.IRuleTarget{target(b.cp.Functions[contract.FunctionOnboard])},
	})
	awsevents.NewRule(s, jsii.String("StackEventsRule"), &awsevents.RuleProps{
		Description:  jsii.String("Every forwarded stack status change to stackevents"),
		EventBus:     b.cp.Bus,
		EventPattern: stackStatus(nil),
		Targets:      &[]awsevents.IRuleTarget{target(b.cp.Functions[contract.FunctionStackEvents])},
	})
}

// alarms: a message in a DLQ or a failed workflow each mean a customer is stuck. Each
// notifies the operator topic when it fires. The DLQ alarms also notify when they return to
// OK: they stay in alarm until someone drains or redrives the queue, so OK says the incident
// was handled. The execution alarms return to OK by themselves one quiet period after a
// failure (the execution stays failed), so an OK notice from them would be noise.
// It returns the alarms' ARNs.
func (b *controlPlaneBuilder) alarms() []*string {
	s := b.cp.Stack
	notify := awscloudwatchactions.NewSnsAction(b.cp.OperatorTopic)
	var arns []*string
	for _, q := range []struct {
		id    string
		queue awssqs.Queue
		what  string
	}{
		{"EventsDlqNotEmpty", b.cp.EventsDLQ, "stack events that onboard or stackevents could not process"},
		{"StateDlqNotEmpty", b.cp.StateDLQ, "state-exporter messages that could not be processed"},
	} {
		alarm := awscloudwatch.NewAlarm(s, jsii.String(q.id), &awscloudwatch.AlarmProps{
			AlarmName:        jsii.String(sub(alarmNamePrefix + q.id)),
			AlarmDescription: jsii.String("The dead-letter queue holds " + q.what),
			Metric: q.queue.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{
				Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Maximum"),
			}),
			Threshold:          jsii.Number(0),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
			EvaluationPeriods:  jsii.Number(1),
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		alarm.AddAlarmAction(notify)
		alarm.AddOkAction(notify)
		arns = append(arns, alarm.AlarmArn())
	}
	for _, m := range []struct{ id, metric, what string }{
		{"ProvisionExecutionsFailed", "ExecutionsFailed", "failed"},
		{"ProvisionExecutionsTimedOut", "ExecutionsTimedOut", "timed out"},
	} {
		alarm := awscloudwatch.NewAlarm(s, jsii.String(m.id), &awscloudwatch.AlarmProps{
			AlarmName:        jsii.String(sub(alarmNamePrefix + m.id)),
			AlarmDescription: jsii.String("A provision workflow execution " + m.what),
			Metric: awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
				Namespace:     jsii.String("AWS/States"),
				MetricName:    jsii.String(m.metric),
				DimensionsMap: &map[string]*string{"StateMachineArn": b.cp.ProvisionMachine.AttrArn()},
				Statistic:     jsii.String("Sum"),
				Period:        awscdk.Duration_Minutes(jsii.Number(5)),
			}),
			Threshold:          jsii.Number(1),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			EvaluationPeriods:  jsii.Number(1),
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		alarm.AddAlarmAction(notify)
		arns = append(arns, alarm.AlarmArn())
	}
	return arns
}

func (b *controlPlaneBuilder) outputs() {
	s := b.cp.Stack
	out := func(name string, value *string) { output(s, name, value) }
	out(OutputVendorEventBusName, b.cp.Bus.EventBusName())
	out(OutputVendorEventBusArn, b.cp.Bus.EventBusArn())
	out(OutputProvisionerRoleArn, b.roles[contract.FunctionProvision].RoleArn())
	out(OutputTableName, b.cp.Table.TableName())
	out(OutputStateQueueArn, b.cp.StateQueue.QueueArn())
	out(OutputStateQueueURL, b.cp.StateQueue.QueueUrl())
	out(OutputProvisionStateMachineArn, b.cp.ProvisionMachine.AttrArn())
	out(OutputCommandStateMachineArn, b.cp.CommandMachine.AttrArn())
	out(OutputUpgradeStateMachineArn, b.cp.UpgradeMachine.AttrArn())
	out(OutputMaintenanceScheduleGroup, b.cp.MaintenanceGroup.Ref())
	out(OutputBootstrapTemplateURL, jsii.String(b.props.BootstrapTemplateURL))
	out(contract.OutputPeerAccessTemplateURL, jsii.String(b.props.PeerAccessTemplateURL))
	out(contract.OutputPeeringStateMachineArn, b.cp.PeeringMachine.AttrArn())
	out(OutputOperatorTopicArn, b.cp.OperatorTopic.TopicArn())
	for _, fn := range contract.Functions {
		out(OutputFunctionName(fn), b.cp.Functions[fn].FunctionName())
	}
}

// title turns "stackevents" into "Stackevents" for construct ids.
func title(name string) string {
	return strings.ToUpper(name[:1]) + name[1:]
}

// provisionExecutionsArn matches the executions of the provision workflow: onboard names them
// provision-<deployment id>-<n>; an operator's takeover may choose another name.
func (b *controlPlaneBuilder) provisionExecutionsArn() string {
	return sub("arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:") + *b.cp.ProvisionMachine.AttrName() + ":*"
}
