package stacks

import (
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/byocloud/byoc/infra/workflows"
	"github.com/byocloud/byoc/shared/contract"
)

// peeringMachineName is the peering workflow's name.
const peeringMachineName = "${AWS::StackName}-peering"

// peerAccessTemplateURL is where customers fetch the peer-side template: beside the
// bootstrap template, published the same way (docs/cdk.md).
func peerAccessTemplateURL(bootstrapURL string) string {
	i := strings.LastIndex(bootstrapURL, "/")
	return bootstrapURL[:i+1] + PeerAccessStackID + ".template.json"
}

// connectivity (docs/connectivity.md): the peering function, the peering workflow and the
// rule that takes BYOC Peering Requested events from the vendor's own systems.
func (b *controlPlaneBuilder) connectivity() {
	s := b.cp.Stack
	putEvents := grant{resources: []string{*b.cp.Bus.EventBusArn()}, actions: []string{"events:PutEvents"},
		conditions: map[string]any{"StringEquals": map[string]any{"events:source": contract.SourcePeering}}}
	// The workflow has a fixed name under the stack's: the function starts it and the
	// workflow invokes the function, so neither can refer to the other.
	machineArn := sub("arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:" + peeringMachineName)
	// peering runs as the provisioner role (sharedRoles): customers' management roles trust
	// that role alone. It already reads and writes the table and assumes management roles.
	// Every action and step is a few calls: 30 s bounds a hung one, which its caller or
	// the workflow's retry then repeats.
	fn := b.function(contract.FunctionPeering, 30, map[string]*string{
		contract.EnvTableName: b.cp.Table.TableName(), contract.EnvEventBusName: b.cp.Bus.EventBusName(),
		contract.EnvSupportedRegions:     jsii.String(b.props.SupportedRegions),
		contract.EnvBootstrapTemplateURL: jsii.String(b.props.BootstrapTemplateURL),
	}, b.cp.EventsDLQ, putEvents,
		grant{sid: "SendConnectivityCommands", resources: []string{commandQueuesArn}, actions: []string{"sqs:GetQueueUrl", "sqs:SendMessage"}},
		grant{resources: []string{machineArn}, actions: []string{"states:StartExecution"}},
		// A repeated request finds whether its execution still runs (or a new one must take over).
		grant{sid: "DescribePeeringExecutions", resources: []string{sub("arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:" + peeringMachineName + ":*")},
			actions: []string{"states:DescribeExecution"}})
	machine := b.workflow("Peering", "peering", "Role of the byoc peering workflow", workflows.Peering, map[string]awslambda.Function{
		workflows.PeeringFunctionArn:     fn,
		workflows.SendCommandFunctionArn: b.cp.Functions[contract.FunctionSendCommand],
		workflows.StateWaitFunctionArn:   b.cp.Functions[contract.FunctionStateWait],
	})
	machine.AddPropertyOverride(jsii.String("StateMachineName"), sub(peeringMachineName))
	fn.AddEnvironment(jsii.String(contract.EnvPeeringMachineArn), jsii.String(machineArn), nil)
	b.cp.PeeringMachine = machine
	// Who resumes the peering workflow's waiting tasks: peering itself (a stack that already
	// finished), stackevents (the stack's event), stateingest and statewait (the agent's ack).
	awsiam.NewPolicy(s, jsii.String("PeeringTaskTokens"), &awsiam.PolicyProps{
		Roles: &[]awsiam.IRole{b.roles[contract.FunctionProvision], b.roles[contract.FunctionStackEvents], b.roles[contract.FunctionStateIngest], b.roles[contract.FunctionStateWait]},
		Statements: &[]awsiam.PolicyStatement{grant{resources: []string{*machine.AttrArn()},
			actions: []string{"states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"}}.statement()},
	})
	awsevents.NewRule(s, jsii.String("PeeringRequestRule"), &awsevents.RuleProps{
		Description: jsii.String("Peering requests from the vendor's own systems to the peering function"),
		EventBus:    b.cp.Bus,
		EventPattern: &awsevents.EventPattern{
			Account:    jsii.Strings(*s.Account()),
			Source:     jsii.Strings(contract.SourceOperator),
			DetailType: jsii.Strings(contract.DetailTypePeeringRequested),
		},
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(fn, &awseventstargets.LambdaFunctionProps{
			DeadLetterQueue: b.cp.EventsDLQ, RetryAttempts: jsii.Number(ruleRetryAttempts), MaxEventAge: awscdk.Duration_Seconds(jsii.Number(ruleMaxEventAge)),
		})},
	})
}
