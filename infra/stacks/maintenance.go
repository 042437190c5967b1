package stacks

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsscheduler"
	"github.com/aws/jsii-runtime-go"

	"github.com/byocloud/byoc/infra/workflows"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/health"
)

// Maintenance (docs/maintenance.md): the maintenance, releases and upgrade functions, the
// upgrade workflow, the schedule group of the deployments' maintenance schedules with the
// role those schedules invoke maintenance with, and the rollout schedule.
const (
	// OutputUpgradeStateMachineArn is the upgrade workflow.
	OutputUpgradeStateMachineArn = "UpgradeStateMachineArn"
	// OutputMaintenanceScheduleGroup holds the deployments' maintenance schedules.
	OutputMaintenanceScheduleGroup = "MaintenanceScheduleGroup"
	// rolloutRate: rollouts move on every five minutes (a bake time is hours; a wave's
	// counting is paged across runs).
	rolloutRate = "rate(5 minutes)"
	// maintenanceFunctionName is fixed (under the stack's name) so the functions that arm
	// schedules, the maintenance function among them, can name the schedules' target without
	// a reference to it, which would be a cycle.
	maintenanceFunctionName = "${AWS::StackName}-maintenance"
	// maintenanceGroupName is the schedule group of the deployments' maintenance schedules.
	maintenanceGroupName = "${AWS::StackName}-maintenance"
)

func (b *controlPlaneBuilder) maintenance() {
	s := b.cp.Stack
	table := *b.cp.Table.TableArn()
	items := grant{resources: []string{table}, actions: []string{
		"dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem",
	}}
	// Only maintenance notices: a function of this part cannot put byoc.state events (a forged
	// health regression would halt releases) or any other source.
	putEvents := grant{resources: []string{*b.cp.Bus.EventBusArn()}, actions: []string{"events:PutEvents"},
		conditions: map[string]any{"StringEquals": map[string]any{"events:source": contract.SourceMaintenance}}}
	maintenanceArn := sub("arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:" + maintenanceFunctionName)
	// Named under the stack: two control planes in one account and region keep apart.
	group := awsscheduler.NewCfnScheduleGroup(s, jsii.String("MaintenanceSchedules"), &awsscheduler.CfnScheduleGroupProps{
		Name: jsii.String(sub(maintenanceGroupName)),
	})
	schedulesArn := sub("arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/" + maintenanceGroupName + "/*")

	// The role every maintenance schedule invokes the maintenance function with: only
	// schedules of that group may use it.
	schedulerRole := awsiam.NewRole(s, jsii.String("MaintenanceScheduleRole"), &awsiam.RoleProps{
		AssumedBy: awsiam.NewPrincipalWithConditions(awsiam.NewServicePrincipal(jsii.String("scheduler.amazonaws.com"), nil),
			&map[string]any{
				"StringEquals": map[string]any{"aws:SourceAccount": s.Account()},
				"ArnLike":      map[string]any{"aws:SourceArn": schedulesArn},
			}),
		Description: jsii.String("Lets the deployments' maintenance schedules invoke the byoc maintenance function, and nothing else"),
	})
	for _, g := range []grant{
		{resources: []string{maintenanceArn}, actions: []string{"lambda:InvokeFunction"}},
		{resources: []string{*b.cp.EventsDLQ.QueueArn()}, actions: []string{"sqs:SendMessage"}},
	} {
		schedulerRole.AddToPolicy(g.statement())
	}
	armEnv := map[string]*string{
		contract.EnvMaintenanceTargetArn: jsii.String(maintenanceArn),
		contract.EnvSchedulerRoleArn:     schedulerRole.RoleArn(),
		contract.EnvSchedulerDLQArn:      b.cp.EventsDLQ.QueueArn(),
		contract.EnvScheduleGroup:        group.Ref(),
	}
	arm := []grant{
		{sid: "ArmMaintenanceSchedules", resources: []string{schedulesArn}, actions: []string{"scheduler:CreateSchedule", "scheduler:UpdateSchedule", "scheduler:DeleteSchedule"}},
		{resources: []string{*schedulerRole.RoleArn()}, actions: []string{"iam:PassRole"},
			conditions: map[string]any{"StringEquals": map[string]any{"iam:PassedToService": "scheduler.amazonaws.com"}}},
	}

	// upgrade: the workflow's steps. It runs as the provisioner role (sharedRoles): customers'
	// management roles trust that role alone.
	upgrade := b.function(contract.FunctionUpgrade, 120, map[string]*string{
		contract.EnvTableName: b.cp.Table.TableName(), contract.EnvEventBusName: b.cp.Bus.EventBusName(),
	}, nil, putEvents) // the provisioner role already reads and writes the table and assumes management roles
	machine := b.workflow("Upgrade", "upgrade", "Role of the byoc upgrade workflow", workflows.Upgrade, map[string]awslambda.Function{
		workflows.UpgradeFunctionArn:     upgrade,
		workflows.SendCommandFunctionArn: b.cp.Functions[contract.FunctionSendCommand],
		workflows.StateWaitFunctionArn:   b.cp.Functions[contract.FunctionStateWait],
	})
	b.cp.UpgradeMachine = machine
	b.cp.MaintenanceGroup = group
	// Who resumes the upgrade workflow's waiting tasks: upgrade itself (a stack that already
	// finished), stackevents (the stack's event), stateingest and statewait (a service's state).
	awsiam.NewPolicy(s, jsii.String("UpgradeTaskTokens"), &awsiam.PolicyProps{
		Roles: &[]awsiam.IRole{b.roles[contract.FunctionProvision], b.roles[contract.FunctionStackEvents], b.roles[contract.FunctionStateIngest], b.roles[contract.FunctionStateWait]},
		Statements: &[]awsiam.PolicyStatement{grant{resources: []string{*machine.AttrArn()},
			actions: []string{"states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"}}.statement()},
	})

	maintenanceEnv := map[string]*string{
		contract.EnvTableName: b.cp.Table.TableName(), contract.EnvEventBusName: b.cp.Bus.EventBusName(),
		contract.EnvUpgradeMachineArn: machine.AttrArn(),
	}
	for k, v := range armEnv {
		maintenanceEnv[k] = v
	}
	fn := b.function(contract.FunctionMaintenance, 30, maintenanceEnv, b.cp.EventsDLQ,
		append([]grant{items, putEvents, {resources: []string{*machine.AttrArn()}, actions: []string{"states:StartExecution"}}}, arm...)...)
	fn.Node().DefaultChild().(awslambda.CfnFunction).AddPropertyOverride(jsii.String("FunctionName"), sub(maintenanceFunctionName))
	fn.Node().AddDependency(group)

	releasesEnv := map[string]*string{
		contract.EnvTableName: b.cp.Table.TableName(), contract.EnvEventBusName: b.cp.Bus.EventBusName(), contract.EnvEventBusArn: b.cp.Bus.EventBusArn(),
	}
	for k, v := range armEnv {
		releasesEnv[k] = v
	}
	releases := b.function(contract.FunctionReleases, 300, releasesEnv, b.cp.EventsDLQ, append([]grant{items, putEvents}, arm...)...)

	// provision arms a deployment's schedule when it becomes ready.
	provision := b.cp.Functions[contract.FunctionProvision]
	for k, v := range armEnv {
		provision.AddEnvironment(jsii.String(k), v, nil)
	}
	for _, g := range arm {
		b.roles[contract.FunctionProvision].AddToPolicy(g.statement())
	}
	// statesweep also looks after upgrades whose execution ended without recording.
	b.roles[contract.FunctionStateSweep].AddToPolicy(grant{sid: "DescribeUpgradeExecutions", actions: []string{"states:DescribeExecution"},
		resources: []string{sub("arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:") + *machine.AttrName() + ":*"}}.statement())

	b.rolloutSchedule(releases)
	// A deployment turning unhealthy within a release's bake time halts the release.
	awsevents.NewRule(s, jsii.String("ReleaseHealthRule"), &awsevents.RuleProps{
		Description: jsii.String("Deployments entering unhealthy (critical) to releases, which halts a release they took within its bake time"),
		EventBus:    b.cp.Bus,
		EventPattern: &awsevents.EventPattern{
			Account:    jsii.Strings(*s.Account()),
			Source:     jsii.Strings(contract.SourceState),
			DetailType: jsii.Strings(contract.DetailTypeDeploymentHealthChanged),
			Detail:     &map[string]any{"severity": []any{string(health.SeverityCritical)}},
		},
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(releases, &awseventstargets.LambdaFunctionProps{
			DeadLetterQueue: b.cp.EventsDLQ, RetryAttempts: jsii.Number(ruleRetryAttempts), MaxEventAge: awscdk.Duration_Seconds(jsii.Number(ruleMaxEventAge)),
		})},
	})
}

// rolloutSchedule runs the releases function's advance every five minutes.
func (b *controlPlaneBuilder) rolloutSchedule(releases awslambda.Function) {
	s := b.cp.Stack
	role := awsiam.NewRole(s, jsii.String("RolloutScheduleRole"), &awsiam.RoleProps{
		// Only this stack's rollout schedule (default group) may use it.
		AssumedBy: awsiam.NewPrincipalWithConditions(awsiam.NewServicePrincipal(jsii.String("scheduler.amazonaws.com"), nil),
			&map[string]any{
				"StringEquals": map[string]any{"aws:SourceAccount": s.Account()},
				"ArnLike":      map[string]any{"aws:SourceArn": sub("arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/default/${AWS::StackName}-RolloutSchedule*")},
			}),
		Description: jsii.String("Lets EventBridge Scheduler invoke the byoc releases function, and nothing else"),
	})
	for _, g := range []grant{
		{resources: []string{*releases.FunctionArn()}, actions: []string{"lambda:InvokeFunction"}},
		{resources: []string{*b.cp.EventsDLQ.QueueArn()}, actions: []string{"sqs:SendMessage"}},
	} {
		role.AddToPolicy(g.statement())
	}
	schedule := awsscheduler.NewCfnSchedule(s, jsii.String("RolloutSchedule"), &awsscheduler.CfnScheduleProps{
		Description:        jsii.String("Moves the byoc release rollouts on: bakes, opens waves, counts them, schedules security fixes"),
		ScheduleExpression: jsii.String(rolloutRate),
		FlexibleTimeWindow: &awsscheduler.CfnSchedule_FlexibleTimeWindowProperty{Mode: jsii.String("OFF")},
		State:              jsii.String("ENABLED"),
		Target: &awsscheduler.CfnSchedule_TargetProperty{
			Arn: releases.FunctionArn(), RoleArn: role.RoleArn(),
			Input: jsii.String(`{"action":"advance","scheduledTime":"<aws.scheduler.scheduled-time>"}`),
			RetryPolicy: &awsscheduler.CfnSchedule_RetryPolicyProperty{
				MaximumRetryAttempts: jsii.Number(2), MaximumEventAgeInSeconds: jsii.Number(300),
			},
			DeadLetterConfig: &awsscheduler.CfnSchedule_DeadLetterConfigProperty{Arn: b.cp.EventsDLQ.QueueArn()},
		},
	})
	schedule.Node().AddDependency(role)
}
