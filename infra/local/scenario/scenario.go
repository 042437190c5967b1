package scenario

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/byocloud/byoc/infra/local/datasim"
	"github.com/byocloud/byoc/infra/local/localcloud"
	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/store"
)

// Names of the scenarios.
const (
	Onboard         = "onboard"           // invite, bootstrap, provision: the deployment is ready
	InfraFails      = "infra-fails"       // every attempt of the infrastructure stack fails: deployment failed, reason recorded
	RollbackRetry   = "rollback-retry"    // the first attempt rolls back: the stack is deleted and recreated, then ready
	WrongExternalID = "wrong-external-id" // the customer applies the bootstrap with another ExternalId: provision cannot assume the role
	DuplicateEvent  = "duplicate-event"   // the bootstrap's completion is delivered twice: one workflow
	MalformedEvent  = "malformed-event"   // a malformed stack event reaches the bus: rejected, nothing changed
)

// Names lists every scenario, in the order --help shows them.
var Names = []string{Onboard, InfraFails, RollbackRetry, WrongExternalID, DuplicateEvent, MalformedEvent, Upgrade, SecurityFix, UpgradeHalts, Peering, PeeringManual, Teardown}

// Options say which scenario to run and how.
type Options struct {
	Scenario     string
	Customer     string // the customer's account id; a random one when empty
	FailResource string // infra-fails, rollback-retry: the resource of the infrastructure stack that fails
	FailReason   string
	Timeout      time.Duration // how long the scenario may take; default 2 minutes
	// DataPlane: once the deployment is ready (the scenarios in ReadyScenarios), run its
	// simulated data plane until the control plane reports it healthy, then as Fault says.
	DataPlane bool
	Fault     datasim.Fault // with DataPlane: the fault the data plane suffers, if any
	// PhaseTimeout bounds each wait of the data plane's follow-up for the control plane's
	// answer; default PhaseTimeout. Chaos runs give it longer: an alert a crash left
	// unpublished is announced by the next sweep, a minute or two later.
	PhaseTimeout time.Duration
}

// ReadyScenarios are the scenarios whose deployment ends ready, which a data plane can follow.
var ReadyScenarios = []string{Onboard, RollbackRetry, DuplicateEvent}

// DefaultFailResource and DefaultFailReason are what the failure scenarios inject when not told.
const (
	DefaultFailResource = "Cluster"
	DefaultFailReason   = `Resource handler returned message: "Cannot create cluster because us-east-1e, the targeted availability zone, does not currently have sufficient capacity to support the cluster." (Service: Eks, Status Code: 400)`
)

// Result is what a scenario ends with.
type Result struct {
	Scenario   string
	Customer   string
	Deployment store.Deployment
	// Executions are the provision workflow executions the deployment got.
	Executions int
	// CustomerStacks are the stacks in the customer's account and their statuses.
	CustomerStacks map[string]string
	Elapsed        time.Duration
	Counters       localcloud.Counters
	// Health is the data-plane follow-up (Options.DataPlane), when it ran.
	Health *HealthResult
	// Maintenance is what a maintenance scenario saw.
	Maintenance *MaintenanceResult
	// Connectivity is what a connectivity scenario saw.
	Connectivity *ConnectivityResult
	// Teardown is what the teardown scenario saw.
	Teardown *TeardownResult
}

// Failure is a scenario whose outcome is not the one it expects.
type Failure struct {
	Scenario string
	Reason   string
}

func (f *Failure) Error() string { return fmt.Sprintf("scenario %s failed: %s", f.Scenario, f.Reason) }

// Runner runs scenarios on one cloud and one deployed control plane. Its Observe method
// must be the cloud's observer (it waits on the timeline).
type Runner struct {
	Cloud        *localcloud.Cloud
	ControlPlane ControlPlane
	// Progress, when set, is told what the runner itself does (the data plane's steps), as
	// timeline events of kind localcloud.KindDataPlane.
	Progress func(localcloud.Event)
	// Ingest, when set, reads the functions' output: the data-plane follow-up reports
	// stateingest's counters from it.
	Ingest *IngestLog
	// KeepDataPlane leaves a followed deployment's simulated data plane in its simulator
	// after the follow-up (byoc-local --serve keeps it reporting and taking commands).
	KeepDataPlane bool
	// DisarmAfterRun takes each scenario's deployment off maintenance when the scenario ends
	// (the maintenance scenarios excepted: they retire their own). Tests sharing one cloud set
	// it: a later test's clock jumps must not wake an earlier test's deployment at its window.
	DisarmAfterRun bool

	mu      sync.Mutex
	waiters []*waiter
}

type waiter struct {
	match func(localcloud.Event) bool
	ch    chan localcloud.Event
	keep  bool // a watch: every match, until stopped
}

// Observe receives the cloud's timeline.
func (r *Runner) Observe(e localcloud.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	keep := r.waiters[:0]
	for _, w := range r.waiters {
		if !w.match(e) {
			keep = append(keep, w)
			continue
		}
		if !w.keep {
			w.ch <- e
			continue
		}
		select {
		case w.ch <- e:
		default: // a watcher that stopped reading loses events, never blocks the cloud
		}
		keep = append(keep, w)
	}
	r.waiters = keep
}

// watch registers interest in every matching event until stop is called.
func (r *Runner) watch(match func(localcloud.Event) bool) (events <-chan localcloud.Event, stop func()) {
	w := &waiter{match: match, ch: make(chan localcloud.Event, 4096), keep: true}
	r.mu.Lock()
	r.waiters = append(r.waiters, w)
	r.mu.Unlock()
	return w.ch, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.waiters = slices.DeleteFunc(r.waiters, func(x *waiter) bool { return x == w })
	}
}

// expect registers interest in an event before the action that causes it.
func (r *Runner) expect(match func(localcloud.Event) bool) <-chan localcloud.Event {
	w := &waiter{match: match, ch: make(chan localcloud.Event, 1)}
	r.mu.Lock()
	r.waiters = append(r.waiters, w)
	r.mu.Unlock()
	return w.ch
}

func await(ctx context.Context, ch <-chan localcloud.Event, what string) (localcloud.Event, error) {
	select {
	case e := <-ch:
		return e, nil
	case <-ctx.Done():
		return localcloud.Event{}, fmt.Errorf("timed out waiting for %s", what)
	}
}

// RandomAccount returns a 12-digit account id for a customer.
func RandomAccount() string {
	n, _ := rand.Int(rand.Reader, big.NewInt(899_999_999_999))
	return fmt.Sprintf("%012d", n.Int64()+100_000_000_000)
}

// Run runs one scenario and checks its expected outcome.
func (r *Runner) Run(ctx context.Context, o Options) (Result, error) {
	if !slices.Contains(Names, o.Scenario) {
		return Result{}, fmt.Errorf("scenario %q: must be one of %s", o.Scenario, strings.Join(Names, ", "))
	}
	if o.Customer == "" {
		o.Customer = RandomAccount()
	}
	if o.FailResource == "" {
		o.FailResource = DefaultFailResource
	}
	if o.FailReason == "" {
		o.FailReason = DefaultFailReason
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.PhaseTimeout <= 0 {
		o.PhaseTimeout = PhaseTimeout
	}
	if err := o.checkDataPlane(); err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	began, before := time.Now(), r.Cloud.Counters()
	res, err := r.run(ctx, o)
	if r.DisarmAfterRun && res.Deployment.ID != "" && !slices.Contains(MaintenanceScenarios, o.Scenario) {
		if derr := r.disarm(context.WithoutCancel(ctx), res.Deployment.ID); derr != nil && err == nil {
			err = derr
		}
	}
	res.Scenario, res.Customer, res.Elapsed = o.Scenario, o.Customer, time.Since(began)
	after := r.Cloud.Counters()
	res.Counters = localcloud.Counters{
		AWSCalls:          after.AWSCalls - before.AWSCalls,
		LambdaInvocations: after.LambdaInvocations - before.LambdaInvocations,
		StateTransitions:  after.StateTransitions - before.StateTransitions,
	}
	if err != nil {
		var f *Failure
		if !errors.As(err, &f) {
			err = &Failure{Scenario: o.Scenario, Reason: err.Error()}
		}
	}
	return res, err
}

func (r *Runner) run(ctx context.Context, o Options) (Result, error) {
	if o.Scenario == MalformedEvent {
		return r.malformed(ctx, o)
	}
	invitation, err := r.Invite(ctx, o.Customer)
	if err != nil {
		return Result{}, err
	}
	id := invitation.DeploymentID
	switch o.Scenario {
	case InfraFails:
		// Every attempt fails: one injection per attempt the workflow may make.
		for range maxAttempts {
			r.Cloud.Stacks.InjectFailure(o.Customer, invitation.InfraStack(), o.FailResource, o.FailReason)
		}
	case RollbackRetry:
		r.Cloud.Stacks.InjectFailure(o.Customer, invitation.InfraStack(), o.FailResource, o.FailReason)
	}
	params := invitation.Parameters
	if o.Scenario == WrongExternalID {
		params = maps.Clone(params)
		params[contract.BootstrapParamExternalID] = "not-the-external-id-" + id
	}
	ended := r.expect(func(e localcloud.Event) bool {
		return e.Kind == localcloud.KindExecution && strings.Contains(e.Detail, id) && e.Status != "RUNNING"
	})
	if o.Scenario == DuplicateEvent {
		delivered := r.expect(func(e localcloud.Event) bool {
			return e.Kind == localcloud.KindEvent && e.Account == o.Customer && strings.Contains(e.Status, contract.BootstrapStackName+" CREATE_COMPLETE") && strings.Contains(e.Detail, contract.FunctionOnboard)
		})
		go func() {
			if e, err := await(ctx, delivered, "the bootstrap's completion"); err == nil {
				_ = r.Cloud.Bus.Redeliver(ctx, e.EventID) // at-least-once: the same event again
			}
		}()
	}
	if err := r.ApplyBootstrap(ctx, o.Customer, invitation, params, nil); err != nil {
		return Result{}, err
	}
	if _, err := await(ctx, ended, "the provision workflow of deployment "+id+" to end"); err != nil {
		return r.result(ctx, o, id), err
	}
	res := r.result(ctx, o, id)
	if err := check(o, res); err != nil {
		return res, err
	}
	if slices.Contains(MaintenanceScenarios, o.Scenario) {
		return r.maintenance(ctx, o, res)
	}
	if slices.Contains(ConnectivityScenarios, o.Scenario) {
		return r.connectivity(ctx, o, res)
	}
	if o.Scenario == Teardown {
		if err := r.disarm(ctx, id); err != nil {
			return res, err
		}
		return r.teardown(ctx, o, res)
	}
	if !o.DataPlane {
		return res, nil
	}
	res.Health, err = r.follow(ctx, o, res.Deployment)
	return res, err
}

// checkDataPlane refuses a data-plane option the scenario cannot honour.
func (o Options) checkDataPlane() error {
	if o.Fault != "" {
		if _, err := datasim.ParseFault(string(o.Fault)); err != nil {
			return err
		}
		if !o.DataPlane {
			return fmt.Errorf("fault %s: there is no data plane to inject it into (DataPlane is off)", o.Fault)
		}
	}
	if o.DataPlane && !slices.Contains(ReadyScenarios, o.Scenario) {
		return fmt.Errorf("scenario %s: its deployment does not become ready, so no data plane can follow it (only %s)", o.Scenario, strings.Join(ReadyScenarios, ", "))
	}
	return nil
}

// maxAttempts is the control plane's MAX_PROVISION_ATTEMPTS (the template's value).
const maxAttempts = 3

// Invitation is the invite function's answer: what the customer needs.
type Invitation struct {
	DeploymentID string            `json:"deploymentId"`
	ExternalID   string            `json:"externalId"`
	StackName    string            `json:"stackName"`
	TemplateURL  string            `json:"templateUrl"`
	Parameters   map[string]string `json:"parameters"`
	Settings     struct {
		ResourcePrefix string `json:"resourcePrefix"`
	} `json:"settings"`
}

// InfraStack is the name of the deployment's infrastructure stack.
func (i Invitation) InfraStack() string {
	return i.Settings.ResourcePrefix + "-" + i.DeploymentID + "-infra"
}

// Invite calls the invite function for a customer account, as an operator would.
func (r *Runner) Invite(ctx context.Context, customer string) (Invitation, error) {
	payload, _ := json.Marshal(map[string]any{"customerId": "acme-" + customer, "accountId": customer, "region": r.Cloud.Region, "actor": "byoc-local"})
	var out []byte
	var err error
	// An operator whose invitation crashed or timed out asks again; the same invitation
	// again answers the stored one.
	for range inviteAttempts {
		if out, err = Invoke(ctx, r.Cloud, r.ControlPlane, contract.FunctionInvite, payload); !sandboxFailure(out, err) {
			break
		}
	}
	if err != nil {
		return Invitation{}, err
	}
	var inv Invitation
	if err := json.Unmarshal(out, &inv); err != nil || inv.DeploymentID == "" {
		return Invitation{}, fmt.Errorf("invite answered %s", out)
	}
	return inv, nil
}

// inviteAttempts bounds how often the operator asks again after invite's sandbox failed.
const inviteAttempts = 4

// sandboxFailure reports whether an invocation failed because its process died or timed
// out (Lambda's Runtime.ExitError, Sandbox.Timedout), not because the function refused.
func sandboxFailure(out []byte, err error) bool {
	if err == nil {
		return false
	}
	var doc struct {
		ErrorType string `json:"errorType"`
	}
	_ = json.Unmarshal(out, &doc)
	return doc.ErrorType == "Runtime.ExitError" || doc.ErrorType == "Sandbox.Timedout"
}

// Invoke calls a control-plane function synchronously through the front door and returns
// its response; a function error is an error carrying the function's error document.
func Invoke(ctx context.Context, c *localcloud.Cloud, cp ControlPlane, byocName string, payload []byte) ([]byte, error) {
	name, err := cp.FunctionName(byocName)
	if err != nil {
		return nil, err
	}
	// One attempt: a retried invocation whose first answer was lost would run the function
	// twice (invite would then find its own deployment).
	out, err := lambda.NewFromConfig(c.Config()).Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(name), Payload: payload},
		func(o *lambda.Options) { o.RetryMaxAttempts = 1 })
	if err != nil {
		return nil, fmt.Errorf("invoke %s: %w", byocName, err)
	}
	if out.FunctionError != nil {
		return out.Payload, fmt.Errorf("%s failed (%s): %s", byocName, aws.ToString(out.FunctionError), out.Payload)
	}
	return out.Payload, nil
}

// ApplyBootstrap creates the bootstrap stack as the customer does from the quick-create
// link: the template at the invite's URL, its parameters, IAM acknowledged. A non-nil body
// replaces the published template (a customer who edited it).
func (r *Runner) ApplyBootstrap(ctx context.Context, customer string, inv Invitation, params map[string]string, body []byte) error {
	var ps []cfntypes.Parameter
	for k, v := range params {
		ps = append(ps, cfntypes.Parameter{ParameterKey: aws.String(k), ParameterValue: aws.String(v)})
	}
	in := &cloudformation.CreateStackInput{
		StackName: aws.String(inv.StackName), TemplateURL: aws.String(inv.TemplateURL), Parameters: ps,
		Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityNamedIam},
		// The token makes a retried CreateStack the same operation, not a second one.
		ClientRequestToken: aws.String("byoc-local-bootstrap-" + inv.DeploymentID),
	}
	if body != nil {
		in.TemplateURL, in.TemplateBody = nil, aws.String(string(body))
	}
	_, err := cloudformation.NewFromConfig(r.Cloud.ConfigAs(customer)).CreateStack(ctx, in)
	if err != nil {
		return fmt.Errorf("the customer's CreateStack of %s: %w", inv.StackName, err)
	}
	return nil
}

// Result reads the state of a customer's onboarding: the deployment (when id is set), its
// executions, the customer's stacks.
func (r *Runner) Result(ctx context.Context, customer, id string) Result {
	return r.result(ctx, Options{Customer: customer}, id)
}

// result reads what the scenario left: the deployment, its executions, the customer's stacks.
func (r *Runner) result(ctx context.Context, o Options, id string) Result {
	res := Result{CustomerStacks: map[string]string{}}
	if id != "" {
		st := store.New(cloud.NewDynamoDB(r.Cloud.WatchConfig()), r.ControlPlane.Outputs[outTable])
		if d, err := st.Get(ctx, id); err == nil {
			res.Deployment = d
		}
		if execs, err := r.Cloud.States.Engine.ListExecutions(r.ControlPlane.Outputs[outProvisionMachine], ""); err == nil {
			for _, x := range execs {
				if strings.Contains(x.Name, id) {
					res.Executions++
				}
			}
		}
	}
	out, err := cloudformation.NewFromConfig(r.Cloud.WatchConfigAs(o.Customer)).DescribeStacks(ctx, &cloudformation.DescribeStacksInput{})
	if err == nil {
		for _, s := range out.Stacks {
			res.CustomerStacks[aws.ToString(s.StackName)] = string(s.StackStatus)
		}
	}
	return res
}

// check compares a scenario's outcome with what it expects.
func check(o Options, res Result) error {
	d := res.Deployment
	fail := func(format string, args ...any) error {
		return &Failure{Scenario: o.Scenario, Reason: fmt.Sprintf(format, args...)}
	}
	reason := ""
	if d.Failure != nil {
		reason = d.Failure.Reason
	}
	switch o.Scenario {
	case Onboard, RollbackRetry, DuplicateEvent, Upgrade, SecurityFix, UpgradeHalts, Teardown:
		if d.Status != lifecycle.Ready {
			return fail("deployment %s is %q, want ready (failure: %s)", d.ID, d.Status, reason)
		}
		if res.Executions != 1 {
			return fail("deployment %s got %d provision executions, want 1", d.ID, res.Executions)
		}
		if o.Scenario == RollbackRetry && d.ProvisionAttempts < 2 {
			return fail("deployment %s is ready after %d attempt(s); the rolled-back stack should have been recreated", d.ID, d.ProvisionAttempts)
		}
	case InfraFails:
		// The record names the resource as "<logical id> (<type>)".
		if d.Status != lifecycle.Failed || !strings.Contains(reason, o.FailReason) || !strings.HasPrefix(d.Failure.Resource, o.FailResource+" ") {
			return fail("deployment %s is %q with failure %+v; want failed with %s's reason recorded", d.ID, d.Status, d.Failure, o.FailResource)
		}
	case WrongExternalID:
		if d.Status != lifecycle.Failed || !strings.Contains(reason, "AccessDenied") {
			return fail("deployment %s is %q with failure %+v; want failed with AccessDenied from sts:AssumeRole", d.ID, d.Status, d.Failure)
		}
		for name := range res.CustomerStacks {
			if name != contract.BootstrapStackName {
				return fail("stack %s exists in the customer account; with a wrong ExternalId nothing may be created", name)
			}
		}
	}
	return nil
}
