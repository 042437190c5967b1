package main

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/smithy-go"
)

// fakeCFN plays the customer account's CloudFormation. kumo's CloudFormation is a stub (it
// rejects Parameters, keeps no events, never fails a stack), so the behaviours provision
// depends on are modelled here, following the CloudFormation API reference: lookups by name
// see only the live stack and by ARN also deleted ones; a repeated create is
// AlreadyExistsException; an unchanged update is "No updates are to be performed."; a
// protected stack cannot be deleted; events come newest first. The local cloud's stack
// engine exercises the real API end to end.
type fakeCFN struct {
	mu      sync.Mutex
	region  string
	account string
	stacks  []*fakeStack
	calls   []string
	seq     int
	// err, when set, is returned by the next call of that operation, then cleared.
	err map[string]error
}

type fakeStack struct {
	id, name, status, reason string
	template                 string
	params, tags, outputs    map[string]string
	protected                bool
	capabilities             []cfntypes.Capability
	token                    string
	events                   []cfntypes.StackEvent // oldest first; served newest first
}

func newFakeCFN(account, region string) *fakeCFN {
	return &fakeCFN{account: account, region: region, err: map[string]error{}}
}

func notExist(ref string) error {
	return &smithy.GenericAPIError{Code: "ValidationError", Message: "Stack with id " + ref + " does not exist"}
}

func (f *fakeCFN) injected(op string) error {
	err := f.err[op]
	delete(f.err, op)
	return err
}

// find returns the stack an API call names: by ARN any instance, by name the live one.
func (f *fakeCFN) find(ref string) *fakeStack {
	for i := len(f.stacks) - 1; i >= 0; i-- {
		s := f.stacks[i]
		if s.id == ref || (s.name == ref && s.status != "DELETE_COMPLETE") {
			return s
		}
	}
	return nil
}

func (s *fakeStack) event(logical, typ, status, reason string) {
	physical := ""
	if typ == "AWS::CloudFormation::Stack" {
		physical = s.id
	}
	s.events = append(s.events, cfntypes.StackEvent{
		StackId: aws.String(s.id), StackName: aws.String(s.name), EventId: aws.String(fmt.Sprint(len(s.events))),
		LogicalResourceId: aws.String(logical), PhysicalResourceId: aws.String(physical), ResourceType: aws.String(typ),
		ResourceStatus: cfntypes.ResourceStatus(status), ResourceStatusReason: aws.String(reason),
		ClientRequestToken: aws.String(s.token), Timestamp: aws.Time(time.Now()),
	})
}

func (s *fakeStack) setStatus(status, reason string) {
	s.status, s.reason = status, reason
	s.event(s.name, "AWS::CloudFormation::Stack", status, reason)
}

func (f *fakeCFN) DescribeStacks(_ context.Context, in *cloudformation.DescribeStacksInput, _ ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "DescribeStacks "+aws.ToString(in.StackName))
	if err := f.injected("DescribeStacks"); err != nil {
		return nil, err
	}
	s := f.find(aws.ToString(in.StackName))
	if s == nil {
		return nil, notExist(aws.ToString(in.StackName))
	}
	st := cfntypes.Stack{
		StackId: aws.String(s.id), StackName: aws.String(s.name), StackStatus: cfntypes.StackStatus(s.status),
		StackStatusReason: aws.String(s.reason), EnableTerminationProtection: aws.Bool(s.protected),
	}
	for k, v := range s.outputs {
		st.Outputs = append(st.Outputs, cfntypes.Output{OutputKey: aws.String(k), OutputValue: aws.String(v)})
	}
	return &cloudformation.DescribeStacksOutput{Stacks: []cfntypes.Stack{st}}, nil
}

func (f *fakeCFN) DescribeStackEvents(_ context.Context, in *cloudformation.DescribeStackEventsInput, _ ...func(*cloudformation.Options)) (*cloudformation.DescribeStackEventsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "DescribeStackEvents "+aws.ToString(in.StackName))
	if err := f.injected("DescribeStackEvents"); err != nil {
		return nil, err
	}
	s := f.find(aws.ToString(in.StackName))
	if s == nil {
		return nil, notExist(aws.ToString(in.StackName))
	}
	out := &cloudformation.DescribeStackEventsOutput{}
	for i := len(s.events) - 1; i >= 0; i-- {
		out.StackEvents = append(out.StackEvents, s.events[i])
	}
	return out, nil
}

func (f *fakeCFN) CreateStack(_ context.Context, in *cloudformation.CreateStackInput, _ ...func(*cloudformation.Options)) (*cloudformation.CreateStackOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "CreateStack "+aws.ToString(in.StackName)+" "+aws.ToString(in.ClientRequestToken))
	if err := f.injected("CreateStack"); err != nil {
		return nil, err
	}
	if f.find(aws.ToString(in.StackName)) != nil {
		return nil, &cfntypes.AlreadyExistsException{Message: aws.String("Stack [" + aws.ToString(in.StackName) + "] already exists")}
	}
	f.seq++
	s := &fakeStack{
		id:       fmt.Sprintf("arn:aws:cloudformation:%s:%s:stack/%s/%08d-0000-4000-8000-000000000000", f.region, f.account, aws.ToString(in.StackName), f.seq),
		name:     aws.ToString(in.StackName),
		template: aws.ToString(in.TemplateBody), params: map[string]string{}, tags: map[string]string{},
		protected: aws.ToBool(in.EnableTerminationProtection), capabilities: in.Capabilities, token: aws.ToString(in.ClientRequestToken),
	}
	for _, p := range in.Parameters {
		s.params[aws.ToString(p.ParameterKey)] = aws.ToString(p.ParameterValue)
	}
	for _, t := range in.Tags {
		s.tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	s.setStatus("CREATE_IN_PROGRESS", "User Initiated")
	f.stacks = append(f.stacks, s)
	return &cloudformation.CreateStackOutput{StackId: aws.String(s.id)}, nil
}

func (f *fakeCFN) UpdateStack(_ context.Context, in *cloudformation.UpdateStackInput, _ ...func(*cloudformation.Options)) (*cloudformation.UpdateStackOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "UpdateStack "+aws.ToString(in.StackName)+" "+aws.ToString(in.ClientRequestToken))
	if err := f.injected("UpdateStack"); err != nil {
		return nil, err
	}
	s := f.find(aws.ToString(in.StackName))
	if s == nil {
		return nil, notExist(aws.ToString(in.StackName))
	}
	params := map[string]string{}
	for _, p := range in.Parameters {
		params[aws.ToString(p.ParameterKey)] = aws.ToString(p.ParameterValue)
	}
	if maps.Equal(params, s.params) && aws.ToString(in.TemplateBody) == s.template {
		return nil, &smithy.GenericAPIError{Code: "ValidationError", Message: "No updates are to be performed."}
	}
	s.params, s.template, s.token = params, aws.ToString(in.TemplateBody), aws.ToString(in.ClientRequestToken)
	s.setStatus("UPDATE_IN_PROGRESS", "User Initiated")
	return &cloudformation.UpdateStackOutput{StackId: aws.String(s.id)}, nil
}

func (f *fakeCFN) DeleteStack(_ context.Context, in *cloudformation.DeleteStackInput, _ ...func(*cloudformation.Options)) (*cloudformation.DeleteStackOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "DeleteStack "+aws.ToString(in.StackName)+" "+aws.ToString(in.ClientRequestToken))
	s := f.find(aws.ToString(in.StackName))
	if s == nil {
		return &cloudformation.DeleteStackOutput{}, nil // deleting a missing stack succeeds
	}
	if s.protected {
		return nil, &smithy.GenericAPIError{Code: "ValidationError", Message: "Stack [" + s.id + "] cannot be deleted while TerminationProtection is enabled"}
	}
	s.token = aws.ToString(in.ClientRequestToken)
	s.setStatus("DELETE_IN_PROGRESS", "User Initiated")
	return &cloudformation.DeleteStackOutput{}, nil
}

func (f *fakeCFN) UpdateTerminationProtection(_ context.Context, in *cloudformation.UpdateTerminationProtectionInput, _ ...func(*cloudformation.Options)) (*cloudformation.UpdateTerminationProtectionOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("UpdateTerminationProtection %s %v", aws.ToString(in.StackName), aws.ToBool(in.EnableTerminationProtection)))
	s := f.find(aws.ToString(in.StackName))
	if s == nil {
		return nil, notExist(aws.ToString(in.StackName))
	}
	s.protected = aws.ToBool(in.EnableTerminationProtection)
	return &cloudformation.UpdateTerminationProtectionOutput{StackId: aws.String(s.id)}, nil
}

// live returns the live stack of a name (test inspection).
func (f *fakeCFN) live(name string) *fakeStack {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.find(name)
}

// settle ends the running operation of the live stack: with success, or with a rollback
// after resource failed (the way CloudFormation reports it: the failed resource, the
// collateral cancellations, the rollback).
func (f *fakeCFN) settle(name, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.find(name)
	switch status {
	case "CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE": // a rolled-back update has the outputs of before
		s.outputs = map[string]string{"VpcId": "vpc-0abc", "ClusterName": "clickhouse-cloud-" + s.params["DeploymentId"],
			"StateExporterRoleArn": "arn:aws:iam::" + f.account + ":role/clickhouse-cloud-state-exporter",
			"StateExporterRoleId":  "AROA3XFRBF23STATEXPRT",
			"AgentRoleArn":         "arn:aws:iam::" + f.account + ":role/clickhouse-cloud-agent"}
		s.setStatus(status, "")
	case "ROLLBACK_COMPLETE":
		s.event("EksCluster", "AWS::EKS::Cluster", "CREATE_FAILED", "Resource handler returned message: \"Cannot create cluster: insufficient capacity in usw2-az4\"")
		s.event("Bucket", "AWS::S3::Bucket", "CREATE_FAILED", "Resource creation cancelled")
		s.setStatus("ROLLBACK_IN_PROGRESS", "The following resource(s) failed to create: [EksCluster, Bucket]. Rollback requested by user.")
		s.setStatus("ROLLBACK_COMPLETE", "")
	case "DELETE_COMPLETE":
		s.setStatus("DELETE_COMPLETE", "")
	default:
		s.setStatus(status, "")
	}
}
