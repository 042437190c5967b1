package stacks

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/jsii-runtime-go"

	"github.com/byocloud/byoc/infra/workflows"
	"github.com/byocloud/byoc/shared/contract"
)

// OutputApiUrl is the control-plane output the byoc CLI reads the API's address from.
const OutputApiUrl = contract.OutputApiUrl

// teardown (docs/teardown.md): the teardown function and its workflow. The function runs as
// the provisioner role (sharedRoles): customers' management roles trust that role alone, and
// it already reads and writes the table, closes command channels, rewrites the state queue's
// policy and deletes maintenance schedules.
func (b *controlPlaneBuilder) teardown() {
	s := b.cp.Stack
	putEvents := grant{resources: []string{*b.cp.Bus.EventBusArn()}, actions: []string{"events:PutEvents"},
		conditions: map[string]any{"StringEquals": map[string]any{"events:source": contract.SourceLifecycle}}}
	// The account's bus admission is taken back by the invite function, which the workflow
	// invokes: the customer statements of the bus policy are invite's alone, so this role
	// (which customers' management roles trust) cannot change the bus policy.
	fn := b.function(contract.FunctionTeardown, 60, map[string]*string{
		contract.EnvTableName: b.cp.Table.TableName(), contract.EnvEventBusName: b.cp.Bus.EventBusName(),
		contract.EnvStateQueueURL: b.cp.StateQueue.QueueUrl(), contract.EnvScheduleGroup: b.cp.MaintenanceGroup.Ref(),
	}, nil, putEvents)
	machine := b.workflow("Teardown", "teardown", "Role of the byoc teardown workflow", workflows.Teardown, map[string]awslambda.Function{
		workflows.TeardownFunctionArn: fn,
		workflows.InviteFunctionArn:   b.cp.Functions[contract.FunctionInvite],
	})
	b.cp.TeardownMachine = machine
	// Who resumes the teardown's waiting tasks: teardown itself (a stack already deleted, as
	// the provisioner role) and stackevents (the stack's event). teardown also looks at an
	// earlier teardown's execution before taking a deployment over from it.
	awsiam.NewPolicy(s, jsii.String("TeardownTaskTokens"), &awsiam.PolicyProps{
		Roles: &[]awsiam.IRole{b.roles[contract.FunctionProvision], b.roles[contract.FunctionStackEvents]},
		Statements: &[]awsiam.PolicyStatement{grant{resources: []string{*machine.AttrArn()},
			actions: []string{"states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"}}.statement()},
	})
	takeover := grant{sid: "FollowWorkflows", actions: []string{"states:DescribeExecution"}, resources: []string{
		*awscdk.Fn_Sub(jsii.String("arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${Machine}:*"),
			&map[string]*string{"Machine": machine.AttrName()})}}
	takeovers := awsiam.NewPolicy(s, jsii.String("TeardownTakeovers"), &awsiam.PolicyProps{
		Roles: &[]awsiam.IRole{b.roles[contract.FunctionProvision]}, Statements: &[]awsiam.PolicyStatement{takeover.statement()},
	})
	suppressWildcards(takeovers, []grant{takeover})
}

// operatorAPI (docs/api.md): one HTTP API, every route behind IAM (SigV4), one function. An
// operator calls it with their own AWS credentials; execute-api:Invoke in their identity
// policy is what admits them (HTTP APIs have no resource policy, so no other account can).
func (b *controlPlaneBuilder) operatorAPI() {
	s := b.cp.Stack
	table := *b.cp.Table.TableArn()
	execution := func(machineName *string) string {
		return *awscdk.Fn_Sub(jsii.String("arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${Machine}:*"),
			&map[string]*string{"Machine": machineName})
	}
	machines := []string{*b.cp.ProvisionMachine.AttrArn(), *b.cp.CommandMachine.AttrArn(), *b.cp.TeardownMachine.AttrArn(), *b.cp.PeeringMachine.AttrArn()}
	fn := b.function(contract.FunctionAPI, 29, map[string]*string{
		contract.EnvTableName:           b.cp.Table.TableName(),
		contract.EnvInviteFunction:      b.cp.Functions[contract.FunctionInvite].FunctionName(),
		contract.EnvMaintenanceFunction: b.cp.Functions[contract.FunctionMaintenance].FunctionName(),
		contract.EnvReleasesFunction:    b.cp.Functions[contract.FunctionReleases].FunctionName(),
		contract.EnvPeeringFunction:     b.cp.Functions[contract.FunctionPeering].FunctionName(),
		contract.EnvProvisionMachineArn: b.cp.ProvisionMachine.AttrArn(),
		contract.EnvCommandMachineArn:   b.cp.CommandMachine.AttrArn(),
		contract.EnvTeardownMachineArn:  b.cp.TeardownMachine.AttrArn(),
		contract.EnvPeeringMachineArn:   b.cp.PeeringMachine.AttrArn(),
	}, nil,
		// Reads: deployments, services, health (a fleet page's in one BatchGetItem), audit:
		// keys and the fleet index, never a scan.
		grant{resources: []string{table}, actions: []string{"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"}},
		grant{resources: []string{table + "/index/FleetIndex"}, actions: []string{"dynamodb:Query"}},
		// Writes: only its idempotency records.
		grant{resources: []string{table}, actions: []string{"dynamodb:PutItem", "dynamodb:DeleteItem"},
			conditions: map[string]any{"ForAllValues:StringLike": map[string]any{"dynamodb:LeadingKeys": []string{"IDEM#*"}}}},
		grant{actions: []string{"lambda:InvokeFunction"}, resources: []string{
			*b.cp.Functions[contract.FunctionInvite].FunctionArn(), *b.cp.Functions[contract.FunctionMaintenance].FunctionArn(),
			*b.cp.Functions[contract.FunctionReleases].FunctionArn(), *b.cp.Functions[contract.FunctionPeering].FunctionArn(),
		}},
		grant{resources: machines, actions: []string{"states:StartExecution"}},
		grant{sid: "FollowWorkflows", actions: []string{"states:DescribeExecution"}, resources: []string{
			execution(b.cp.ProvisionMachine.AttrName()), execution(b.cp.CommandMachine.AttrName()),
			execution(b.cp.TeardownMachine.AttrName()), execution(b.cp.PeeringMachine.AttrName()),
		}})

	api := awsapigatewayv2.NewCfnApi(s, jsii.String("OperatorApi"), &awsapigatewayv2.CfnApiProps{
		Name:         jsii.String(sub("${AWS::StackName}-operator")),
		ProtocolType: jsii.String("HTTP"),
		Description:  jsii.String("byoc operator API: every route IAM-authenticated (SigV4); docs/api.md"),
	})
	integration := awsapigatewayv2.NewCfnIntegration(s, jsii.String("OperatorApiIntegration"), &awsapigatewayv2.CfnIntegrationProps{
		ApiId: api.Ref(), IntegrationType: jsii.String("AWS_PROXY"), IntegrationUri: fn.FunctionArn(),
		PayloadFormatVersion: jsii.String("2.0"), TimeoutInMillis: jsii.Number(29000),
	})
	awsapigatewayv2.NewCfnRoute(s, jsii.String("OperatorApiRoute"), &awsapigatewayv2.CfnRouteProps{
		ApiId: api.Ref(), RouteKey: jsii.String("ANY /v1/{proxy+}"), AuthorizationType: jsii.String("AWS_IAM"),
		Target: jsii.String("integrations/" + *integration.Ref()),
	})
	logs := awslogs.NewLogGroup(s, jsii.String("OperatorApiAccessLogs"), &awslogs.LogGroupProps{
		Retention: awslogs.RetentionDays_ONE_YEAR, RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	awsapigatewayv2.NewCfnStage(s, jsii.String("OperatorApiStage"), &awsapigatewayv2.CfnStageProps{
		ApiId: api.Ref(), StageName: jsii.String("$default"), AutoDeploy: jsii.Bool(true),
		// Who called what: the signing principal of every request, for the audit.
		AccessLogSettings: &awsapigatewayv2.CfnStage_AccessLogSettingsProperty{DestinationArn: logs.LogGroupArn(),
			Format: jsii.String(`{"requestId":"$context.requestId","caller":"$context.identity.userArn","method":"$context.httpMethod","path":"$context.path","status":"$context.status","ip":"$context.identity.sourceIp"}`)},
		// A flood is refused at the door (429), before it reaches the function or the table.
		DefaultRouteSettings: &awsapigatewayv2.CfnStage_RouteSettingsProperty{ThrottlingBurstLimit: jsii.Number(50), ThrottlingRateLimit: jsii.Number(20)},
	})
	awslambda.NewCfnPermission(s, jsii.String("OperatorApiInvokesFunction"), &awslambda.CfnPermissionProps{
		Action: jsii.String("lambda:InvokeFunction"), FunctionName: fn.FunctionArn(), Principal: jsii.String("apigateway.amazonaws.com"),
		SourceArn: awscdk.Fn_Sub(jsii.String("arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/*/*/v1/*"),
			&map[string]*string{"Api": api.Ref()}),
	})
	output(s, OutputApiUrl, api.AttrApiEndpoint())
}
