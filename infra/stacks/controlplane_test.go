package stacks

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/byocloud/byoc/infra/workflows"
	"github.com/byocloud/byoc/shared/contract"
)

const cp = ControlPlaneStackID

func TestTableMatchesTheStoreAndIsDurable(t *testing.T) {
	tmpl := defaultBuild.template(cp)
	expect(t, "one table", func() { tmpl.ResourceCountIs(jsii.String("AWS::DynamoDB::Table"), jsii.Number(1)) })
	expect(t, "store layout, on demand, PITR, encrypted", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::DynamoDB::Table"), &map[string]any{
			"KeySchema": []any{
				map[string]any{"AttributeName": contract.TableAttrPartitionKey, "KeyType": "HASH"},
				map[string]any{"AttributeName": contract.TableAttrSortKey, "KeyType": "RANGE"},
			},
			"BillingMode":                      "PAY_PER_REQUEST",
			"TimeToLiveSpecification":          map[string]any{"AttributeName": contract.TableAttrTTL, "Enabled": true},
			"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
			"SSESpecification":                 map[string]any{"SSEEnabled": true},
		})
	})
	expect(t, "retained", func() {
		tmpl.HasResource(jsii.String("AWS::DynamoDB::Table"), &map[string]any{"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"})
	})
	tables := defaultBuild.resources(cp, "AWS::DynamoDB::Table")
	if len(tables) != 1 {
		t.Fatalf("want one table, found %d", len(tables))
	}
	for _, table := range tables {
		p := props(table)
		want := map[string]any{
			"KeySchema":                        []any{map[string]any{"AttributeName": contract.TableAttrPartitionKey, "KeyType": "HASH"}, map[string]any{"AttributeName": contract.TableAttrSortKey, "KeyType": "RANGE"}},
			"BillingMode":                      "PAY_PER_REQUEST",
			"TimeToLiveSpecification":          map[string]any{"AttributeName": contract.TableAttrTTL, "Enabled": true},
			"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
			"SSESpecification":                 map[string]any{"SSEEnabled": true},
		}
		for key, value := range want {
			if toJSON(p[key]) != toJSON(value) {
				t.Errorf("table %s = %s, want %s", key, toJSON(p[key]), toJSON(value))
			}
		}
		if p["GlobalSecondaryIndexes"] != nil {
			t.Errorf("table has GSIs %s: the store queries by key only", toJSON(p["GlobalSecondaryIndexes"]))
		}
		if table["DeletionPolicy"] != "Retain" || table["UpdateReplacePolicy"] != "Retain" {
			t.Errorf("table deletion/update-replace policy = %v/%v, want Retain: it is the record of every deployment", table["DeletionPolicy"], table["UpdateReplacePolicy"])
		}
	}
}

func TestVendorBusPolicyIsLeftToInviteAndTeardown(t *testing.T) {
	tmpl := defaultBuild.template(cp)
	expect(t, "one event bus", func() { tmpl.ResourceCountIs(jsii.String("AWS::Events::EventBus"), jsii.Number(1)) })
	expect(t, "no bus policy resource", func() { tmpl.ResourceCountIs(jsii.String("AWS::Events::EventBusPolicy"), jsii.Number(0)) })
	for id, bus := range defaultBuild.resources(cp, "AWS::Events::EventBus") {
		if props(bus)["Policy"] != nil {
			t.Errorf("%s carries a Policy: a stack update would revoke every invited customer", id)
		}
	}

	invite := defaultBuild.logicalIDOf(t, cp, "AWS::IAM::Role", "InviteRole")
	bus := defaultBuild.logicalIDOf(t, cp, "AWS::Events::EventBus", "VendorBus")
	var eventActions []string
	for _, st := range defaultBuild.statementsOfRole(cp, invite) {
		for _, a := range actionsOf(st) {
			if strings.HasPrefix(a, "events:") {
				eventActions = append(eventActions, a)
				if got := resourcesOf(st, nil); len(got) != 1 || got[0] != "<"+bus+".Arn>" {
					t.Errorf("invite's %s applies to %v, want only the vendor bus", a, got)
				}
			}
		}
	}
	slices.Sort(eventActions)
	if want := []string{"events:PutPermission", "events:RemovePermission"}; !slices.Equal(eventActions, want) {
		t.Errorf("invite's events actions = %v, want %v", eventActions, want)
	}
}

func TestRulesSendStackEventsToOnboardAndStackevents(t *testing.T) {
	bus := defaultBuild.logicalIDOf(t, cp, "AWS::Events::EventBus", "VendorBus")
	dlq := defaultBuild.logicalIDOf(t, cp, "AWS::SQS::Queue", "EventsDlq")
	cases := []struct {
		rule, function string
		detail         string // the pattern's detail, as JSON
	}{
		{"OnboardRule", "OnboardFunction", `{"stack-id":[{"wildcard":{"Fn::Sub":"arn:${AWS::Partition}:cloudformation:*:*:stack/clickhouse-byoc-bootstrap/*"}}]}`},
		{"StackEventsRule", "StackeventsFunction", `null`},
	}
	for _, c := range cases {
		t.Run(c.rule, func(t *testing.T) {
			rule := props(defaultBuild.resource(t, cp, defaultBuild.logicalIDOf(t, cp, "AWS::Events::Rule", c.rule)))
			if dig(rule, "EventBusName", "Ref") != bus {
				t.Errorf("rule is on %s, want the vendor bus", toJSON(rule["EventBusName"]))
			}
			pattern := rule["EventPattern"].(map[string]any)
			if toJSON(pattern["source"]) != `["aws.cloudformation"]` || toJSON(pattern["detail-type"]) != `["CloudFormation Stack Status Change"]` {
				t.Errorf("pattern = %s, want source aws.cloudformation and detail-type Stack Status Change", toJSON(pattern))
			}
			if got := toJSON(pattern["detail"]); got != c.detail {
				t.Errorf("pattern detail = %s, want %s", got, c.detail)
			}
			targets := asList(rule["Targets"])
			if len(targets) != 1 {
				t.Fatalf("want one target, got %s", toJSON(targets))
			}
			target := targets[0]
			fn := defaultBuild.logicalIDOf(t, cp, "AWS::Lambda::Function", c.function)
			if dig(target, "Arn", "Fn::GetAtt", 0) != fn {
				t.Errorf("target = %s, want %s", toJSON(dig(target, "Arn")), fn)
			}
			if dig(target, "DeadLetterConfig", "Arn", "Fn::GetAtt", 0) != dlq {
				t.Errorf("target DLQ = %s, want the events DLQ", toJSON(dig(target, "DeadLetterConfig")))
			}
			if dig(target, "RetryPolicy", "MaximumRetryAttempts") == nil || dig(target, "RetryPolicy", "MaximumEventAgeInSeconds") == nil {
				t.Errorf("target retry policy = %s, want attempts and event age", toJSON(dig(target, "RetryPolicy")))
			}
		})
	}
}

func TestStateQueueHasADeadLetterQueueAndIsEncrypted(t *testing.T) {
	queue := props(defaultBuild.resource(t, cp, defaultBuild.logicalIDOf(t, cp, "AWS::SQS::Queue", "StateQueue")))
	dlq := defaultBuild.logicalIDOf(t, cp, "AWS::SQS::Queue", "StateDlq")
	if dig(queue, "RedrivePolicy", "deadLetterTargetArn", "Fn::GetAtt", 0) != dlq || dig(queue, "RedrivePolicy", "maxReceiveCount") != 5.0 {
		t.Errorf("state queue redrive = %s, want %s after 5 receives", toJSON(queue["RedrivePolicy"]), dlq)
	}
	for id, q := range defaultBuild.resources(cp, "AWS::SQS::Queue") {
		if props(q)["SqsManagedSseEnabled"] != true {
			t.Errorf("queue %s is not encrypted (SqsManagedSseEnabled)", id)
		}
	}
	// Every queue is TLS-only.
	denied := map[string]bool{}
	for _, st := range defaultBuild.policyStatements(cp) {
		if st.body["Effect"] == "Deny" && toJSON(dig(st.body, "Condition", "Bool", "aws:SecureTransport")) == `"false"` {
			for _, r := range asList(st.body["Resource"]) {
				denied[toJSON(dig(r, "Fn::GetAtt", 0))] = true
			}
		}
	}
	for id := range defaultBuild.resources(cp, "AWS::SQS::Queue") {
		if !denied[toJSON(id)] {
			t.Errorf("queue %s has no TLS-only policy", id)
		}
	}
}

func TestFunctionsRunTheBuiltBinariesWithTheirEnvironment(t *testing.T) {
	common := []string{contract.EnvTableName}
	want := map[string][]string{
		contract.FunctionInvite: {contract.EnvEventBusName, contract.EnvEventBusArn, contract.EnvProvisionerRoleArn,
			contract.EnvBootstrapTemplateURL, contract.EnvStateQueueArn},
		contract.FunctionOnboard: {contract.EnvProvisionMachineArn},
		contract.FunctionProvision: {contract.EnvStateQueueArn, contract.EnvInfraTemplatePath, contract.EnvMaxProvisionAttempts,
			contract.EnvProvisionerRoleArn},
		contract.FunctionStackEvents: nil,
	}
	tmpl := defaultBuild.template(cp)
	expect(t, "every function is a provided.al2023 arm64 bootstrap", func() {
		tmpl.AllResourcesProperties(jsii.String("AWS::Lambda::Function"), &map[string]any{
			"Runtime": "provided.al2023", "Architectures": []any{"arm64"}, "Handler": "bootstrap",
		})
	})
	functions := defaultBuild.resources(cp, "AWS::Lambda::Function")
	if len(functions) != len(contract.Functions) {
		t.Fatalf("want %d functions, found %d", len(contract.Functions), len(functions))
	}
	for _, fn := range contract.Functions {
		t.Run(fn, func(t *testing.T) {
			id := defaultBuild.logicalIDOf(t, cp, "AWS::Lambda::Function", title(fn)+"Function")
			p := props(defaultBuild.resource(t, cp, id))
			if p["Runtime"] != "provided.al2023" || toJSON(p["Architectures"]) != `["arm64"]` || p["Handler"] != "bootstrap" {
				t.Errorf("runtime/arch/handler = %v/%v/%v, want provided.al2023/arm64/bootstrap", p["Runtime"], p["Architectures"], p["Handler"])
			}
			logs := defaultBuild.logicalIDOf(t, cp, "AWS::Logs::LogGroup", title(fn)+"Logs")
			if dig(p, "LoggingConfig", "LogGroup", "Ref") != logs {
				t.Errorf("log group = %s, want %s", toJSON(p["LoggingConfig"]), logs)
			}
			if dig(defaultBuild.resource(t, cp, logs), "Properties", "RetentionInDays") == nil {
				t.Errorf("log group %s keeps logs forever: set a retention", logs)
			}
			if dig(p, "Role", "Fn::GetAtt", 0) != defaultBuild.logicalIDOf(t, cp, "AWS::IAM::Role", title(fn)+"Role") {
				t.Errorf("role = %s, want the function's own role", toJSON(p["Role"]))
			}
			var tagged bool
			for _, tag := range asList(p["Tags"]) {
				tagged = tagged || (dig(tag, "Key") == contract.FunctionTagKey && dig(tag, "Value") == fn)
			}
			if !tagged {
				t.Errorf("tags = %s, want %s=%s", toJSON(p["Tags"]), contract.FunctionTagKey, fn)
			}
			env := dig(p, "Environment", "Variables").(map[string]any)
			got := slices.Sorted(maps.Keys(env))
			expected := slices.Sorted(slices.Values(append(slices.Clone(common), want[fn]...)))
			if !slices.Equal(got, expected) {
				t.Errorf("environment = %v, want exactly %v", got, expected)
			}
			if p["TracingConfig"] != nil {
				t.Errorf("tracing = %s without xrayTracing", toJSON(p["TracingConfig"]))
			}
		})
	}

	provision := props(defaultBuild.resource(t, cp, defaultBuild.logicalIDOf(t, cp, "AWS::Lambda::Function", "ProvisionFunction")))
	env := dig(provision, "Environment", "Variables").(map[string]any)
	if env[contract.EnvInfraTemplatePath] != "/var/task/"+contract.InfraTemplateFile || env[contract.EnvMaxProvisionAttempts] != "3" {
		t.Errorf("provision env = %s", toJSON(env))
	}
	invite := props(defaultBuild.resource(t, cp, defaultBuild.logicalIDOf(t, cp, "AWS::Lambda::Function", "InviteFunction")))
	env = dig(invite, "Environment", "Variables").(map[string]any)
	provisionRole := defaultBuild.logicalIDOf(t, cp, "AWS::IAM::Role", "ProvisionRole")
	if dig(env, contract.EnvProvisionerRoleArn, "Fn::GetAtt", 0) != provisionRole {
		t.Errorf("%s = %s, want provision's role: it is the role customers trust", contract.EnvProvisionerRoleArn, toJSON(env[contract.EnvProvisionerRoleArn]))
	}
	if env := dig(provision, "Environment", "Variables").(map[string]any); dig(env, contract.EnvProvisionerRoleArn, "Fn::GetAtt", 0) != provisionRole {
		t.Errorf("provision's %s = %s, want its own role", contract.EnvProvisionerRoleArn, toJSON(env[contract.EnvProvisionerRoleArn]))
	}
	if got := resolve(env[contract.EnvBootstrapTemplateURL], sampleVars); got != "https://byoc-templates-111122223333-us-west-2.s3.us-west-2.amazonaws.com/ByocBootstrap.template.json" {
		t.Errorf("default %s = %s", contract.EnvBootstrapTemplateURL, got)
	}
}

func TestFunctionCodeIsTheBuildOutputAndTheProvisionBundle(t *testing.T) {
	for _, fn := range contract.Functions {
		id := defaultBuild.logicalIDOf(t, cp, "AWS::Lambda::Function", title(fn)+"Function")
		staged := defaultBuild.codeAssetDir(t, id)
		bootstrap := readFile(t, staged+"/bootstrap")
		if want := "fake " + fn + " binary"; string(bootstrap) != want {
			t.Errorf("%s's code bootstrap = %q, want the build output %q", fn, bootstrap, want)
		}
		_, hasTemplate := tryReadFile(staged + "/" + contract.InfraTemplateFile)
		if hasTemplate != (fn == contract.FunctionProvision) {
			t.Errorf("%s's code has %s: %v (only provision needs it)", fn, contract.InfraTemplateFile, hasTemplate)
		}
		if fn == contract.FunctionProvision {
			template := readFile(t, staged+"/"+contract.InfraTemplateFile)
			if string(template) != string(defaultBuild.app.InfraTemplate) {
				t.Errorf("provision's bundled template differs from the synthesized infrastructure template")
			}
		}
	}
}

// codeAssetDir finds the staged directory of a function's code through the assets manifest
// (the Code's S3 key is the asset hash).
func (s *synthesized) codeAssetDir(t *testing.T, functionID string) string {
	t.Helper()
	key, _ := dig(s.resource(t, cp, functionID), "Properties", "Code", "S3Key").(string)
	var manifest map[string]any
	if err := json.Unmarshal(readFile(t, s.outdir+"/"+ControlPlaneStackID+".assets.json"), &manifest); err != nil {
		t.Fatal(err)
	}
	path, _ := dig(manifest, "files", strings.TrimSuffix(key, ".zip"), "source", "path").(string)
	if key == "" || path == "" {
		t.Fatalf("%s: no code asset for S3 key %q", functionID, key)
	}
	return s.outdir + "/" + path
}

func TestProvisionWorkflowInvokesTheProvisionFunction(t *testing.T) {
	machines := defaultBuild.resources(cp, "AWS::StepFunctions::StateMachine")
	machine, ok := machines["ProvisionWorkflow"]
	if !ok || len(machines) != 1 {
		t.Fatalf("want exactly the ProvisionWorkflow state machine, found %v", slices.Collect(maps.Keys(machines)))
	}
	p := props(machine)
	if p["StateMachineType"] != "STANDARD" {
		t.Errorf("type = %v, want STANDARD", p["StateMachineType"])
	}
	if p["DefinitionString"] != workflows.Provision {
		t.Errorf("definition is not workflows.Provision")
	}
	fn := defaultBuild.logicalIDOf(t, cp, "AWS::Lambda::Function", "ProvisionFunction")
	if dig(p, "DefinitionSubstitutions", workflows.ProvisionFunctionArn, "Fn::GetAtt", 0) != fn {
		t.Errorf("substitutions = %s, want %s = provision's ARN", toJSON(p["DefinitionSubstitutions"]), workflows.ProvisionFunctionArn)
	}
	if dig(p, "LoggingConfiguration", "Level") != "ALL" || dig(p, "LoggingConfiguration", "IncludeExecutionData") != false {
		t.Errorf("logging = %s, want ALL without execution data", toJSON(p["LoggingConfiguration"]))
	}
	role := dig(p, "RoleArn", "Fn::GetAtt", 0).(string)
	var invokes []string
	for _, st := range defaultBuild.statementsOfRole(cp, role) {
		if slices.Contains(actionsOf(st), "lambda:InvokeFunction") {
			invokes = append(invokes, resourcesOf(st, nil)...)
		}
	}
	if want := []string{"<" + fn + ".Arn>"}; !slices.Equal(invokes, want) {
		t.Errorf("workflow may invoke %v, want only %v", invokes, want)
	}
}

// TestFunctionPermissions lists, per function, every action its role may take and on what:
// anything not listed here is a permission too many.
func TestFunctionPermissions(t *testing.T) {
	table := "<" + defaultBuild.logicalIDOf(t, cp, "AWS::DynamoDB::Table", "Table") + ".Arn>"
	machine := "<ProvisionWorkflow.Arn>"
	bus := "<" + defaultBuild.logicalIDOf(t, cp, "AWS::Events::EventBus", "VendorBus") + ".Arn>"
	dlq := "<" + defaultBuild.logicalIDOf(t, cp, "AWS::SQS::Queue", "EventsDlq") + ".Arn>"
	tableActions := []string{"dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem", "dynamodb:DeleteItem",
		"dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"}
	taskTokens := []string{"states:SendTaskFailure", "states:SendTaskHeartbeat", "states:SendTaskSuccess"}
	type permission struct{ action, resource string }
	with := func(resource string, actions ...string) []permission {
		var out []permission
		for _, a := range actions {
			out = append(out, permission{a, resource})
		}
		return out
	}
	logs := func(fn string) []permission {
		group := "<" + defaultBuild.logicalIDOf(t, cp, "AWS::Logs::LogGroup", title(fn)+"Logs") + ".Arn>"
		return with(group, "logs:CreateLogStream", "logs:PutLogEvents")
	}
	want := map[string][]permission{
		contract.FunctionInvite: slices.Concat(logs(contract.FunctionInvite), with(table, tableActions...),
			with(bus, "events:PutPermission", "events:RemovePermission")),
		contract.FunctionOnboard: slices.Concat(logs(contract.FunctionOnboard), with(table, tableActions...),
			with(machine, "states:StartExecution"), with(dlq, "sqs:SendMessage")),
		contract.FunctionProvision: slices.Concat(logs(contract.FunctionProvision), with(table, tableActions...),
			with(machine, taskTokens...), with("arn:aws:iam::*:role/"+contract.ManagementRoleName, "sts:AssumeRole")),
		contract.FunctionStackEvents: slices.Concat(logs(contract.FunctionStackEvents), with(table, tableActions...),
			with(machine, taskTokens...), with(dlq, "sqs:SendMessage")),
	}
	for fn, expected := range want {
		t.Run(fn, func(t *testing.T) {
			role := defaultBuild.logicalIDOf(t, cp, "AWS::IAM::Role", title(fn)+"Role")
			var got []permission
			for _, st := range defaultBuild.statementsOfRole(cp, role) {
				if st["Effect"] != "Allow" {
					continue
				}
				for _, a := range actionsOf(st) {
					for _, r := range resourcesOf(st, sampleVars) {
						got = append(got, permission{a, r})
					}
				}
			}
			key := func(p permission) string { return p.action + " on " + p.resource }
			gotKeys, wantKeys := sortedKeys(got, key), sortedKeys(expected, key)
			if !slices.Equal(gotKeys, wantKeys) {
				t.Errorf("permissions of %s:\n got  %v\n want %v", fn, gotKeys, wantKeys)
			}
		})
	}
}

func sortedKeys[T any](items []T, key func(T) string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = key(it)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func TestAlarmsWatchTheDLQsAndFailedExecutions(t *testing.T) {
	alarms := defaultBuild.resources(cp, "AWS::CloudWatch::Alarm")
	watched := map[string]bool{}
	for id, a := range alarms {
		p := props(a)
		switch p["MetricName"] {
		case "ApproximateNumberOfMessagesVisible":
			watched[toJSON(dig(p, "Dimensions", 0, "Value", "Fn::GetAtt", 0))] = true
			if p["ComparisonOperator"] != "GreaterThanThreshold" || p["Threshold"] != 0.0 {
				t.Errorf("%s fires on %v %v, want any message", id, p["ComparisonOperator"], p["Threshold"])
			}
		case "ExecutionsFailed", "ExecutionsTimedOut":
			if dig(p, "Dimensions", 0, "Value", "Fn::GetAtt", 0) != "ProvisionWorkflow" {
				t.Errorf("%s watches %s, want the provision workflow", id, toJSON(p["Dimensions"]))
			}
			watched[p["MetricName"].(string)] = true
		default:
			t.Errorf("unexpected alarm %s on %v", id, p["MetricName"])
		}
	}
	for _, want := range []string{
		toJSON(defaultBuild.logicalIDOf(t, cp, "AWS::SQS::Queue", "EventsDlq")),
		toJSON(defaultBuild.logicalIDOf(t, cp, "AWS::SQS::Queue", "StateDlq")),
		"ExecutionsFailed", "ExecutionsTimedOut",
	} {
		if !watched[want] {
			t.Errorf("no alarm on %s", want)
		}
	}
}

func TestControlPlaneOutputs(t *testing.T) {
	outputs := defaultBuild.templates[cp]["Outputs"].(map[string]any)
	want := []string{OutputVendorEventBusName, OutputVendorEventBusArn, OutputProvisionerRoleArn, OutputTableName,
		OutputStateQueueArn, OutputStateQueueURL, OutputProvisionStateMachineArn, OutputBootstrapTemplateURL}
	for _, fn := range contract.Functions {
		want = append(want, OutputFunctionName(fn))
	}
	for _, name := range want {
		if _, ok := outputs[name]; !ok {
			t.Errorf("output %s missing", name)
		}
	}
}

func TestTracingTurnsOnXRayEverywhere(t *testing.T) {
	for _, fn := range contract.Functions {
		id := tracingBuild.logicalIDOf(t, cp, "AWS::Lambda::Function", title(fn)+"Function")
		p := props(tracingBuild.resource(t, cp, id))
		if dig(p, "TracingConfig", "Mode") != "Active" {
			t.Errorf("%s tracing = %s, want Active", fn, toJSON(p["TracingConfig"]))
		}
		role := tracingBuild.logicalIDOf(t, cp, "AWS::IAM::Role", title(fn)+"Role")
		var xray bool
		for _, st := range tracingBuild.statementsOfRole(cp, role) {
			xray = xray || slices.Contains(actionsOf(st), "xray:PutTraceSegments")
		}
		if !xray {
			t.Errorf("%s's role cannot write traces", fn)
		}
		env := dig(p, "Environment", "Variables").(map[string]any)
		_, hasRegions := env[contract.EnvSupportedRegions]
		if wantRegions := fn == contract.FunctionInvite || fn == contract.FunctionProvision; hasRegions != wantRegions {
			t.Errorf("%s has %s: %v, want %v", fn, contract.EnvSupportedRegions, hasRegions, wantRegions)
		} else if hasRegions && env[contract.EnvSupportedRegions] != "us-east-1,eu-west-1" {
			t.Errorf("%s %s = %v", fn, contract.EnvSupportedRegions, env[contract.EnvSupportedRegions])
		}
	}
	if dig(tracingBuild.resource(t, cp, "ProvisionWorkflow"), "Properties", "TracingConfiguration", "Enabled") != true {
		t.Errorf("workflow tracing is off with xrayTracing=true")
	}
	tmpl := tracingBuild.template(cp)
	expect(t, "workflow role may write traces", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::IAM::Policy"), &map[string]any{
			"PolicyDocument": assertions.Match_ObjectLike(&map[string]any{
				"Statement": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{"Sid": "WriteXRayTraces"})}),
			}),
			"Roles": []any{map[string]any{"Ref": tracingBuild.logicalIDOf(t, cp, "AWS::IAM::Role", "ProvisionWorkflowRole")}},
		})
	})
}
