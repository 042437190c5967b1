package stacks

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/jsii-runtime-go"

	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/health"
)

// Operator notifications (docs/cdk.md "Operator notifications"): one SNS topic, encrypted
// with its own key, that the alarms and the operator rules publish to. Operators subscribe
// an email or chat endpoint to OutputOperatorTopicArn.
const (
	OutputOperatorTopicArn = "OperatorTopicArn"
	// operatorTopicName is fixed (under the stack's name) so that the key policy can name
	// the topic's ARN: the topic depends on the key, so the key cannot refer to the topic.
	operatorTopicName = "${AWS::StackName}-operator-notifications"
	// alarmNamePrefix starts every alarm's name, for the same reason: the key policy admits
	// CloudWatch only for alarms of this stack (aws:SourceArn), and the alarms depend on
	// the topic, which depends on the key.
	alarmNamePrefix = "${AWS::StackName}-"
)

// Rule targets: EventBridge retries a failing target for up to 6 hours, 10 times, then
// sends the event to the events DLQ (whose alarm notifies the operators).
const (
	ruleRetryAttempts = 10
	ruleMaxEventAge   = 6 * 60 * 60
)

// operatorRule is one rule on the vendor bus whose events go to the operator topic.
type operatorRule struct {
	id, description, source, detailType string
	detail                              map[string]any
}

// operatorRules: what reaches a human. Security rejections (a forged sender), a deployment
// entering unhealthy (critical), and a deployment recovering, so whoever was paged hears
// the incident is over. Service-level alerts and warnings (degraded, stale) stay on the bus
// for dashboards: a deployment's health already summarises its services.
var operatorRules = []operatorRule{
	{"OperatorSecurityRejectionRule", "State messages rejected as a security event (forged sender) to the operator topic",
		contract.SourceState, contract.DetailTypeStateMessageRejected, map[string]any{"security": []any{true}}},
	{"OperatorCriticalHealthRule", "Deployments entering unhealthy (critical) to the operator topic",
		contract.SourceState, contract.DetailTypeDeploymentHealthChanged, map[string]any{"severity": []any{string(health.SeverityCritical)}}},
	{"OperatorRecoveredHealthRule", "Deployments whose bad health gave way to a good one to the operator topic",
		contract.SourceState, contract.DetailTypeDeploymentHealthChanged, map[string]any{"recovered": []any{true}}},
	{"OperatorMaintenanceFailedRule", "Failed upgrades to the operator topic",
		contract.SourceMaintenance, contract.DetailTypeMaintenanceFailed, nil},
	{"OperatorReleaseHaltedRule", "Halted release rollouts to the operator topic",
		contract.SourceMaintenance, contract.DetailTypeReleaseHalted, nil},
}

// operatorTopic creates the key and the topic. The key's policy is written whole: the
// account administers the key through IAM, and EventBridge and CloudWatch may use it only
// for this topic (the encryption context SNS sets, aws:sns:topicArn), CloudWatch only for
// this stack's alarms. The topic's policy (TLS only, publishers) is completed by
// admitPublishers once the rules and alarms exist.
func (b *controlPlaneBuilder) operatorTopic() {
	s := b.cp.Stack
	topicArn := sub("arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:" + operatorTopicName)
	forTopic := map[string]any{"kms:EncryptionContext:aws:sns:topicArn": topicArn}
	useKey := []string{"kms:Decrypt", "kms:GenerateDataKey"}
	policy := awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{Statements: &[]awsiam.PolicyStatement{
		resourceStatement(grant{sid: "AccountAdministersKey", actions: []string{"kms:*"}, resources: []string{"*"}},
			awsiam.NewAccountRootPrincipal()),
		resourceStatement(grant{sid: "EventBridgeEncryptsOperatorTopic", actions: useKey, resources: []string{"*"},
			// AWS documents no aws:SourceArn/aws:SourceAccount in the KMS request EventBridge
			// makes for an encrypted topic: the encryption context is the only condition.
			conditions: map[string]any{"StringEquals": forTopic}},
			awsiam.NewServicePrincipal(jsii.String("events.amazonaws.com"), nil)),
		resourceStatement(grant{sid: "CloudWatchEncryptsOperatorTopic", actions: useKey, resources: []string{"*"},
			conditions: map[string]any{
				"StringEquals": map[string]any{"kms:EncryptionContext:aws:sns:topicArn": topicArn, "aws:SourceAccount": *s.Account()},
				"ArnLike":      map[string]any{"aws:SourceArn": sub("arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:" + alarmNamePrefix + "*")},
			}},
			awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)),
	}})
	b.cp.OperatorKey = awskms.NewKey(s, jsii.String("OperatorNotificationsKey"), &awskms.KeyProps{
		Description:       jsii.String("Encrypts the byoc operator notification topic"),
		EnableKeyRotation: jsii.Bool(true),
		Policy:            policy,
		RemovalPolicy:     awscdk.RemovalPolicy_DESTROY,
	})
	b.cp.OperatorTopic = awssns.NewTopic(s, jsii.String("OperatorNotifications"), &awssns.TopicProps{
		TopicName:   jsii.String(sub(operatorTopicName)),
		DisplayName: jsii.String("byoc operator notifications"),
		MasterKey:   b.cp.OperatorKey,
		// The topic policy denies publishing and subscribing without TLS.
		EnforceSSL: jsii.Bool(true),
	})
}

// resourceStatement renders a grant as a resource-policy statement for principal.
func resourceStatement(g grant, principal awsiam.IPrincipal) awsiam.PolicyStatement {
	st := g.statement()
	st.AddPrincipals(principal)
	return st
}

// operatorEventRules puts the operator rules on the vendor bus. L1 rules: the L2 SNS target
// would also grant EventBridge the topic and the key without conditions; here the topic
// policy names each rule (admitPublishers) and the DLQ's policy admits each rule alone.
func (b *controlPlaneBuilder) operatorEventRules() []awsevents.CfnRule {
	s := b.cp.Stack
	var rules []awsevents.CfnRule
	for _, r := range operatorRules {
		pattern := map[string]any{
			// Only this account's own events: a rule without an account field matches
			// events that admitted customer accounts put on the bus too.
			"account":     []any{*s.Account()},
			"source":      []any{r.source},
			"detail-type": []any{r.detailType},
		}
		if r.detail != nil {
			pattern["detail"] = r.detail
		}
		rule := awsevents.NewCfnRule(s, jsii.String(r.id), &awsevents.CfnRuleProps{
			Description:  jsii.String(r.description),
			EventBusName: b.cp.Bus.EventBusName(),
			State:        jsii.String("ENABLED"),
			EventPattern: pattern,
			Targets: &[]any{&awsevents.CfnRule_TargetProperty{
				Id:               jsii.String("OperatorTopic"),
				Arn:              b.cp.OperatorTopic.TopicArn(),
				DeadLetterConfig: &awsevents.CfnRule_DeadLetterConfigProperty{Arn: b.cp.EventsDLQ.QueueArn()},
				RetryPolicy: &awsevents.CfnRule_RetryPolicyProperty{
					MaximumRetryAttempts:     jsii.Number(ruleRetryAttempts),
					MaximumEventAgeInSeconds: jsii.Number(ruleMaxEventAge),
				},
			}},
		})
		// As the L2 targets do: EventBridge may send this rule's undeliverable events to
		// the DLQ.
		b.cp.EventsDLQ.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String("AllowEventRule" + r.id),
			Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("events.amazonaws.com"), nil)},
			Actions:    jsii.Strings("sqs:SendMessage"),
			Resources:  jsii.Strings(*b.cp.EventsDLQ.QueueArn()),
			Conditions: &map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": rule.AttrArn()}},
		}))
		rules = append(rules, rule)
	}
	return rules
}

// admitPublishers lets exactly the operator rules and this stack's alarms publish to the
// topic. The topic policy is its own resource, so naming the rules and alarms (which refer
// to the topic) makes no cycle.
func (b *controlPlaneBuilder) admitPublishers(rules []awsevents.CfnRule, alarmArns []*string) {
	ruleArns := make([]*string, len(rules))
	for i, r := range rules {
		ruleArns[i] = r.AttrArn()
	}
	topic := []string{*b.cp.OperatorTopic.TopicArn()}
	b.cp.OperatorTopic.AddToResourcePolicy(resourceStatement(grant{actions: []string{"sns:Publish"}, resources: topic,
		conditions: map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": ruleArns}}},
		awsiam.NewServicePrincipal(jsii.String("events.amazonaws.com"), nil)))
	b.cp.OperatorTopic.AddToResourcePolicy(resourceStatement(grant{actions: []string{"sns:Publish"}, resources: topic,
		conditions: map[string]any{
			"ArnEquals":    map[string]any{"aws:SourceArn": alarmArns},
			"StringEquals": map[string]any{"aws:SourceAccount": *b.cp.Stack.Account()},
		}},
		awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)))
}
