package cfnengine

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	schtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// recordedTypes exist in the vendor account only as records: the local cloud does not
// enforce IAM, alarms, logs, resource policies or encryption keys (a topic's key is not
// passed to kumo), and nothing in byoc reads them back.
var recordedTypes = map[string]bool{
	"AWS::IAM::Role": true, "AWS::IAM::Policy": true, "AWS::IAM::ManagedPolicy": true, "AWS::IAM::InstanceProfile": true,
	"AWS::Logs::LogGroup": true, "AWS::CloudWatch::Alarm": true, "AWS::SNS::TopicPolicy": true,
	"AWS::KMS::Key": true, "AWS::Lambda::Permission": true, "AWS::SQS::QueuePolicy": true, "AWS::S3::BucketPolicy": true,
	"AWS::Events::EventBusPolicy": true, "AWS::CDK::Metadata": true,
	// The HTTP API is served by the local cloud's API gateway from these records (HTTPAPI).
	"AWS::ApiGatewayV2::Api": true, "AWS::ApiGatewayV2::Integration": true, "AWS::ApiGatewayV2::Route": true, "AWS::ApiGatewayV2::Stage": true,
}

// vendorDeployer creates the vendor account's resources in kumo and the Step Functions
// engine, through their AWS APIs at the front door.
type vendorDeployer struct {
	e       *Engine
	once    sync.Once
	sqs     *sqs.Client
	ddb     *dynamodb.Client
	events  *eventbridge.Client
	lambda  *lambda.Client
	sfn     *sfn.Client
	sns     *sns.Client
	sched   *scheduler.Client
	httpc   *http.Client
	started sync.Map // function name -> true while its process runs
}

func newVendorDeployer(e *Engine) *vendorDeployer { return &vendorDeployer{e: e} }

func (v *vendorDeployer) clients() {
	v.once.Do(func() {
		cfg := v.e.cfg.AWS
		v.sqs = sqs.NewFromConfig(cfg)
		v.ddb = dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.DisableValidateResponseChecksum = true })
		v.events = eventbridge.NewFromConfig(cfg)
		v.lambda = lambda.NewFromConfig(cfg)
		v.sfn = sfn.NewFromConfig(cfg)
		v.sns = sns.NewFromConfig(cfg)
		v.sched = scheduler.NewFromConfig(cfg)
		v.httpc = &http.Client{Timeout: 30 * time.Second}
		if cfg.HTTPClient != nil {
			if hc, ok := cfg.HTTPClient.(*http.Client); ok {
				v.httpc = hc
			}
		}
	})
}

func (v *vendorDeployer) create(ctx context.Context, s *stack, r *liveResource) error {
	v.clients()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	switch r.typ {
	case "AWS::SQS::Queue":
		return v.createQueue(ctx, r)
	case "AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable":
		return v.createTable(ctx, s, r)
	case "AWS::Events::EventBus":
		out, err := v.events.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(r.physicalID)})
		if err != nil {
			return err
		}
		if arn := aws.ToString(out.EventBusArn); arn != "" {
			r.facts.Attrs["Arn"] = arn
		}
		return nil
	case "AWS::Events::Rule":
		return v.putRule(ctx, s, r, nil)
	case "AWS::SNS::Topic":
		// The vendor bus publishes to it (the operator rules); subscribers are the operators'.
		out, err := v.sns.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(r.physicalID)})
		if err != nil {
			return err
		}
		if arn := aws.ToString(out.TopicArn); arn != "" {
			r.facts.Ref, r.facts.Attrs["TopicArn"] = arn, arn
		}
		return nil
	case "AWS::Lambda::Function":
		return v.createFunction(ctx, s, r)
	case "AWS::Lambda::EventSourceMapping":
		return v.createMapping(ctx, r)
	case "AWS::StepFunctions::StateMachine":
		return v.createStateMachine(ctx, r)
	case "AWS::Scheduler::Schedule":
		out, err := v.sched.CreateSchedule(ctx, scheduleInput(r))
		if err != nil {
			return err
		}
		if arn := aws.ToString(out.ScheduleArn); arn != "" {
			r.facts.Attrs["Arn"] = arn
		}
		return nil
	case "AWS::Scheduler::ScheduleGroup":
		out, err := v.sched.CreateScheduleGroup(ctx, &scheduler.CreateScheduleGroupInput{Name: aws.String(r.physicalID)})
		if err != nil {
			return err
		}
		if arn := aws.ToString(out.ScheduleGroupArn); arn != "" {
			r.facts.Attrs["Arn"] = arn
		}
		return nil
	case "AWS::S3::Bucket":
		return v.s3(ctx, http.MethodPut, "/"+r.physicalID, nil)
	}
	if !recordedTypes[r.typ] {
		v.e.warn(s, fmt.Sprintf("%s %s is not deployed by the local cloud (recorded only)", r.typ, r.logicalID))
	}
	return nil
}

// update changes a resource in place where the API allows it, and otherwise replaces it
// (delete, then create), as CloudFormation does for properties that require replacement.
func (v *vendorDeployer) update(ctx context.Context, s *stack, old, r *liveResource) error {
	v.clients()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if old.physicalID == r.physicalID {
		switch r.typ {
		case "AWS::SQS::Queue":
			if isTrue(old.props["FifoQueue"]) == isTrue(r.props["FifoQueue"]) {
				r.facts = old.facts
				_, err := v.sqs.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(queueURL(old)), Attributes: queueAttributes(r.props)})
				return err
			}
		case "AWS::Events::EventBus", "AWS::Scheduler::ScheduleGroup", "AWS::S3::Bucket", "AWS::SNS::Topic":
			r.facts = old.facts // only tags, policies or attributes the local cloud ignores changed
			return nil
		case "AWS::Events::Rule":
			r.facts = old.facts
			return v.putRule(ctx, s, r, old)
		case "AWS::Lambda::Function":
			r.facts = old.facts
			return v.updateFunction(ctx, s, old, r)
		case "AWS::Lambda::EventSourceMapping":
			r.facts, r.physicalID = old.facts, old.physicalID
			_, err := v.lambda.UpdateEventSourceMapping(ctx, mappingUpdate(old.physicalID, r.props))
			return err
		case "AWS::Scheduler::Schedule":
			if stringProp(old.props, "GroupName") == stringProp(r.props, "GroupName") {
				r.facts = old.facts
				in := scheduleInput(r)
				_, err := v.sched.UpdateSchedule(ctx, &scheduler.UpdateScheduleInput{
					Name: in.Name, GroupName: in.GroupName, Description: in.Description, ScheduleExpression: in.ScheduleExpression,
					ScheduleExpressionTimezone: in.ScheduleExpressionTimezone, FlexibleTimeWindow: in.FlexibleTimeWindow, State: in.State, Target: in.Target,
				})
				return err
			}
		case "AWS::StepFunctions::StateMachine":
			r.facts = old.facts
			def, err := definition(r.props)
			if err != nil {
				return err
			}
			_, err = v.sfn.UpdateStateMachine(ctx, &sfn.UpdateStateMachineInput{
				StateMachineArn: aws.String(stateMachineArn(old)), Definition: aws.String(def), RoleArn: optString(r.props, "RoleArn"),
			})
			return err
		case "AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable":
			if sameTableShape(old.props, r.props) {
				r.facts = old.facts
				return v.tableTTL(ctx, r)
			}
			v.e.warn(s, fmt.Sprintf("%s %s: key schema or indexes changed; the table is replaced and its items are lost", r.typ, r.logicalID))
		}
		if recordedTypes[r.typ] {
			return nil
		}
	}
	if err := v.delete(ctx, s, old); err != nil {
		return err
	}
	return v.create(ctx, s, r)
}

func (v *vendorDeployer) delete(ctx context.Context, s *stack, r *liveResource) error {
	v.clients()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	switch r.typ {
	case "AWS::SQS::Queue":
		_, err := v.sqs.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(queueURL(r))})
		return err
	case "AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable":
		_, err := v.ddb.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(r.physicalID)})
		return err
	case "AWS::Events::EventBus":
		_, err := v.events.DeleteEventBus(ctx, &eventbridge.DeleteEventBusInput{Name: aws.String(r.physicalID)})
		return err
	case "AWS::SNS::Topic":
		arn, _ := r.facts.Ref.(string)
		_, err := v.sns.DeleteTopic(ctx, &sns.DeleteTopicInput{TopicArn: aws.String(arn)})
		return err
	case "AWS::Events::Rule":
		bus := busName(stringProp(r.props, "EventBusName"))
		if ids := targetIDs(r.props); len(ids) > 0 {
			if _, err := v.events.RemoveTargets(ctx, &eventbridge.RemoveTargetsInput{Rule: aws.String(r.physicalID), EventBusName: aws.String(bus), Ids: ids}); err != nil {
				return err
			}
		}
		_, err := v.events.DeleteRule(ctx, &eventbridge.DeleteRuleInput{Name: aws.String(r.physicalID), EventBusName: aws.String(bus)})
		return err
	case "AWS::Lambda::Function":
		if host := v.e.cfg.Functions; host != nil {
			if _, running := v.started.LoadAndDelete(r.physicalID); running {
				if err := host.StopFunction(r.physicalID); err != nil {
					v.e.warn(s, fmt.Sprintf("stopping function %s: %v", r.physicalID, err))
				}
			}
		}
		_, err := v.lambda.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String(r.physicalID)})
		return err
	case "AWS::Lambda::EventSourceMapping":
		_, err := v.lambda.DeleteEventSourceMapping(ctx, &lambda.DeleteEventSourceMappingInput{UUID: aws.String(r.physicalID)})
		return err
	case "AWS::StepFunctions::StateMachine":
		_, err := v.sfn.DeleteStateMachine(ctx, &sfn.DeleteStateMachineInput{StateMachineArn: aws.String(stateMachineArn(r))})
		return err
	case "AWS::Scheduler::Schedule":
		_, err := v.sched.DeleteSchedule(ctx, &scheduler.DeleteScheduleInput{Name: aws.String(r.physicalID), GroupName: optString(r.props, "GroupName")})
		return err
	case "AWS::Scheduler::ScheduleGroup":
		_, err := v.sched.DeleteScheduleGroup(ctx, &scheduler.DeleteScheduleGroupInput{Name: aws.String(r.physicalID)})
		return err
	case "AWS::S3::Bucket":
		return v.s3(ctx, http.MethodDelete, "/"+r.physicalID, nil)
	}
	return nil
}

// queueAttributes maps AWS::SQS::Queue properties to SQS attributes.
func queueAttributes(props map[string]any) map[string]string {
	attrs := map[string]string{}
	for _, name := range []string{"DelaySeconds", "MaximumMessageSize", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds",
		"VisibilityTimeout", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds", "SqsManagedSseEnabled", "FifoQueue",
		"ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit"} {
		if v, ok := props[name]; ok {
			if s, isScalar := scalar(v); isScalar {
				attrs[name] = s
			}
		}
	}
	for _, name := range []string{"RedrivePolicy", "RedriveAllowPolicy"} {
		switch v := props[name].(type) {
		case string:
			attrs[name] = v
		case map[string]any:
			b, _ := json.Marshal(v)
			attrs[name] = string(b)
		}
	}
	return attrs
}

func (v *vendorDeployer) createQueue(ctx context.Context, r *liveResource) error {
	out, err := v.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(r.physicalID), Attributes: queueAttributes(r.props)})
	if err != nil {
		return err
	}
	u := aws.ToString(out.QueueUrl)
	r.facts.Ref, r.facts.Attrs["QueueUrl"] = u, u
	got, err := v.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err == nil && got.Attributes["QueueArn"] != "" {
		r.facts.Attrs["Arn"] = got.Attributes["QueueArn"]
	}
	return nil
}

func queueURL(r *liveResource) string {
	u, _ := r.facts.Ref.(string)
	return u
}

// tableFields are the AWS::DynamoDB::Table properties that shape the table; TTL and the
// rest can change in place.
var tableFields = []string{"TableName", "AttributeDefinitions", "KeySchema", "BillingMode", "ProvisionedThroughput",
	"GlobalSecondaryIndexes", "LocalSecondaryIndexes", "StreamSpecification", "TableClass"}

func sameTableShape(a, b map[string]any) bool {
	for _, f := range tableFields {
		if !reflect.DeepEqual(a[f], b[f]) {
			return false
		}
	}
	return true
}

func (v *vendorDeployer) createTable(ctx context.Context, s *stack, r *liveResource) error {
	shape := map[string]any{}
	for _, f := range tableFields {
		if val, ok := r.props[f]; ok {
			shape[f] = val
		}
	}
	shape["TableName"] = r.physicalID
	if r.typ == "AWS::DynamoDB::GlobalTable" {
		// TableV2 writes GSIs without throughput and defaults to on-demand.
		if _, ok := shape["BillingMode"]; !ok {
			shape["BillingMode"] = "PAY_PER_REQUEST"
		}
		if gsis, ok := shape["GlobalSecondaryIndexes"].([]any); ok {
			clean := make([]any, 0, len(gsis))
			for _, g := range gsis {
				gm, _ := g.(map[string]any)
				clean = append(clean, map[string]any{"IndexName": gm["IndexName"], "KeySchema": gm["KeySchema"], "Projection": gm["Projection"]})
			}
			shape["GlobalSecondaryIndexes"] = clean
		}
	}
	if spec, ok := shape["StreamSpecification"].(map[string]any); ok {
		shape["StreamSpecification"] = map[string]any{"StreamEnabled": true, "StreamViewType": spec["StreamViewType"]}
	}
	body, err := json.Marshal(shape)
	if err != nil {
		return err
	}
	var in dynamodb.CreateTableInput
	if err := json.Unmarshal(body, &in); err != nil {
		return fmt.Errorf("table properties: %w", err)
	}
	out, err := v.ddb.CreateTable(ctx, &in)
	if err != nil {
		return err
	}
	if out.TableDescription != nil {
		if arn := aws.ToString(out.TableDescription.TableArn); arn != "" {
			r.facts.Attrs["Arn"] = arn
		}
		if arn := aws.ToString(out.TableDescription.LatestStreamArn); arn != "" {
			r.facts.Attrs["StreamArn"] = arn
		}
	}
	if replicas, _ := r.props["Replicas"].([]any); len(replicas) > 1 {
		v.e.warn(s, fmt.Sprintf("%s %s: replicas in other regions are not created locally", r.typ, r.logicalID))
	}
	return v.tableTTL(ctx, r)
}

func (v *vendorDeployer) tableTTL(ctx context.Context, r *liveResource) error {
	ttl, ok := r.props["TimeToLiveSpecification"].(map[string]any)
	if !ok {
		return nil
	}
	enabled, _ := boolProp(ttl, "Enabled")
	_, err := v.ddb.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               aws.String(r.physicalID),
		TimeToLiveSpecification: &ddbtypes.TimeToLiveSpecification{AttributeName: aws.String(stringProp(ttl, "AttributeName")), Enabled: aws.Bool(enabled)},
	})
	return err
}

func targetIDs(props map[string]any) []string {
	var ids []string
	if list, ok := props["Targets"].([]any); ok {
		for _, t := range list {
			tm, _ := t.(map[string]any)
			if id := stringProp(tm, "Id"); id != "" {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// putRule creates or updates a rule in kumo and sets its targets (removing the targets the
// previous version had and this one has not).
func (v *vendorDeployer) putRule(ctx context.Context, s *stack, r, old *liveResource) error {
	bus := busName(stringProp(r.props, "EventBusName"))
	in := &eventbridge.PutRuleInput{
		Name: aws.String(r.physicalID), EventBusName: aws.String(bus),
		Description: optString(r.props, "Description"), ScheduleExpression: optString(r.props, "ScheduleExpression"),
		RoleArn: optString(r.props, "RoleArn"),
	}
	if _, text, err := eventPattern(r.props); err != nil {
		return err
	} else if text != nil {
		in.EventPattern = aws.String(string(text))
	}
	if state := stringProp(r.props, "State"); state != "" {
		in.State = ebtypes.RuleState(state)
	}
	out, err := v.events.PutRule(ctx, in)
	if err != nil {
		return err
	}
	if arn := aws.ToString(out.RuleArn); arn != "" {
		r.facts.Attrs["Arn"] = arn
	}
	if old != nil {
		keep := map[string]bool{}
		for _, id := range targetIDs(r.props) {
			keep[id] = true
		}
		var gone []string
		for _, id := range targetIDs(old.props) {
			if !keep[id] {
				gone = append(gone, id)
			}
		}
		if len(gone) > 0 {
			if _, err := v.events.RemoveTargets(ctx, &eventbridge.RemoveTargetsInput{Rule: aws.String(r.physicalID), EventBusName: aws.String(bus), Ids: gone}); err != nil {
				return err
			}
		}
	}
	list, _ := r.props["Targets"].([]any)
	if len(list) == 0 {
		return nil
	}
	targets := make([]ebtypes.Target, 0, len(list))
	for _, t := range list {
		tm, _ := t.(map[string]any)
		target := ebtypes.Target{
			Id: aws.String(stringProp(tm, "Id")), Arn: aws.String(stringProp(tm, "Arn")),
			RoleArn: optString(tm, "RoleArn"), Input: optString(tm, "Input"), InputPath: optString(tm, "InputPath"),
		}
		if it, ok := tm["InputTransformer"].(map[string]any); ok {
			paths := map[string]string{}
			if m, ok := it["InputPathsMap"].(map[string]any); ok {
				for k, val := range m {
					paths[k], _ = val.(string)
				}
			}
			target.InputTransformer = &ebtypes.InputTransformer{InputTemplate: optString(it, "InputTemplate"), InputPathsMap: paths}
		}
		if sp, ok := tm["SqsParameters"].(map[string]any); ok {
			target.SqsParameters = &ebtypes.SqsParameters{MessageGroupId: optString(sp, "MessageGroupId")}
		}
		if dl, ok := tm["DeadLetterConfig"].(map[string]any); ok {
			target.DeadLetterConfig = &ebtypes.DeadLetterConfig{Arn: optString(dl, "Arn")}
		}
		if strings.HasPrefix(aws.ToString(target.Arn), "arn:aws:states:") {
			v.e.warn(s, fmt.Sprintf("AWS::Events::Rule %s: target %s is a state machine; kumo's EventBridge does not deliver to Step Functions", r.logicalID, aws.ToString(target.Id)))
		}
		targets = append(targets, target)
	}
	res, err := v.events.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(r.physicalID), EventBusName: aws.String(bus), Targets: targets})
	if err != nil {
		return err
	}
	if res.FailedEntryCount > 0 {
		return fmt.Errorf("PutTargets: %s", aws.ToString(res.FailedEntries[0].ErrorMessage))
	}
	return nil
}

// scheduleInput maps AWS::Scheduler::Schedule properties to CreateSchedule (the target's
// Arn, RoleArn, Input, RetryPolicy and DeadLetterConfig: what byoc's templates use).
func scheduleInput(r *liveResource) *scheduler.CreateScheduleInput {
	in := &scheduler.CreateScheduleInput{
		Name: aws.String(r.physicalID), GroupName: optString(r.props, "GroupName"), Description: optString(r.props, "Description"),
		ScheduleExpression: optString(r.props, "ScheduleExpression"), ScheduleExpressionTimezone: optString(r.props, "ScheduleExpressionTimezone"),
	}
	if state := stringProp(r.props, "State"); state != "" {
		in.State = schtypes.ScheduleState(state)
	}
	if w, ok := r.props["FlexibleTimeWindow"].(map[string]any); ok {
		in.FlexibleTimeWindow = &schtypes.FlexibleTimeWindow{Mode: schtypes.FlexibleTimeWindowMode(stringProp(w, "Mode")),
			MaximumWindowInMinutes: optInt32(w, "MaximumWindowInMinutes")}
	}
	if t, ok := r.props["Target"].(map[string]any); ok {
		in.Target = &schtypes.Target{Arn: optString(t, "Arn"), RoleArn: optString(t, "RoleArn"), Input: optString(t, "Input")}
		if rp, ok := t["RetryPolicy"].(map[string]any); ok {
			in.Target.RetryPolicy = &schtypes.RetryPolicy{MaximumRetryAttempts: optInt32(rp, "MaximumRetryAttempts"),
				MaximumEventAgeInSeconds: optInt32(rp, "MaximumEventAgeInSeconds")}
		}
		if dl, ok := t["DeadLetterConfig"].(map[string]any); ok {
			in.Target.DeadLetterConfig = &schtypes.DeadLetterConfig{Arn: optString(dl, "Arn")}
		}
	}
	return in
}

func optString(props map[string]any, name string) *string {
	if s, ok := props[name].(string); ok && s != "" {
		return aws.String(s)
	}
	return nil
}

func optInt32(props map[string]any, name string) *int32 {
	if n, ok := numberProp(props, name); ok {
		return aws.Int32(int32(n))
	}
	return nil
}

// placeholderZip is the code kumo stores for each function: the local cloud runs the host
// build of the function instead, so the template's asset is never read.
var placeholderZip = func() []byte {
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	f, _ := w.Create("bootstrap")
	_, _ = f.Write([]byte("#!/bin/sh\necho 'byoc local cloud: this function runs as a host process'\n"))
	_ = w.Close()
	return buf.Bytes()
}()

// functionSpec builds what the host needs to run a function.
func (v *vendorDeployer) functionSpec(r *liveResource) (FunctionSpec, error) {
	spec := FunctionSpec{Name: r.physicalID, Env: map[string]string{}, Timeout: 3 * time.Second, MemoryMB: 128, RoleArn: stringProp(r.props, "Role")}
	spec.Arn, _ = r.facts.Attrs["Arn"].(string)
	if env, ok := r.props["Environment"].(map[string]any); ok {
		if vars, ok := env["Variables"].(map[string]any); ok {
			for k, val := range vars {
				s, _ := scalar(val)
				spec.Env[k] = s
			}
		}
	}
	if n, ok := numberProp(r.props, "Timeout"); ok {
		spec.Timeout = time.Duration(n) * time.Second
	}
	if n, ok := numberProp(r.props, "MemorySize"); ok {
		spec.MemoryMB = int(n)
	}
	if tags, ok := r.props["Tags"].([]any); ok {
		for _, t := range tags {
			tm, _ := t.(map[string]any)
			if stringProp(tm, "Key") == functionTagKey {
				spec.ByocName = stringProp(tm, "Value")
			}
		}
	}
	if spec.RoleArn != "" {
		creds, err := v.e.cfg.Accounts.FunctionCredentials(spec.RoleArn, r.physicalID, 0)
		if err != nil {
			return spec, fmt.Errorf("execution role: %w", err)
		}
		spec.Credentials = creds
	}
	return spec, nil
}

// functionTagKey is contract.FunctionTagKey: the tag naming the host binary of a function.
const functionTagKey = "byoc:function"

func (v *vendorDeployer) createFunction(ctx context.Context, s *stack, r *liveResource) error {
	in := &lambda.CreateFunctionInput{
		FunctionName: aws.String(r.physicalID),
		Role:         aws.String(stringProp(r.props, "Role")),
		Runtime:      lambdatypes.Runtime(stringOr(r.props, "Runtime", "provided.al2023")),
		Handler:      aws.String(stringOr(r.props, "Handler", "bootstrap")),
		Code:         &lambdatypes.FunctionCode{ZipFile: placeholderZip},
		Description:  optString(r.props, "Description"),
		Timeout:      optInt32(r.props, "Timeout"),
		MemorySize:   optInt32(r.props, "MemorySize"),
	}
	for _, a := range stringList(r.props["Architectures"]) {
		in.Architectures = append(in.Architectures, lambdatypes.Architecture(a))
	}
	spec, err := v.functionSpec(r)
	if err != nil {
		return err
	}
	if len(spec.Env) > 0 {
		in.Environment = &lambdatypes.Environment{Variables: spec.Env}
	}
	out, err := v.lambda.CreateFunction(ctx, in)
	if err != nil {
		return err
	}
	if arn := aws.ToString(out.FunctionArn); arn != "" {
		r.facts.Attrs["Arn"] = arn
		spec.Arn = arn
	}
	return v.startFunction(ctx, s, r, spec)
}

func (v *vendorDeployer) startFunction(ctx context.Context, s *stack, r *liveResource, spec FunctionSpec) error {
	host := v.e.cfg.Functions
	switch {
	case host == nil:
		v.e.warn(s, fmt.Sprintf("function %s (%s) is created in kumo but not started: the stack engine has no FunctionHost", r.logicalID, r.physicalID))
	case spec.ByocName == "":
		v.e.warn(s, fmt.Sprintf("function %s (%s) has no %s tag: created in kumo, no process started", r.logicalID, r.physicalID, functionTagKey))
	default:
		if err := host.StartFunction(ctx, spec); err != nil {
			return fmt.Errorf("starting function %s: %w", spec.ByocName, err)
		}
		v.started.Store(r.physicalID, true)
	}
	return nil
}

func (v *vendorDeployer) updateFunction(ctx context.Context, s *stack, old, r *liveResource) error {
	spec, err := v.functionSpec(r)
	if err != nil {
		return err
	}
	in := &lambda.UpdateFunctionConfigurationInput{
		FunctionName: aws.String(r.physicalID), Role: aws.String(spec.RoleArn),
		Timeout: optInt32(r.props, "Timeout"), MemorySize: optInt32(r.props, "MemorySize"),
		Environment: &lambdatypes.Environment{Variables: spec.Env},
	}
	if _, err := v.lambda.UpdateFunctionConfiguration(ctx, in); err != nil {
		return err
	}
	if host := v.e.cfg.Functions; host != nil {
		if _, running := v.started.LoadAndDelete(r.physicalID); running {
			if err := host.StopFunction(r.physicalID); err != nil {
				return fmt.Errorf("restarting function %s: %w", r.physicalID, err)
			}
		}
	}
	return v.startFunction(ctx, s, r, spec)
}

func stringOr(props map[string]any, name, fallback string) string {
	if s := stringProp(props, name); s != "" {
		return s
	}
	return fallback
}

func (v *vendorDeployer) createMapping(ctx context.Context, r *liveResource) error {
	in := &lambda.CreateEventSourceMappingInput{
		FunctionName:                   aws.String(stringProp(r.props, "FunctionName")),
		EventSourceArn:                 optString(r.props, "EventSourceArn"),
		BatchSize:                      optInt32(r.props, "BatchSize"),
		MaximumBatchingWindowInSeconds: optInt32(r.props, "MaximumBatchingWindowInSeconds"),
	}
	if enabled, ok := boolProp(r.props, "Enabled"); ok {
		in.Enabled = aws.Bool(enabled)
	}
	for _, t := range stringList(r.props["FunctionResponseTypes"]) {
		in.FunctionResponseTypes = append(in.FunctionResponseTypes, lambdatypes.FunctionResponseType(t))
	}
	if sc, ok := r.props["ScalingConfig"].(map[string]any); ok {
		in.ScalingConfig = &lambdatypes.ScalingConfig{MaximumConcurrency: optInt32(sc, "MaximumConcurrency")}
	}
	out, err := v.lambda.CreateEventSourceMapping(ctx, in)
	if err != nil {
		return err
	}
	if id := aws.ToString(out.UUID); id != "" {
		r.physicalID = id
		r.facts.PhysicalID, r.facts.Ref = id, id
		r.facts.Attrs["Id"] = id
		if arn := aws.ToString(out.EventSourceMappingArn); arn != "" {
			r.facts.Attrs["EventSourceMappingArn"] = arn
		}
	}
	return nil
}

func mappingUpdate(id string, props map[string]any) *lambda.UpdateEventSourceMappingInput {
	in := &lambda.UpdateEventSourceMappingInput{
		UUID: aws.String(id), FunctionName: optString(props, "FunctionName"), BatchSize: optInt32(props, "BatchSize"),
		MaximumBatchingWindowInSeconds: optInt32(props, "MaximumBatchingWindowInSeconds"),
	}
	if enabled, ok := boolProp(props, "Enabled"); ok {
		in.Enabled = aws.Bool(enabled)
	}
	for _, t := range stringList(props["FunctionResponseTypes"]) {
		in.FunctionResponseTypes = append(in.FunctionResponseTypes, lambdatypes.FunctionResponseType(t))
	}
	return in
}

// definition returns a state machine's definition with DefinitionSubstitutions applied.
func definition(props map[string]any) (string, error) {
	var def string
	switch d := props["DefinitionString"].(type) {
	case string:
		def = d
	default:
		if obj, ok := props["Definition"]; ok {
			b, err := json.Marshal(obj)
			if err != nil {
				return "", err
			}
			def = string(b)
		}
	}
	if def == "" {
		if props["DefinitionS3Location"] != nil {
			return "", fmt.Errorf("DefinitionS3Location is not supported by the local cloud: inline the definition")
		}
		return "", fmt.Errorf("Property DefinitionString or Definition is required")
	}
	if subs, ok := props["DefinitionSubstitutions"].(map[string]any); ok {
		keys := make([]string, 0, len(subs))
		for k := range subs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			val, _ := scalar(subs[k])
			def = strings.ReplaceAll(def, "${"+k+"}", val)
		}
	}
	return def, nil
}

func (v *vendorDeployer) createStateMachine(ctx context.Context, r *liveResource) error {
	def, err := definition(r.props)
	if err != nil {
		return err
	}
	in := &sfn.CreateStateMachineInput{
		Name: aws.String(r.physicalID), Definition: aws.String(def), RoleArn: aws.String(stringProp(r.props, "RoleArn")),
	}
	if t := stringProp(r.props, "StateMachineType"); t != "" {
		in.Type = sfntypes.StateMachineType(t)
	}
	out, err := v.sfn.CreateStateMachine(ctx, in)
	if err != nil {
		return err
	}
	if arn := aws.ToString(out.StateMachineArn); arn != "" {
		r.facts.Ref, r.facts.Attrs["Arn"], r.facts.Attrs["StateMachineRevisionId"] = arn, arn, arn
	}
	return nil
}

func stateMachineArn(r *liveResource) string {
	arn, _ := r.facts.Ref.(string)
	return arn
}

// s3 sends a SigV4-signed request to S3 at the front door (path style): the project's
// modules include no S3 client, and a bucket needs only PUT and DELETE.
func (v *vendorDeployer) s3(ctx context.Context, method, path string, body []byte) error {
	_, err := v.s3Do(ctx, method, path, body)
	return err
}

func (v *vendorDeployer) s3Do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	v.clients()
	cfg := v.e.cfg.AWS
	endpoint := aws.ToString(cfg.BaseEndpoint)
	if endpoint == "" {
		return nil, fmt.Errorf("S3: the stack engine's AWS config has no endpoint")
	}
	u, err := url.JoinPath(endpoint, path)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, err
	}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hash, "s3", v.e.cfg.Region, time.Now()); err != nil {
		return nil, err
	}
	resp, err := v.httpc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 50<<20))
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("S3 %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
	}
	return data, nil
}
