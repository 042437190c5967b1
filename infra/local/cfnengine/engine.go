// Package stacks is the local cloud's CloudFormation. It serves the CloudFormation API
// (Query protocol) for every account of the local cloud:
//
//   - in the vendor account it deploys templates for real: queues, tables, buses, rules,
//     functions (into kumo, and started as host processes through a FunctionHost), event
//     source mappings, state machines (into the Step Functions engine), schedule groups,
//     buckets and SNS topics. IAM, alarms, log groups, keys and the like are recorded.
//     Anything else is listed as a warning, never silently dropped.
//   - in customer accounts it plays CloudFormation: statuses move through *_IN_PROGRESS to
//     *_COMPLETE after a delay, outputs are computed, failures can be injected, and every
//     status change is emitted as a "CloudFormation Stack Status Change" event on the
//     account's default bus, where the rules that the account's stacks created forward it
//     (to the vendor bus, if that bus's policy admits the account).
//
// Roles created by stacks are registered with the accounts package, so STS AssumeRole
// succeeds exactly when the customer's bootstrap stack has created a role that trusts the
// caller.
package cfnengine

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/byocloud/byoc/infra/local/accounts"
	"github.com/byocloud/byoc/infra/local/cfnengine/template"
)

// FunctionSpec describes a Lambda function of a deployed template, for the process that
// runs it on the host.
type FunctionSpec struct {
	Name     string            // the function name in kumo (physical id)
	ByocName string            // the byoc:function tag: functions/<ByocName>, build/local/<ByocName>/bootstrap
	Arn      string            // the function ARN
	Env      map[string]string // the template's Environment.Variables, resolved
	Timeout  time.Duration     // the template's Timeout (3 s when absent, as Lambda)
	MemoryMB int               // the template's MemorySize (128 when absent, as Lambda)
	RoleArn  string            // the execution role
	// Credentials are session credentials of RoleArn, issued by the accounts package, as the
	// Lambda service gives a function (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
	// AWS_SESSION_TOKEN). Calls made with them act as the role, which is what customer trust
	// policies name.
	Credentials aws.Credentials
}

// FunctionHost starts and stops the host processes of deployed functions.
type FunctionHost interface {
	StartFunction(ctx context.Context, spec FunctionSpec) error
	StopFunction(name string) error
}

// Clock is the time source of stack operations (delays and timestamps), so a demo or a
// test can run it faster.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// StackEvent is one entry of DescribeStackEvents: a status change of a stack (ResourceType
// AWS::CloudFormation::Stack) or of one of its resources.
type StackEvent struct {
	Account              string
	Region               string
	StackID              string
	StackName            string
	EventID              string
	LogicalResourceID    string
	PhysicalResourceID   string
	ResourceType         string
	ResourceStatus       string
	ResourceStatusReason string
	Timestamp            time.Time
	ClientRequestToken   string
}

// IsStack reports whether the event is about the stack itself rather than a resource.
func (e StackEvent) IsStack() bool { return e.ResourceType == stackResourceType }

const stackResourceType = "AWS::CloudFormation::Stack"

// Config configures an Engine.
type Config struct {
	Accounts      *accounts.Accounts // roles created by stacks are registered here; callers identified
	VendorAccount string             // where templates are deployed for real; accounts.VendorAccount when empty
	Region        string             // region of requests that carry none, and of DeployTemplate; us-east-1 when empty
	// AWS is the vendor's configuration (credentials and the front door's endpoint): the
	// engine creates kumo and Step Functions resources through their APIs with it.
	AWS aws.Config
	// Delay is how long a customer-account stack operation stays *_IN_PROGRESS.
	Delay     time.Duration
	Functions FunctionHost // nil: functions are created in kumo but no process is started (a warning says so)
	Clock     Clock        // nil: real time
	// Observer is told of every stack event, in order per stack; it is called from the
	// goroutines of several stacks at once.
	Observer func(StackEvent)
	// DeliverEvent delivers a forwarded event (the complete EventBridge envelope, as AWS
	// would deliver it: its id, account, region, time and resources) to a bus of the vendor
	// account; the local cloud's eventbus.Bus.Deliver. kumo's PutEvents cannot do it: it
	// rewrites the envelope, and its matcher lacks the wildcard the onboard rule uses. Nil:
	// matching events are logged and dropped.
	DeliverEvent func(ctx context.Context, busArn string, event []byte) error
	// SSMParameters answers AWS::SSM::Parameter::Value<...> parameters in every account. The
	// CDK bootstrap version parameter is preset so CDK templates deploy: each local account
	// counts as CDK-bootstrapped.
	SSMParameters map[string]string
	Logger        *slog.Logger
}

// Engine is the local cloud's CloudFormation. Safe for concurrent use.
type Engine struct {
	cfg    Config
	clock  Clock
	logger *slog.Logger
	vendor *vendorDeployer

	mu          sync.Mutex
	stacks      []*stack                           // every stack ever created, deleted ones too
	exports     map[regionKey]map[string]exportRef // export name -> exporting stack
	rules       map[regionKey]map[string]*forwardRule
	busPolicies map[string]map[string]json.RawMessage // busKey -> statement key -> policy document
	iam         map[string]*iamAccount
	held        map[heldName]string // physical names in use, live or retained -> holder
	injections  []injection
	holds       map[string]chan struct{} // account/stack name -> closed when its deletion may go on
	net         *network
	ops         sync.WaitGroup
}

type regionKey struct{ account, region string }

type exportRef struct {
	stackID string
	value   string
}

type injection struct {
	account, stackName, logicalID, reason string
	onDelete                              bool
}

// New returns an engine with no stacks.
func New(cfg Config) *Engine {
	if cfg.VendorAccount == "" {
		cfg.VendorAccount = accounts.VendorAccount
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Accounts == nil {
		cfg.Accounts = accounts.New()
	}
	ssm := map[string]string{"/cdk-bootstrap/hnb659fds/version": "30"}
	for k, v := range cfg.SSMParameters {
		ssm[k] = v
	}
	cfg.SSMParameters = ssm
	e := &Engine{
		cfg:         cfg,
		clock:       cfg.Clock,
		logger:      cfg.Logger,
		exports:     map[regionKey]map[string]exportRef{},
		rules:       map[regionKey]map[string]*forwardRule{},
		busPolicies: map[string]map[string]json.RawMessage{},
		held:        map[heldName]string{},
		iam:         map[string]*iamAccount{},
		net:         newNetwork(),
	}
	if e.clock == nil {
		e.clock = realClock{}
	}
	if e.logger == nil {
		e.logger = slog.Default()
	}
	e.vendor = newVendorDeployer(e)
	return e
}

// InjectFailure makes the next create or update of resource logicalID in the named stack of
// account fail with reason (as if AWS had refused it). An empty logicalID fails the first
// resource the operation creates or updates. Each injection fails one operation.
func (e *Engine) InjectFailure(account, stackName, logicalID, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.injections = append(e.injections, injection{account: account, stackName: stackName, logicalID: logicalID, reason: reason})
}

// InjectDeleteFailure makes the next deletion of resource logicalID in the named stack of
// account fail with reason: the stack deletion stops there, DELETE_FAILED, and the next
// DeleteStack carries on (AWS's path when a resource cannot be deleted yet).
func (e *Engine) InjectDeleteFailure(account, stackName, logicalID, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.injections = append(e.injections, injection{account: account, stackName: stackName, logicalID: logicalID, reason: reason, onDelete: true})
}

// HoldDelete makes the next deletion of the named stack of account stay DELETE_IN_PROGRESS
// until release is called (a deletion that takes its time, as an EKS cluster's does), so a
// test can act while a workflow waits on it.
func (e *Engine) HoldDelete(account, stackName string) (release func()) {
	ch := make(chan struct{})
	e.mu.Lock()
	if e.holds == nil {
		e.holds = map[string]chan struct{}{}
	}
	e.holds[account+"/"+stackName] = ch
	e.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

// takeHold returns the hold on a stack's deletion, if any (consumed).
func (e *Engine) takeHold(account, stackName string) chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch := e.holds[account+"/"+stackName]
	delete(e.holds, account+"/"+stackName)
	return ch
}

func (e *Engine) takeDeleteInjection(account, stackName, logicalID string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, in := range e.injections {
		if in.onDelete && in.account == account && in.stackName == stackName && in.logicalID == logicalID {
			e.injections = append(e.injections[:i], e.injections[i+1:]...)
			return in.reason, true
		}
	}
	return "", false
}

// takeInjection consumes the injection matching a resource, if any.
func (e *Engine) takeInjection(account, stackName, logicalID string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, in := range e.injections {
		if !in.onDelete && in.account == account && in.stackName == stackName && (in.logicalID == "" || in.logicalID == logicalID) {
			e.injections = append(e.injections[:i], e.injections[i+1:]...)
			return in.reason, true
		}
	}
	return "", false
}

// SetBusPolicy replaces the resource policy of a vendor bus (the whole document), for a
// local cloud that serves events:PutPermission itself. Templates set bus policies through
// AWS::Events::EventBusPolicy and the Policy property of AWS::Events::EventBus.
func (e *Engine) SetBusPolicy(busArn string, policy json.RawMessage) error {
	if _, err := accounts.ParsePolicy(policy); err != nil {
		return fmt.Errorf("bus policy of %s: %w", busArn, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.busPolicies[busKey(busArn)] = map[string]json.RawMessage{"": policy}
	return nil
}

// Wait blocks until every stack operation under way has finished.
func (e *Engine) Wait() { e.ops.Wait() }

func (e *Engine) isVendor(account string) bool { return account == e.cfg.VendorAccount }

func (e *Engine) ssm(name string) (string, bool) {
	v, ok := e.cfg.SSMParameters[name]
	return v, ok
}

// findLive returns the stack that is not deleted with this name or id in account/region.
// With an id, deleted stacks are found too (as DescribeStacks does).
func (e *Engine) find(account, region, nameOrID string) *stack {
	for i := len(e.stacks) - 1; i >= 0; i-- {
		s := e.stacks[i]
		if s.account != account || s.region != region {
			continue
		}
		if s.id == nameOrID {
			return s
		}
		if s.name == nameOrID && s.status != "DELETE_COMPLETE" {
			return s
		}
	}
	return nil
}

// iamAccount tracks the roles and policies stacks created in one account, so each role is
// registered with its trust policy and its identity policies (inline, attached, managed).
type iamAccount struct {
	roles           map[string]*iamRole                   // role name -> role
	managedPolicies map[string]json.RawMessage            // policy ARN -> document (customer managed)
	attachments     map[string]map[string]json.RawMessage // role name -> attachment key -> document
}

type iamRole struct {
	name, path  string
	trust       json.RawMessage
	maxSession  time.Duration
	inline      []json.RawMessage
	managedArns []string
}

// administratorAccess is what the AWS managed AdministratorAccess policy grants.
var administratorAccess = json.RawMessage(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`)

func (e *Engine) iamFor(account string) *iamAccount {
	a := e.iam[account]
	if a == nil {
		a = &iamAccount{roles: map[string]*iamRole{}, managedPolicies: map[string]json.RawMessage{}, attachments: map[string]map[string]json.RawMessage{}}
		e.iam[account] = a
	}
	return a
}

// registerRole (re)registers a role with its current policies. Caller holds e.mu.
func (e *Engine) registerRoleLocked(account, name string) error {
	a := e.iamFor(account)
	r := a.roles[name]
	if r == nil {
		return nil
	}
	policies := append([]json.RawMessage{}, r.inline...)
	for _, arn := range r.managedArns {
		if doc, ok := a.managedPolicies[arn]; ok {
			policies = append(policies, doc)
		} else if strings.HasSuffix(arn, ":policy/AdministratorAccess") {
			policies = append(policies, administratorAccess)
		}
	}
	keys := make([]string, 0, len(a.attachments[name]))
	for k := range a.attachments[name] {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		policies = append(policies, a.attachments[name][k])
	}
	return e.cfg.Accounts.RegisterRole(account, accounts.Role{
		Name: r.name, Path: r.path, TrustPolicy: r.trust, MaxSessionDuration: r.maxSession, IdentityPolicies: policies,
	})
}

// iamCreated records an IAM resource after it is created or updated.
func (e *Engine) iamCreated(account, stackID string, r *liveResource) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.iamFor(account)
	switch r.typ {
	case "AWS::IAM::Role":
		trust, err := json.Marshal(r.props["AssumeRolePolicyDocument"])
		if err != nil || r.props["AssumeRolePolicyDocument"] == nil {
			return fmt.Errorf("Property AssumeRolePolicyDocument cannot be empty.")
		}
		role := &iamRole{name: r.physicalID, path: stringProp(r.props, "Path"), trust: trust, maxSession: time.Hour}
		if v, ok := numberProp(r.props, "MaxSessionDuration"); ok {
			role.maxSession = time.Duration(v) * time.Second
		}
		if list, ok := r.props["Policies"].([]any); ok {
			for _, p := range list {
				pm, _ := p.(map[string]any)
				doc, err := json.Marshal(pm["PolicyDocument"])
				if err != nil || pm["PolicyDocument"] == nil {
					return fmt.Errorf("Property PolicyDocument of an inline policy cannot be empty.")
				}
				role.inline = append(role.inline, doc)
			}
		}
		for _, arn := range stringList(r.props["ManagedPolicyArns"]) {
			role.managedArns = append(role.managedArns, arn)
		}
		a.roles[role.name] = role
		if err := e.registerRoleLocked(account, role.name); err != nil {
			delete(a.roles, role.name)
			return fmt.Errorf("MalformedPolicyDocument: %v", err)
		}
	case "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy":
		doc, err := json.Marshal(r.props["PolicyDocument"])
		if err != nil || r.props["PolicyDocument"] == nil {
			return fmt.Errorf("Property PolicyDocument cannot be empty.")
		}
		if _, err := accounts.ParsePolicy(doc); err != nil {
			return fmt.Errorf("MalformedPolicyDocument: %v", err)
		}
		key := stackID + "/" + r.logicalID
		if r.typ == "AWS::IAM::ManagedPolicy" {
			arn, _ := r.facts.Ref.(string)
			a.managedPolicies[arn] = doc
		}
		for roleName := range a.attachments {
			delete(a.attachments[roleName], key)
		}
		for _, roleName := range stringList(r.props["Roles"]) {
			roleName = roleNameOf(roleName)
			if a.attachments[roleName] == nil {
				a.attachments[roleName] = map[string]json.RawMessage{}
			}
			a.attachments[roleName][key] = doc
		}
		for name := range a.roles {
			if err := e.registerRoleLocked(account, name); err != nil {
				return err
			}
		}
	}
	return nil
}

// iamDeleted forgets an IAM resource.
func (e *Engine) iamDeleted(account, stackID string, r *liveResource) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.iamFor(account)
	switch r.typ {
	case "AWS::IAM::Role":
		delete(a.roles, r.physicalID)
		e.cfg.Accounts.RemoveRole(account, r.physicalID)
	case "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy":
		key := stackID + "/" + r.logicalID
		for roleName := range a.attachments {
			delete(a.attachments[roleName], key)
		}
		if arn, ok := r.facts.Ref.(string); ok && r.typ == "AWS::IAM::ManagedPolicy" {
			delete(a.managedPolicies, arn)
		}
		for name := range a.roles {
			_ = e.registerRoleLocked(account, name)
		}
	}
}

// roleNameOf accepts a role name or ARN (templates sometimes pass either).
func roleNameOf(s string) string {
	if i := strings.LastIndex(s, "/"); i >= 0 && strings.HasPrefix(s, "arn:") {
		return s[i+1:]
	}
	return s
}

func stringProp(props map[string]any, name string) string {
	s, _ := props[name].(string)
	return s
}

func numberProp(props map[string]any, name string) (int64, bool) {
	switch v := props[name].(type) {
	case json.Number:
		n, err := v.Int64()
		return n, err == nil
	case string:
		n, err := json.Number(v).Int64()
		return n, err == nil
	case float64:
		return int64(v), true
	}
	return 0, false
}

func boolProp(props map[string]any, name string) (bool, bool) {
	switch v := props[name].(type) {
	case bool:
		return v, true
	case string:
		return strings.EqualFold(v, "true"), true
	}
	return false, false
}

func stringList(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, e := range list {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// templateEnv builds the evaluation environment of a stack.
func (e *Engine) templateEnv(s *stack, params map[string]template.ParamValue, resolver template.Resolver) *template.Env {
	return &template.Env{
		AccountID:        s.account,
		Region:           s.region,
		StackName:        s.name,
		StackID:          s.id,
		NotificationARNs: s.notificationARNs,
		Params:           params,
		Resources:        resolver,
		Imports: func(name string) (string, bool) {
			e.mu.Lock()
			defer e.mu.Unlock()
			ex, ok := e.exports[regionKey{s.account, s.region}][name]
			return ex.value, ok
		},
		AZs: availabilityZones,
	}
}
