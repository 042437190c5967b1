package stacks

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/byocloud/byoc/infra/workflows"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/store"
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
		// Exactly the indexes of the table the repository expects: SweepIndex and FleetIndex.
		def := store.TableDefinition("")
		var wantIndexes []any
		for _, g := range def.GlobalSecondaryIndexes {
			var keys []any
			for _, k := range g.KeySchema {
				keys = append(keys, map[string]any{"AttributeName": *k.AttributeName, "KeyType": string(k.KeyType)})
			}
			projection := map[string]any{"ProjectionType": string(g.Projection.ProjectionType)}
			if len(g.Projection.NonKeyAttributes) > 0 {
				projection["NonKeyAttributes"] = g.Projection.NonKeyAttributes
			}
			wantIndexes = append(wantIndexes, map[string]any{"IndexName": *g.IndexName, "KeySchema": keys, "Projection": projection})
		}
		if got, want := toJSON(p["GlobalSecondaryIndexes"]), toJSON(wantIndexes); got != want {
			t.Errorf("table indexes = %s, want %s (servicestate.TableDefinition)", got, want)
		}
		if want := `[{"IndexName":"SweepIndex","KeySchema":[{"AttributeName":"sweepPK","KeyType":"HASH"},{"AttributeName":"sweepAt","KeyType":"RANGE"}],"Projection":{"ProjectionType":"KEYS_ONLY"}},` +
			`{"IndexName":"FleetIndex","KeySchema":[{"AttributeName":"fleetPK","KeyType":"HASH"},{"AttributeName":"fleetSK","KeyType":"RANGE"}],"Projection":{"NonKeyAttributes":["id","status","settings","createdAt","failure"],"ProjectionType":"INCLUDE"}}]`; toJSON(wantIndexes) != want {
			t.Errorf("servicestate.TableDefinition's indexes = %s, docs/state.md says %s", toJSON(wantIndexes), want)
		}
		var gotAttrs, wantAttrs []string
		for _, a := range asList(p["AttributeDefinitions"]) {
			gotAttrs = append(gotAttrs, fmt.Sprint(dig(a, "AttributeName"), ":", dig(a, "AttributeType")))
		}
		for _, a := range def.AttributeDefinitions {
			wantAttrs = append(wantAttrs, fmt.Sprint(*a.AttributeName, ":", a.AttributeType))
		}
		slices.Sort(gotAttrs)
		slices.Sort(wantAttrs)
		if !slices.Equal(gotAttrs, wantAttrs) {
			t.Errorf("table attribute definitions = %v, want %v", gotAttrs, wantAttrs)
		}
		if table["DeletionPolicy"] != "Retain" || table["UpdateReplacePolicy"] != "Retain" {
			t.Errorf("table deletion/update-replace policy = %v/%v, want Retain: it is the record of every deployment", table["DeletionPolicy"], table["UpdateReplacePolicy"])
		}
	}
}

// The template owns one statement of the vendor bus's policy, never the whole policy: the
// admissions are invite's. The statement denies other accounts every source but CloudFormation's.
func TestVendorBusPolicyIsLeftToInviteAndTeardown(t *testing.T) {
	tmpl := defaultBuild.template(cp)
	expect(t, "one event bus", func() { tmpl.ResourceCountIs(jsii.String("AWS::Events::EventBus"), jsii.Number(1)) })
	policies := defaultBuild.resources(cp, "AWS::Events::EventBusPolicy")
	if len(policies) != 1 {
		t.Fatalf("%d bus policy statements in the template, want the one that limits customers to stack events", len(policies))
	}
	for id, p := range policies {
		got := toJSON(props(p))
		want := `{"EventBusName":{"Ref":"` + defaultBuild.logicalIDOf(t, cp, "AWS::Events::EventBus", "VendorBus") + `"},` +
			`"Statement":{"Action":"events:PutEvents","Condition":{"ForAnyValue:StringNotEquals":{"events:source":["aws.cloudformation"]},` +
			`"StringNotEquals":{"aws:PrincipalAccount":{"Ref":"AWS::AccountId"}}},"Effect":"Deny","Principal":"*",` +
			`"Resource":{"Fn::GetAtt":["` + defaultBuild.logicalIDOf(t, cp, "AWS::Events::EventBus", "VendorBus") + `","Arn"]}},` +
			`"StatementId":"` + contract.BusStatementOnlyStackEvents + `"}`
		if got != want {
			t.Errorf("%s = %s,\nwant %s", id, got, want)
		}
	}
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
	stateQueue := defaultBuild.logicalIDOf(t, cp, "AWS::SQS::Queue", "StateQueue")
	queue := props(defaultBuild.resource(t, cp, stateQueue))
	dlq := defaultBuild.logicalIDOf(t, cp, "AWS::SQS::Queue", "StateDlq")
	if dig(queue, "RedrivePolicy", "deadLetterTargetArn", "Fn::GetAtt", 0) != dlq || dig(queue, "RedrivePolicy", "maxReceiveCount") != 5.0 {
		t.Errorf("state queue redrive = %s, want %s after 5 receives", toJSON(queue["RedrivePolicy"]), dlq)
	}
	for id, q := range defaultBuild.resources(cp, "AWS::SQS::Queue") {
		if props(q)["SqsManagedSseEnabled"] != true {
			t.Errorf("queue %s is not encrypted (SqsManagedSseEnabled)", id)
		}
	}
	// The state queue's policy belongs to statesweep and provision (channel.AdmitExporters,
	// TLS-only deny included): the template must not own one, or every deploy would reset
	// it and refuse the exporters until the next sweep.
	for id, qp := range defaultBuild.resources(cp, "AWS::SQS::QueuePolicy") {
		for _, q := range asList(props(qp)["Queues"]) {
			if dig(q, "Ref") == stateQueue {
				t.Errorf("queue policy %s is attached to the state queue", id)
			}
		}
	}
	// Every other queue is TLS-only.
	denied := map[string]bool{toJSON(stateQueue): true}
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
		contract.FunctionProvision: {contract.EnvStateQueueArn, contract.EnvStateQueueURL, contract.EnvInfraTemplatePath, contract.EnvMaxProvisionAttempts,
			contract.EnvProvisionerRoleArn, contract.EnvMaintenanceTargetArn, contract.EnvSchedulerRoleArn, contract.EnvSchedulerDLQArn, contract.EnvScheduleGroup},
		contract.FunctionMaintenance: {contract.EnvEventBusName, contract.EnvUpgradeMachineArn, contract.EnvMaintenanceTargetArn, contract.EnvSchedulerRoleArn, contract.EnvSchedulerDLQArn, contract.EnvScheduleGroup},
		contract.FunctionReleases:    {contract.EnvEventBusName, contract.EnvEventBusArn, contract.EnvMaintenanceTargetArn, contract.EnvSchedulerRoleArn, contract.EnvSchedulerDLQArn, contract.EnvScheduleGroup},
		contract.FunctionUpgrade:     {contract.EnvEventBusName},
		contract.FunctionPeering:     {contract.EnvEventBusName, contract.EnvPeeringMachineArn, contract.EnvSupportedRegions, contract.EnvBootstrapTemplateURL},
		contract.FunctionStackEvents: nil,
		contract.FunctionStateIngest: {contract.EnvEventBusName},
		contract.FunctionStateSweep:  {contract.EnvEventBusName, contract.EnvStateQueueURL}, // STATE_STALE_AFTER only when configured
		contract.FunctionStateWait:   nil,
		contract.FunctionSendCommand: nil,
		contract.FunctionTeardown:    {contract.EnvEventBusName, contract.EnvScheduleGroup, contract.EnvStateQueueURL},
		contract.FunctionAPI: {contract.EnvInviteFunction, contract.EnvMaintenanceFunction, contract.EnvReleasesFunction, contract.EnvPeeringFunction,
			contract.EnvProvisionMachineArn, contract.EnvCommandMachineArn, contract.EnvTeardownMachineArn, contract.EnvPeeringMachineArn},
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
			owner := fn
			if o, ok := sharedRoles[fn]; ok {
				owner = o // upgrade acts in customer accounts as the provisioner
			}
			if dig(p, "Role", "Fn::GetAtt", 0) != defaultBuild.logicalIDOf(t, cp, "AWS::IAM::Role", title(owner)+"Role") {
				t.Errorf("role = %s, want %s's role", toJSON(p["Role"]), owner)
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

	// The state functions' references: the table, the vendor bus (by name) and the state
	// queue (by URL).
	refs := map[string]string{
		contract.EnvTableName:     "<Ref:" + defaultBuild.logicalIDOf(t, cp, "AWS::DynamoDB::Table", "Table") + ">",
		contract.EnvEventBusName:  "<Ref:" + defaultBuild.logicalIDOf(t, cp, "AWS::Events::EventBus", "VendorBus") + ">",
		contract.EnvStateQueueURL: "<Ref:" + defaultBuild.logicalIDOf(t, cp, "AWS::SQS::Queue", "StateQueue") + ">",
	}
	for _, fn := range []string{contract.FunctionProvision, contract.FunctionStateIngest, contract.FunctionStateSweep, contract.FunctionStateWait, contract.FunctionSendCommand} {
		p := props(defaultBuild.resource(t, cp, defaultBuild.logicalIDOf(t, cp, "AWS::Lambda::Function", title(fn)+"Function")))
		for name, value := range dig(p, "Environment", "Variables").(map[string]any) {
			if want, ok := refs[name]; ok && resolve(value, nil) != want {
				t.Errorf("%s's %s = %s, want %s", fn, name, resolve(value, nil), want)
			}
		}
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

// The stack's two workflows, each with its definition, invoking exactly the functions its
// placeholders name (the provision workflow: provision; the command workflow: sendcommand
// and statewait), logging ALL without execution data.
func TestWorkflowsInvokeExactlyTheirFunctions(t *testing.T) {
	want := map[string]struct {
		definition string
		functions  map[string]string // placeholder -> function
	}{
		"ProvisionWorkflow": {workflows.Provision, map[string]string{workflows.ProvisionFunctionArn: contract.FunctionProvision}},
		"CommandWorkflow": {workflows.Command, map[string]string{
			workflows.SendCommandFunctionArn: contract.FunctionSendCommand, workflows.StateWaitFunctionArn: contract.FunctionStateWait}},
		"UpgradeWorkflow": {workflows.Upgrade, map[string]string{workflows.UpgradeFunctionArn: contract.FunctionUpgrade,
			workflows.SendCommandFunctionArn: contract.FunctionSendCommand, workflows.StateWaitFunctionArn: contract.FunctionStateWait}},
		"PeeringWorkflow": {workflows.Peering, map[string]string{workflows.PeeringFunctionArn: contract.FunctionPeering,
			workflows.SendCommandFunctionArn: contract.FunctionSendCommand, workflows.StateWaitFunctionArn: contract.FunctionStateWait}},
		"TeardownWorkflow": {workflows.Teardown, map[string]string{workflows.TeardownFunctionArn: contract.FunctionTeardown, workflows.InviteFunctionArn: contract.FunctionInvite}},
	}
	machines := defaultBuild.resources(cp, "AWS::StepFunctions::StateMachine")
	if got := slices.Sorted(maps.Keys(machines)); !slices.Equal(got, slices.Sorted(maps.Keys(want))) {
		t.Fatalf("state machines %v, want %v", got, slices.Sorted(maps.Keys(want)))
	}
	for id, w := range want {
		t.Run(id, func(t *testing.T) {
			p := props(machines[id])
			if p["StateMachineType"] != "STANDARD" {
				t.Errorf("type = %v, want STANDARD", p["StateMachineType"])
			}
			if p["DefinitionString"] != w.definition {
				t.Errorf("definition is not the embedded workflow")
			}
			var invokable []string
			for placeholder, fn := range w.functions {
				logical := defaultBuild.logicalIDOf(t, cp, "AWS::Lambda::Function", title(fn)+"Function")
				if dig(p, "DefinitionSubstitutions", placeholder, "Fn::GetAtt", 0) != logical {
					t.Errorf("substitutions = %s, want %s = %s's ARN", toJSON(p["DefinitionSubstitutions"]), placeholder, fn)
				}
				invokable = append(invokable, "<"+logical+".Arn>")
			}
			if len(dig(p, "DefinitionSubstitutions").(map[string]any)) != len(w.functions) {
				t.Errorf("substitutions = %s, want exactly %v", toJSON(p["DefinitionSubstitutions"]), w.functions)
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
			if slices.Sort(invokes); !slices.Equal(invokes, slices.Sorted(slices.Values(invokable))) {
				t.Errorf("workflow may invoke %v, want only %v", invokes, invokable)
			}
		})
	}
}

// TestFunctionPermissions lists, per function, every action its role may take and on what:
// anything not listed here is a permission too many.
func TestFunctionPermissions(t *testing.T) {
	table := "<" + defaultBuild.logicalIDOf(t, cp, "AWS::DynamoDB::Table", "Table") + ".Arn>"
	machine := "<ProvisionWorkflow.Arn>"
	commandMachine := "<CommandWorkflow.Arn>"
	bus := "<" + defaultBuild.logicalIDOf(t, cp, "AWS::Events::EventBus", "VendorBus") + ".Arn>"
	dlq := "<" + defaultBuild.logicalIDOf(t, cp, "AWS::SQS::Queue", "EventsDlq") + ".Arn>"
	stateQueue := "<" + defaultBuild.logicalIDOf(t, cp, "AWS::SQS::Queue", "StateQueue") + ".Arn>"
	commandQueues := "arn:aws:sqs:us-west-2:111122223333:" + contract.CommandQueuePrefix + "*"
	stateItems := []string{"dynamodb:ConditionCheckItem", "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"}
	resume := []string{"states:SendTaskFailure", "states:SendTaskSuccess"}
	queuePolicy := []string{"sqs:GetQueueAttributes", "sqs:SetQueueAttributes"}
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
	provisionExecutions := "arn:aws:states:us-west-2:111122223333:execution:<" + defaultBuild.logicalIDOf(t, cp, "AWS::StepFunctions::StateMachine", "ProvisionWorkflow") + ".Name>:*"
	upgradeMachine := "<UpgradeWorkflow.Arn>"
	upgradeExecutions := "arn:aws:states:us-west-2:111122223333:execution:<UpgradeWorkflow.Name>:*"
	schedules := "arn:aws:scheduler:us-west-2:111122223333:schedule/stack-maintenance/*"
	arm := slices.Concat(with(schedules, "scheduler:CreateSchedule", "scheduler:UpdateSchedule", "scheduler:DeleteSchedule"),
		with("<"+defaultBuild.logicalIDOf(t, cp, "AWS::IAM::Role", "MaintenanceScheduleRole")+".Arn>", "iam:PassRole"))
	peeringMachine := "<PeeringWorkflow.Arn>"
	teardownMachine := "<TeardownWorkflow.Arn>"
	// upgrade, peering and teardown run as the provisioner role: one identity in customer accounts.
	provisioner := slices.Concat(logs(contract.FunctionProvision), logs(contract.FunctionUpgrade), logs(contract.FunctionPeering), logs(contract.FunctionTeardown),
		with(table, tableActions...), with(teardownMachine, taskTokens...),
		with("arn:aws:states:us-west-2:111122223333:execution:<TeardownWorkflow.Name>:*", "states:DescribeExecution"),
		with(machine, taskTokens...), with(upgradeMachine, taskTokens...), with(peeringMachine, taskTokens...),
		with("arn:aws:states:us-west-2:111122223333:stateMachine:stack-peering", "states:StartExecution"),
		with("arn:aws:states:us-west-2:111122223333:execution:stack-peering:*", "states:DescribeExecution"),
		with(commandQueues, "sqs:GetQueueUrl", "sqs:SendMessage"), with(bus, "events:PutEvents"), with(dlq, "sqs:SendMessage"),
		with("arn:aws:iam::*:role/"+contract.ManagementRoleName, "sts:AssumeRole"),
		with(stateQueue, queuePolicy...), with(bus, "events:PutEvents"), arm,
		with(commandQueues, "sqs:CreateQueue", "sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:SetQueueAttributes", "sqs:TagQueue", "sqs:DeleteQueue"))
	want := map[string][]permission{
		contract.FunctionInvite: slices.Concat(logs(contract.FunctionInvite), with(table, tableActions...),
			with(bus, "events:PutPermission", "events:RemovePermission")),
		contract.FunctionOnboard: slices.Concat(logs(contract.FunctionOnboard), with(table, tableActions...),
			with(machine, "states:StartExecution"), with(provisionExecutions, "states:DescribeExecution"), with(dlq, "sqs:SendMessage")),
		contract.FunctionProvision: provisioner,
		contract.FunctionUpgrade:   provisioner,
		contract.FunctionPeering:   provisioner,
		contract.FunctionTeardown:  provisioner,
		contract.FunctionStackEvents: slices.Concat(logs(contract.FunctionStackEvents), with(table, tableActions...),
			with(machine, taskTokens...), with(upgradeMachine, taskTokens...), with(peeringMachine, taskTokens...), with(teardownMachine, taskTokens...),
			with(dlq, "sqs:SendMessage")),
		// The API reads (keys and the fleet index), writes only idempotency records
		// (dynamodb:LeadingKeys IDEM#*), forwards to the operator functions and starts and
		// follows the workflows an operator starts.
		contract.FunctionAPI: slices.Concat(logs(contract.FunctionAPI), with(table, "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:DeleteItem"),
			with(strings.TrimSuffix(table, ">")+">/index/FleetIndex", "dynamodb:Query"),
			with(functionArn(t, contract.FunctionInvite), "lambda:InvokeFunction"), with(functionArn(t, contract.FunctionMaintenance), "lambda:InvokeFunction"),
			with(functionArn(t, contract.FunctionReleases), "lambda:InvokeFunction"), with(functionArn(t, contract.FunctionPeering), "lambda:InvokeFunction"),
			with(machine, "states:StartExecution"), with(commandMachine, "states:StartExecution"), with(teardownMachine, "states:StartExecution"), with(peeringMachine, "states:StartExecution"),
			with(provisionExecutions, "states:DescribeExecution"), with("arn:aws:states:us-west-2:111122223333:execution:<CommandWorkflow.Name>:*", "states:DescribeExecution"),
			with("arn:aws:states:us-west-2:111122223333:execution:<TeardownWorkflow.Name>:*", "states:DescribeExecution"),
			with("arn:aws:states:us-west-2:111122223333:execution:<PeeringWorkflow.Name>:*", "states:DescribeExecution")),
		// The consume actions come with the event source mapping.
		contract.FunctionStateIngest: slices.Concat(logs(contract.FunctionStateIngest), with(table, stateItems...),
			with(bus, "events:PutEvents"), with(commandMachine, resume...), with(upgradeMachine, taskTokens...), with(peeringMachine, taskTokens...),
			with(stateQueue, "sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueUrl", "sqs:DeleteMessage", "sqs:GetQueueAttributes")),
		contract.FunctionStateSweep: slices.Concat(logs(contract.FunctionStateSweep), with(table, stateItems...),
			with(strings.TrimSuffix(table, ">")+">/index/"+servicestate.SweepIndex, "dynamodb:Query"),
			with(bus, "events:PutEvents"), with(stateQueue, queuePolicy...), with(provisionExecutions, "states:DescribeExecution"),
			with(upgradeExecutions, "states:DescribeExecution"), with(dlq, "sqs:SendMessage")),
		contract.FunctionStateWait: slices.Concat(logs(contract.FunctionStateWait), with(table, stateItems...), with(commandMachine, resume...),
			with(upgradeMachine, taskTokens...), with(peeringMachine, taskTokens...)),
		contract.FunctionMaintenance: slices.Concat(logs(contract.FunctionMaintenance), with(table, stateItems...), with(bus, "events:PutEvents"),
			with(upgradeMachine, "states:StartExecution"), arm, with(dlq, "sqs:SendMessage")),
		contract.FunctionReleases: slices.Concat(logs(contract.FunctionReleases), with(table, stateItems...), with(bus, "events:PutEvents"),
			arm, with(dlq, "sqs:SendMessage")),
		contract.FunctionSendCommand: slices.Concat(logs(contract.FunctionSendCommand), with(table, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"),
			with(commandQueues, "sqs:GetQueueUrl", "sqs:SendMessage")),
	}
	if len(want) != len(contract.Functions) {
		t.Fatalf("the test lists the permissions of %d functions, the contract has %d", len(want), len(contract.Functions))
	}
	for fn, expected := range want {
		t.Run(fn, func(t *testing.T) {
			owner := fn
			if o, ok := sharedRoles[fn]; ok {
				owner = o
			}
			role := defaultBuild.logicalIDOf(t, cp, "AWS::IAM::Role", title(owner)+"Role")
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

// functionArn is how a function's ARN reads in a rendered statement.
func functionArn(t *testing.T, fn string) string {
	return "<" + defaultBuild.logicalIDOf(t, cp, "AWS::Lambda::Function", title(fn)+"Function") + ".Arn>"
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
		OutputStateQueueArn, OutputStateQueueURL, OutputProvisionStateMachineArn, OutputCommandStateMachineArn, OutputBootstrapTemplateURL, OutputOperatorTopicArn}
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
		owner := fn
		if o, ok := sharedRoles[fn]; ok {
			owner = o
		}
		role := tracingBuild.logicalIDOf(t, cp, "AWS::IAM::Role", title(owner)+"Role")
		var xray bool
		for _, st := range tracingBuild.statementsOfRole(cp, role) {
			xray = xray || slices.Contains(actionsOf(st), "xray:PutTraceSegments")
		}
		if !xray {
			t.Errorf("%s's role cannot write traces", fn)
		}
		env := dig(p, "Environment", "Variables").(map[string]any)
		_, hasRegions := env[contract.EnvSupportedRegions]
		if wantRegions := fn == contract.FunctionInvite || fn == contract.FunctionProvision || fn == contract.FunctionPeering; hasRegions != wantRegions {
			t.Errorf("%s has %s: %v, want %v", fn, contract.EnvSupportedRegions, hasRegions, wantRegions)
		} else if hasRegions && env[contract.EnvSupportedRegions] != "us-east-1,eu-west-1" {
			t.Errorf("%s %s = %v", fn, contract.EnvSupportedRegions, env[contract.EnvSupportedRegions])
		}
	}
	tmpl := tracingBuild.template(cp)
	for _, workflow := range []string{"ProvisionWorkflow", "CommandWorkflow", "UpgradeWorkflow", "PeeringWorkflow"} {
		if dig(tracingBuild.resource(t, cp, workflow), "Properties", "TracingConfiguration", "Enabled") != true {
			t.Errorf("%s tracing is off with xrayTracing=true", workflow)
		}
		expect(t, workflow+" role may write traces", func() {
			tmpl.HasResourceProperties(jsii.String("AWS::IAM::Policy"), &map[string]any{
				"PolicyDocument": assertions.Match_ObjectLike(&map[string]any{
					"Statement": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{"Sid": "WriteXRayTraces"})}),
				}),
				"Roles": []any{map[string]any{"Ref": tracingBuild.logicalIDOf(t, cp, "AWS::IAM::Role", workflow+"Role")}},
			})
		})
	}
}

// TestStateIngestIsFedByTheStateQueue: one event source mapping, from the state queue to
// stateingest, in batches of ten with per-message failures; the queue hides a message long
// enough for every retry of a batch.
func TestStateIngestIsFedByTheStateQueue(t *testing.T) {
	mappings := defaultBuild.resources(cp, "AWS::Lambda::EventSourceMapping")
	if len(mappings) != 1 {
		t.Fatalf("want one event source mapping, found %d", len(mappings))
	}
	fn := defaultBuild.logicalIDOf(t, cp, "AWS::Lambda::Function", "StateingestFunction")
	queue := defaultBuild.logicalIDOf(t, cp, "AWS::SQS::Queue", "StateQueue")
	for id, m := range mappings {
		p := props(m)
		if dig(p, "FunctionName", "Ref") != fn || dig(p, "EventSourceArn", "Fn::GetAtt", 0) != queue {
			t.Errorf("%s maps %s to %s, want the state queue to stateingest", id, toJSON(p["EventSourceArn"]), toJSON(p["FunctionName"]))
		}
		if p["BatchSize"] != 10.0 || toJSON(p["FunctionResponseTypes"]) != `["ReportBatchItemFailures"]` {
			t.Errorf("%s batch size %v, response types %s, want 10 and [ReportBatchItemFailures]", id, p["BatchSize"], toJSON(p["FunctionResponseTypes"]))
		}
		if w, ok := p["MaximumBatchingWindowInSeconds"].(float64); !ok || w > 1 {
			t.Errorf("%s batching window = %v, want at most 1 s", id, p["MaximumBatchingWindowInSeconds"])
		}
		if p["Enabled"] == false {
			t.Errorf("%s is disabled", id)
		}
	}
	timeout, _ := props(defaultBuild.resource(t, cp, fn))["Timeout"].(float64)
	visibility, _ := props(defaultBuild.resource(t, cp, queue))["VisibilityTimeout"].(float64)
	if timeout != 30 || visibility < 6*timeout {
		t.Errorf("stateingest timeout %v s, state queue visibility %v s: want 30 s and at least six times it", timeout, visibility)
	}
}

// TestStateSweepRunsEveryMinute: one schedule, every minute on the dot, with the scheduled
// time as input, two retries and the events DLQ; its role may invoke statesweep and reach
// the DLQ, nothing else.
func TestStateSweepRunsEveryMinute(t *testing.T) {
	schedules := defaultBuild.resources(cp, "AWS::Scheduler::Schedule")
	if len(schedules) != 2 {
		t.Fatalf("want two schedules (the state sweep, the rollouts), found %d", len(schedules))
	}
	p := props(schedules["StateSweepSchedule"])
	if p == nil {
		t.Fatalf("no StateSweepSchedule among %v", slices.Collect(maps.Keys(schedules)))
	}
	fn := defaultBuild.logicalIDOf(t, cp, "AWS::Lambda::Function", "StatesweepFunction")
	dlq := defaultBuild.logicalIDOf(t, cp, "AWS::SQS::Queue", "EventsDlq")
	if p["ScheduleExpression"] != "rate(1 minute)" || dig(p, "FlexibleTimeWindow", "Mode") != "OFF" || p["State"] != "ENABLED" {
		t.Errorf("schedule %v, window %s, state %v: want rate(1 minute), OFF, ENABLED", p["ScheduleExpression"], toJSON(p["FlexibleTimeWindow"]), p["State"])
	}
	if dig(p, "Target", "Arn", "Fn::GetAtt", 0) != fn {
		t.Errorf("target = %s, want statesweep", toJSON(dig(p, "Target", "Arn")))
	}
	// Exactly this text (the agreed interface), which is also the contract's constant.
	const agreed = `{"scheduledTime":"<aws.scheduler.scheduled-time>"}`
	if input := dig(p, "Target", "Input"); input != agreed {
		t.Errorf("input = %v, want exactly %s", input, agreed)
	}
	if contract.StateSweepScheduleInput != agreed {
		t.Errorf("contract.StateSweepScheduleInput = %s, want %s", contract.StateSweepScheduleInput, agreed)
	}
	if dig(p, "Target", "RetryPolicy", "MaximumRetryAttempts") != 2.0 {
		t.Errorf("retry policy = %s, want 2 attempts", toJSON(dig(p, "Target", "RetryPolicy")))
	}
	if dig(p, "Target", "DeadLetterConfig", "Arn", "Fn::GetAtt", 0) != dlq {
		t.Errorf("dead-letter config = %s, want the events DLQ", toJSON(dig(p, "Target", "DeadLetterConfig")))
	}

	role := dig(p, "Target", "RoleArn", "Fn::GetAtt", 0).(string)
	trust := asList(dig(defaultBuild.resource(t, cp, role), "Properties", "AssumeRolePolicyDocument", "Statement"))
	if len(trust) != 1 || dig(trust[0], "Principal", "Service") != "scheduler.amazonaws.com" ||
		toJSON(dig(trust[0], "Condition", "StringEquals", "aws:SourceAccount")) != `{"Ref":"AWS::AccountId"}` {
		t.Errorf("schedule role trust = %s, want Scheduler of this account only", toJSON(trust))
	}
	var got []string
	for _, st := range defaultBuild.statementsOfRole(cp, role) {
		for _, a := range actionsOf(st) {
			for _, r := range resourcesOf(st, nil) {
				got = append(got, a+" on "+r)
			}
		}
	}
	slices.Sort(got)
	if want := []string{"lambda:InvokeFunction on <" + fn + ".Arn>", "sqs:SendMessage on <" + dlq + ".Arn>"}; !slices.Equal(got, want) {
		t.Errorf("schedule role may %v, want exactly %v", got, want)
	}
}

// TestStateStaleAfterIsSetOnlyWhenConfigured: the tracing build sets stateStaleAfter=10m;
// the default build leaves statesweep its own default (asserted by the exact environment
// in TestFunctionsRunTheBuiltBinariesWithTheirEnvironment).
func TestStateStaleAfterIsSetOnlyWhenConfigured(t *testing.T) {
	for _, fn := range contract.Functions {
		p := props(tracingBuild.resource(t, cp, tracingBuild.logicalIDOf(t, cp, "AWS::Lambda::Function", title(fn)+"Function")))
		value, set := dig(p, "Environment", "Variables").(map[string]any)[contract.EnvStateStaleAfter]
		if want := fn == contract.FunctionStateSweep; set != want || (set && value != "10m") {
			t.Errorf("%s %s = %v (set %v), want it only on statesweep, as configured (10m)", fn, contract.EnvStateStaleAfter, value, set)
		}
	}
}

func TestControlPlaneRefusesAWrongStaleAfter(t *testing.T) {
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	codeDirs := map[string]string{}
	for _, fn := range contract.Functions {
		codeDirs[fn] = t.TempDir()
	}
	_, err := NewControlPlaneStack(app, "Refused", ControlPlaneProps{CodeDirs: codeDirs, ProvisionDefinition: workflows.Provision, StateStaleAfter: "10s"})
	if err == nil || !strings.Contains(err.Error(), `StateStaleAfter "10s"`) {
		t.Fatalf("StateStaleAfter 10s: err = %v, want one naming the value", err)
	}
	if n := len(*app.Node().Children()); n != 0 {
		t.Errorf("app has %d constructs after a refused stack", n)
	}
}

// The maintenance functions may put only maintenance notices on the vendor bus: not the
// state functions' byoc.state (a forged health regression would halt a release).
func TestMaintenanceFunctionsPutOnlyTheirOwnEvents(t *testing.T) {
	for _, fn := range []string{contract.FunctionMaintenance, contract.FunctionReleases, contract.FunctionUpgrade} {
		owner := fn
		if o, ok := sharedRoles[fn]; ok {
			owner = o
		}
		role := defaultBuild.logicalIDOf(t, cp, "AWS::IAM::Role", title(owner)+"Role")
		found := false
		for _, st := range defaultBuild.statementsOfRole(cp, role) {
			if !slices.Contains(actionsOf(st), "events:PutEvents") {
				continue
			}
			found = true
			// upgrade shares the provisioner role with peering and teardown, whose notices are
			// byoc.peering and byoc.lifecycle.
			if got := toJSON(dig(st, "Condition", "StringEquals", "events:source")); got != `"`+contract.SourceMaintenance+`"` &&
				(owner == fn || (got != `"`+contract.SourcePeering+`"` && got != `"`+contract.SourceLifecycle+`"`)) {
				t.Errorf("%s may put events of source %s, want only %s", fn, got, contract.SourceMaintenance)
			}
		}
		if !found {
			t.Errorf("%s cannot put its notices", fn)
		}
	}
}
