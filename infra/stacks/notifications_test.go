package stacks

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/aws/jsii-runtime-go"

	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/servicestate"
)

// the operator topic's ARN as CloudFormation resolves it with sampleVars (stack "stack").
const sampleTopicArn = "arn:aws:sns:us-west-2:111122223333:stack-operator-notifications"

func operatorTopicID(t *testing.T) string {
	return defaultBuild.logicalIDOf(t, cp, "AWS::SNS::Topic", "OperatorNotifications")
}

func TestOperatorTopicIsEncryptedWithItsKeyAndTLSOnly(t *testing.T) {
	tmpl := defaultBuild.template(cp)
	expect(t, "one topic", func() { tmpl.ResourceCountIs(jsii.String("AWS::SNS::Topic"), jsii.Number(1)) })
	topicID := operatorTopicID(t)
	key := defaultBuild.logicalIDOf(t, cp, "AWS::KMS::Key", "OperatorNotificationsKey")
	topic := props(defaultBuild.resource(t, cp, topicID))
	if dig(topic, "KmsMasterKeyId", "Fn::GetAtt", 0) != key {
		t.Errorf("topic key = %s, want the customer-managed key %s", toJSON(topic["KmsMasterKeyId"]), key)
	}
	if got := resolve(topic["TopicName"], sampleVars); "arn:aws:sns:us-west-2:111122223333:"+got != sampleTopicArn {
		t.Errorf("topic name = %s: the key policy's encryption context names %s", got, sampleTopicArn)
	}
	var tlsOnly bool
	for _, st := range defaultBuild.policyStatements(cp) {
		if props(defaultBuild.resource(t, cp, st.resource))["Topics"] == nil {
			continue
		}
		b := st.body
		if b["Effect"] == "Deny" && toJSON(b["Principal"]) == `"*"` && b["Action"] == "sns:Publish" &&
			dig(b, "Resource", "Ref") == topicID && toJSON(dig(b, "Condition", "Bool", "aws:SecureTransport")) == `"false"` {
			tlsOnly = true
		}
	}
	if !tlsOnly {
		t.Errorf("the topic policy does not deny publishing without TLS")
	}
}

func TestOperatorKeyRotatesAndServesOnlyTheTopic(t *testing.T) {
	key := props(defaultBuild.resource(t, cp, defaultBuild.logicalIDOf(t, cp, "AWS::KMS::Key", "OperatorNotificationsKey")))
	if key["EnableKeyRotation"] != true {
		t.Errorf("key rotation = %v, want true", key["EnableKeyRotation"])
	}
	type want struct{ principal, actions, conditions string }
	wants := map[string]want{
		"AccountAdministersKey": {`{"AWS":"arn:aws:iam::111122223333:root"}`, `"kms:*"`, `null`},
		"EventBridgeEncryptsOperatorTopic": {`{"Service":"events.amazonaws.com"}`, `["kms:Decrypt","kms:GenerateDataKey"]`,
			`{"StringEquals":{"kms:EncryptionContext:aws:sns:topicArn":"` + sampleTopicArn + `"}}`},
		"CloudWatchEncryptsOperatorTopic": {`{"Service":"cloudwatch.amazonaws.com"}`, `["kms:Decrypt","kms:GenerateDataKey"]`,
			`{"ArnLike":{"aws:SourceArn":"arn:aws:cloudwatch:us-west-2:111122223333:alarm:stack-*"},` +
				`"StringEquals":{"aws:SourceAccount":"111122223333","kms:EncryptionContext:aws:sns:topicArn":"` + sampleTopicArn + `"}}`},
	}
	statements := asList(dig(key, "KeyPolicy", "Statement"))
	if len(statements) != len(wants) {
		t.Errorf("key policy has %d statements, want exactly %d: %s", len(statements), len(wants), toJSON(statements))
	}
	for _, st := range statements {
		sid, _ := dig(st, "Sid").(string)
		w, ok := wants[sid]
		if !ok {
			t.Errorf("unexpected key policy statement %s", toJSON(st))
			continue
		}
		got := want{toJSON(resolveAll(dig(st, "Principal"), sampleVars)), toJSON(dig(st, "Action")), toJSON(resolveAll(dig(st, "Condition"), sampleVars))}
		if got != w || dig(st, "Effect") != "Allow" || dig(st, "Resource") != "*" {
			t.Errorf("%s = %+v, want %+v (Allow on the key itself)", sid, got, w)
		}
	}
	// Every alarm's name falls under the key policy's aws:SourceArn pattern: otherwise
	// CloudWatch could not encrypt its notification and would drop it silently.
	for id, a := range defaultBuild.resources(cp, "AWS::CloudWatch::Alarm") {
		arn := "arn:aws:cloudwatch:us-west-2:111122223333:alarm:" + resolve(props(a)["AlarmName"], sampleVars)
		if !iamMatch("arn:aws:cloudwatch:us-west-2:111122223333:alarm:stack-*", arn) {
			t.Errorf("alarm %s (%s) is outside the key policy's alarm pattern", id, arn)
		}
	}
}

func TestEveryAlarmNotifiesTheOperatorTopic(t *testing.T) {
	topic := `[{"Ref":"` + operatorTopicID(t) + `"}]`
	alarms := defaultBuild.resources(cp, "AWS::CloudWatch::Alarm")
	if len(alarms) != 4 {
		t.Errorf("%d alarms, want 4", len(alarms))
	}
	for id, a := range alarms {
		p := props(a)
		if got := toJSON(p["AlarmActions"]); got != topic {
			t.Errorf("%s alarm actions = %s, want %s", id, got, topic)
		}
		// DLQ alarms stay in alarm until the queue is handled, so OK is news; execution
		// alarms return to OK by themselves, so they send none.
		wantOK := "null"
		if p["MetricName"] == "ApproximateNumberOfMessagesVisible" {
			wantOK = topic
		}
		if got := toJSON(p["OKActions"]); got != wantOK {
			t.Errorf("%s OK actions = %s, want %s", id, got, wantOK)
		}
	}
}

// topicPublishers returns, per service principal, the aws:SourceArn values the topic policy
// lets publish, and fails on any other Allow statement.
func topicPublishers(t *testing.T) map[string][]string {
	t.Helper()
	topicID := operatorTopicID(t)
	out := map[string][]string{}
	for _, st := range defaultBuild.policyStatements(cp) {
		if props(defaultBuild.resource(t, cp, st.resource))["Topics"] == nil || st.body["Effect"] != "Allow" {
			continue
		}
		b := st.body
		service, _ := dig(b, "Principal", "Service").(string)
		if b["Action"] != "sns:Publish" || dig(b, "Resource", "Ref") != topicID || service == "" {
			t.Errorf("unexpected topic policy statement %s", toJSON(b))
			continue
		}
		var arns []string
		for _, a := range asList(dig(b, "Condition", "ArnEquals", "aws:SourceArn")) {
			arns = append(arns, toJSON(dig(a, "Fn::GetAtt", 0)))
		}
		slices.Sort(arns)
		out[service] = arns
		if service == "cloudwatch.amazonaws.com" && toJSON(dig(b, "Condition", "StringEquals", "aws:SourceAccount")) != `{"Ref":"AWS::AccountId"}` {
			t.Errorf("CloudWatch's publish has no aws:SourceAccount condition: %s", toJSON(b))
		}
	}
	return out
}

func TestTopicPolicyAdmitsExactlyTheOperatorRulesAndAlarms(t *testing.T) {
	var rules, alarms []string
	for _, r := range operatorRules {
		rules = append(rules, toJSON(r.id))
	}
	for id := range defaultBuild.resources(cp, "AWS::CloudWatch::Alarm") {
		alarms = append(alarms, toJSON(id))
	}
	slices.Sort(rules)
	slices.Sort(alarms)
	got := topicPublishers(t)
	want := map[string][]string{"events.amazonaws.com": rules, "cloudwatch.amazonaws.com": alarms}
	if toJSON(got) != toJSON(want) {
		t.Errorf("topic publishers = %s, want %s", toJSON(got), toJSON(want))
	}
}

func TestOperatorRulesSendAlertsToTheTopic(t *testing.T) {
	bus := defaultBuild.logicalIDOf(t, cp, "AWS::Events::EventBus", "VendorBus")
	dlq := defaultBuild.logicalIDOf(t, cp, "AWS::SQS::Queue", "EventsDlq")
	topic := operatorTopicID(t)
	patterns := map[string]string{
		"OperatorSecurityRejectionRule": `{"account":[{"Ref":"AWS::AccountId"}],"detail":{"security":[true]},"detail-type":["BYOC State Message Rejected"],"source":["byoc.state"]}`,
		"OperatorCriticalHealthRule":    `{"account":[{"Ref":"AWS::AccountId"}],"detail":{"severity":["critical"]},"detail-type":["BYOC Deployment Health Changed"],"source":["byoc.state"]}`,
		"OperatorRecoveredHealthRule":   `{"account":[{"Ref":"AWS::AccountId"}],"detail":{"recovered":[true]},"detail-type":["BYOC Deployment Health Changed"],"source":["byoc.state"]}`,
		"OperatorMaintenanceFailedRule": `{"account":[{"Ref":"AWS::AccountId"}],"detail-type":["BYOC Maintenance Failed"],"source":["byoc.maintenance"]}`,
		"OperatorReleaseHaltedRule":     `{"account":[{"Ref":"AWS::AccountId"}],"detail-type":["BYOC Release Halted"],"source":["byoc.maintenance"]}`,
	}
	if rules := defaultBuild.resources(cp, "AWS::Events::Rule"); len(rules) != 4+len(patterns) {
		t.Errorf("%d rules on the control plane, want the 2 stack-event rules, the release health rule, the peering request rule and %d operator rules", len(rules), len(patterns))
	}
	dlqAdmits := map[string]bool{}
	for _, st := range defaultBuild.policyStatements(cp) {
		if st.body["Effect"] == "Allow" && dig(st.body, "Resource", "Fn::GetAtt", 0) == dlq && st.body["Action"] == "sqs:SendMessage" &&
			toJSON(dig(st.body, "Principal")) == `{"Service":"events.amazonaws.com"}` {
			dlqAdmits[toJSON(dig(st.body, "Condition", "ArnEquals", "aws:SourceArn", "Fn::GetAtt", 0))] = true
		}
	}
	for id, want := range patterns {
		rule := props(defaultBuild.resource(t, cp, id))
		if got := toJSON(rule["EventPattern"]); got != want {
			t.Errorf("%s pattern = %s, want %s", id, got, want)
		}
		if dig(rule, "EventBusName", "Ref") != bus || rule["State"] != "ENABLED" {
			t.Errorf("%s is on %s (%v), want the vendor bus, enabled", id, toJSON(rule["EventBusName"]), rule["State"])
		}
		targets := asList(rule["Targets"])
		if len(targets) != 1 {
			t.Fatalf("%s targets = %s, want the topic alone", id, toJSON(targets))
		}
		target := targets[0]
		if dig(target, "Arn", "Ref") != topic || dig(target, "DeadLetterConfig", "Arn", "Fn::GetAtt", 0) != dlq ||
			dig(target, "RetryPolicy", "MaximumRetryAttempts") != float64(ruleRetryAttempts) ||
			dig(target, "RetryPolicy", "MaximumEventAgeInSeconds") != float64(ruleMaxEventAge) {
			t.Errorf("%s target = %s, want the topic, retries %d over %d s, the events DLQ", id, toJSON(target), ruleRetryAttempts, ruleMaxEventAge)
		}
		if !dlqAdmits[toJSON(id)] {
			t.Errorf("the events DLQ's policy does not let %s's undeliverable events in", id)
		}
	}
}

// TestOperatorRulesMatchTheEventsStateFunctionsPublish runs events built from the real
// detail types (health.AlertFor, servicestate.Rejection) through the rules' patterns with
// the local cloud's matcher: only security rejections, critical deployments and recovered
// deployments reach the operators.
func TestOperatorRulesMatchTheEventsStateFunctionsPublish(t *testing.T) {
	event := func(detailType string, detail any) map[string]any {
		raw, _ := json.Marshal(detail)
		var d map[string]any
		_ = json.Unmarshal(raw, &d)
		return map[string]any{"account": sampleVars["AWS::AccountId"], "source": contract.SourceState, "detail-type": detailType, "detail": d}
	}
	fromCustomer := func(e map[string]any) map[string]any {
		e["account"] = "444455556666"
		return e
	}
	alert := func(scope health.Scope, from, to health.Health) map[string]any {
		a, ok := health.AlertFor(health.Transition{Scope: scope, DeploymentID: "dep1", From: from, To: to})
		if !ok {
			t.Fatalf("no alert for %s -> %s", from, to)
		}
		dt := contract.DetailTypeDeploymentHealthChanged
		if scope == health.ScopeService {
			dt = contract.DetailTypeServiceHealthChanged
		}
		return event(dt, a)
	}
	cases := []struct {
		name  string
		event map[string]any
		want  string // the rule that matches, or ""
	}{
		{"forged sender", event(contract.DetailTypeStateMessageRejected, servicestate.Rejection{Reason: "forged-sender", Security: true}), "OperatorSecurityRejectionRule"},
		{"malformed message", event(contract.DetailTypeStateMessageRejected, servicestate.Rejection{Reason: "malformed"}), ""},
		{"deployment unhealthy", alert(health.ScopeDeployment, health.Healthy, health.Unhealthy), "OperatorCriticalHealthRule"},
		{"deployment degraded", alert(health.ScopeDeployment, health.Healthy, health.Degraded), ""},
		{"deployment stale", alert(health.ScopeDeployment, health.Healthy, health.Stale), ""},
		{"deployment recovered", alert(health.ScopeDeployment, health.Unhealthy, health.Healthy), "OperatorRecoveredHealthRule"},
		{"deployment first report", alert(health.ScopeDeployment, health.Unknown, health.Healthy), ""},
		{"service unhealthy", alert(health.ScopeService, health.Healthy, health.Unhealthy), ""},
		{"service recovered", alert(health.ScopeService, health.Unhealthy, health.Healthy), ""},
		// What an admitted customer could put, were the bus policy to let it: nothing pages.
		{"customer's forged sender", fromCustomer(event(contract.DetailTypeStateMessageRejected, servicestate.Rejection{Reason: "forged-sender", Security: true})), ""},
		{"customer's deployment unhealthy", fromCustomer(alert(health.ScopeDeployment, health.Healthy, health.Unhealthy)), ""},
		{"customer's deployment recovered", fromCustomer(alert(health.ScopeDeployment, health.Unhealthy, health.Healthy)), ""},
	}
	for _, c := range cases {
		var matched []string
		for _, r := range operatorRules {
			p := compilePattern(t, props(defaultBuild.resource(t, cp, r.id))["EventPattern"], sampleVars)
			if p.Match(c.event) {
				matched = append(matched, r.id)
			}
		}
		want := []string{}
		if c.want != "" {
			want = []string{c.want}
		}
		if toJSON(matched) != toJSON(want) && !(len(matched) == 0 && len(want) == 0) {
			t.Errorf("%s matches %v, want %v", c.name, matched, want)
		}
	}
}

func TestOperatorTopicArnIsAnOutput(t *testing.T) {
	out := dig(defaultBuild.templates[cp], "Outputs", OutputOperatorTopicArn, "Value", "Ref")
	if out != operatorTopicID(t) {
		t.Errorf("output %s = %v, want the topic's ARN (Ref %s)", OutputOperatorTopicArn, out, operatorTopicID(t))
	}
}
