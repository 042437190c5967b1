package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/connectivity"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/customerstack"
	"github.com/byocloud/byoc/shared/runs"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/stackevent"
	"github.com/byocloud/byoc/shared/stackwait"
	"github.com/byocloud/byoc/shared/steperr"
	"github.com/byocloud/byoc/shared/store"
)

// StepInput is every workflow step's payload (infra/workflows/peering.asl.json).
type StepInput struct {
	Step         string          `json:"step"`
	DeploymentID string          `json:"deploymentId"`
	Target       string          `json:"target"`    // the peer VPC id, or "privatelink"
	Execution    string          `json:"execution"` // $$.Execution.Id
	CommandID    string          `json:"commandId,omitempty"`
	TaskToken    string          `json:"taskToken,omitempty"`
	StackID      string          `json:"stackId,omitempty"`
	Operation    string          `json:"operation,omitempty"`
	RequestToken string          `json:"requestToken,omitempty"`
	Error        *steperr.Caught `json:"error,omitempty"`
}

// Work the prepare step reports.
const (
	WorkCreate = "create"
	WorkDelete = "delete"
	WorkNone   = "none"
)

// PrepareResult says what the workflow does.
type PrepareResult struct {
	Work      string `json:"work"`
	PrivateLB bool   `json:"privateLb"` // the private load balancer must be enabled first
	CommandID string `json:"commandId"`
	// ServiceID is the service whose reports the wait for the agent's acknowledgement
	// follows: the command is deployment-wide, and any service's report settles it.
	ServiceID string `json:"serviceId"`
	// SecurityGroupID is byoc's security group the agent attaches to the private load
	// balancer (the infrastructure stack's; peering stacks add their ingress to it).
	SecurityGroupID string `json:"securityGroupId"`
}

// ConnectResult: "apply" (build the stack) or "wait" (the customer has not accepted yet).
type ConnectResult struct {
	Next string `json:"next"`
}

func (h *Handler) step(ctx context.Context, in StepInput) (any, error) {
	if in.DeploymentID == "" || in.Execution == "" || in.Target == "" {
		return nil, &InvalidInput{Problem: "deploymentId, target and execution are required"}
	}
	var out any
	var err error
	switch in.Step {
	case "prepare":
		out, err = h.prepare(ctx, in)
	case "lb":
		out, err = h.recordLoadBalancer(ctx, in)
	case "connect":
		out, err = h.connect(ctx, in)
	case "apply":
		out, err = h.apply(ctx, in, false)
	case "delete":
		out, err = h.apply(ctx, in, true)
	case "await":
		out, err = h.await(ctx, in)
	case "poll":
		out, err = h.poll(ctx, in)
	case "finish":
		out, err = h.finish(ctx, in)
	case "fail":
		out, err = h.fail(ctx, in)
	default:
		return nil, &InvalidInput{Problem: fmt.Sprintf("step %q is not one of prepare, lb, connect, apply, delete, await, poll, finish, fail", in.Step)}
	}
	if err != nil {
		err = classify(err)
		h.Log.ErrorContext(ctx, "peering step failed", "step", in.Step, "deploymentId", in.DeploymentID, "target", in.Target, "error", err.Error(), "errorType", fmt.Sprintf("%T", err))
	}
	return out, err
}

// target is a peering or the PrivateLink service, as the steps see either.
type target struct {
	d       store.Deployment
	n       connectivity.Network
	peering *connectivity.Peering // nil for PrivateLink
	link    *connectivity.PrivateLink
}

func (t target) state() connectivity.State {
	if t.peering != nil {
		return t.peering.State
	}
	return t.link.State
}

func (t target) execution() string {
	if t.peering != nil {
		return t.peering.Execution
	}
	return t.link.Execution
}

func (h *Handler) target(ctx context.Context, in StepInput) (target, error) {
	d, err := h.Store.Get(ctx, in.DeploymentID)
	if err != nil {
		return target{}, err
	}
	t := target{d: d, n: network(d)}
	if in.Target == PrivateLinkTarget {
		t.link = t.n.PrivateLink
		if t.link == nil {
			return target{}, &InvalidInput{Problem: "the deployment has no PrivateLink service"}
		}
		return t, nil
	}
	i := t.n.Find(in.Target)
	if i < 0 {
		return target{}, &InvalidInput{Problem: "the deployment has no peering with " + in.Target}
	}
	t.peering = &t.n.Peerings[i]
	return t, nil
}

// owned is the target if this execution owns its current change.
func (h *Handler) owned(ctx context.Context, in StepInput) (target, error) {
	t, err := h.target(ctx, in)
	if err != nil {
		return target{}, err
	}
	if t.execution() != in.Execution {
		return target{}, &NotOwner{DeploymentID: in.DeploymentID, Target: in.Target, Owner: t.execution(), Step: in.Step}
	}
	return t, nil
}

// update writes the target's new state (only while this execution owns it).
func (h *Handler) update(ctx context.Context, in StepInput, action, detail string, edit func(t target) error) (d store.Deployment, wrote bool, err error) {
	d, err = h.change(ctx, in.DeploymentID, store.Audit{Actor: "peering:" + runs.NameOf(in.Execution), Action: action, Detail: detail},
		func(d store.Deployment, n *connectivity.Network) (bool, error) {
			wrote = false
			t := target{d: d, n: *n}
			if in.Target == PrivateLinkTarget {
				if n.PrivateLink == nil {
					return false, &InvalidInput{Problem: "the deployment has no PrivateLink service"}
				}
				cp := *n.PrivateLink
				t.link = &cp
			} else {
				i := n.Find(in.Target)
				if i < 0 {
					return false, &InvalidInput{Problem: "the deployment has no peering with " + in.Target}
				}
				t.peering = &n.Peerings[i]
			}
			if t.execution() != in.Execution {
				return false, &NotOwner{DeploymentID: in.DeploymentID, Target: in.Target, Owner: t.execution(), Step: in.Step}
			}
			before := t.snapshot()
			if err := edit(t); err != nil {
				return false, err
			}
			if t.snapshot() == before {
				return false, nil // a retried step: already recorded, no second audit entry
			}
			wrote = true
			if t.link != nil {
				t.link.UpdatedAt = h.Store.Now().UTC()
				n.PrivateLink = t.link
			} else {
				t.peering.UpdatedAt = h.Store.Now().UTC()
			}
			return true, nil
		})
	return d, wrote, err
}

// snapshot is the target's state, to tell a change from a repeat.
func (t target) snapshot() string {
	var v any = t.link
	if t.peering != nil {
		p := *t.peering
		p.UpdatedAt = time.Time{}
		v = p
	} else if t.link != nil {
		l := *t.link
		l.UpdatedAt = time.Time{}
		v = l
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// privateLBCommand is the private-lb command of an execution: its own, so a command that
// failed or was lost for an earlier execution does not fail or stall this one (the agent
// enables the load balancer idempotently).
func privateLBCommand(execution string) string {
	sum := sha256.Sum256([]byte(execution))
	return "private-lb-" + hex.EncodeToString(sum[:])[:24]
}

func (h *Handler) prepare(ctx context.Context, in StepInput) (PrepareResult, error) {
	t, err := h.target(ctx, in)
	if err != nil {
		return PrepareResult{}, err
	}
	if t.execution() != in.Execution {
		return PrepareResult{Work: WorkNone}, nil // replaced by a later request
	}
	switch t.state() {
	case connectivity.Provisioning, connectivity.PendingAcceptance:
		sg := t.d.Outputs[contract.InfraOutputPeersSecurityGroupID]
		// A load balancer recorded with another group (or none yet) gets byoc's group now.
		out := PrepareResult{Work: WorkCreate, PrivateLB: t.n.PrivateLB == nil || t.n.PrivateLB.SecurityGroupID != sg,
			CommandID: privateLBCommand(in.Execution), SecurityGroupID: sg}
		if out.PrivateLB {
			services, err := h.Services.Services(ctx, t.d.ID)
			if err != nil {
				return PrepareResult{}, err
			}
			if len(services) == 0 {
				return PrepareResult{}, &NoAgent{Reason: "the deployment reports no service: its agent cannot run the private load balancer yet"}
			}
			out.ServiceID = services[0].ServiceID
		}
		return out, nil
	case connectivity.Deleting:
		return PrepareResult{Work: WorkDelete}, nil
	}
	return PrepareResult{Work: WorkNone}, nil
}

// recordLoadBalancer reads the agent's acknowledgement of the private-lb command: the load
// balancer it runs, which is checked like any input from a customer's cluster.
func (h *Handler) recordLoadBalancer(ctx context.Context, in StepInput) (any, error) {
	t, err := h.owned(ctx, in)
	if err != nil {
		return nil, err
	}
	if lb := t.n.PrivateLB; lb != nil && lb.SecurityGroupID == t.d.Outputs[contract.InfraOutputPeersSecurityGroupID] {
		return lb, nil
	}
	cmd, err := h.Services.Command(ctx, in.DeploymentID, in.CommandID)
	if err != nil {
		return nil, err
	}
	if cmd.Status != servicestate.CommandSucceeded {
		return nil, &InvalidInput{Problem: fmt.Sprintf("command %s is %s, not succeeded", in.CommandID, cmd.Status)}
	}
	var lb connectivity.LoadBalancer
	dec := json.NewDecoder(bytes.NewReader([]byte(cmd.Detail)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&lb); err != nil {
		return nil, &BadReport{Reason: "the agent's private load balancer report is not {dnsName, securityGroupId, arn}: " + err.Error()}
	}
	if err := connectivity.CheckLoadBalancer(lb, t.d.Settings.AccountID, t.d.Settings.Region); err != nil {
		return nil, &BadReport{Reason: err.Error()}
	}
	if want := t.d.Outputs[contract.InfraOutputPeersSecurityGroupID]; lb.SecurityGroupID != want {
		return nil, &BadReport{Reason: fmt.Sprintf("securityGroupId: the agent reports %s attached to the private load balancer, not byoc's %s", lb.SecurityGroupID, want)}
	}
	_, err = h.change(ctx, in.DeploymentID, store.Audit{Actor: "peering:" + runs.NameOf(in.Execution), Action: "private-lb.enabled", Detail: lb.DNSName},
		func(_ store.Deployment, n *connectivity.Network) (bool, error) {
			if n.PrivateLB != nil && *n.PrivateLB == lb {
				return false, nil // a concurrent peering recorded it
			}
			n.PrivateLB = &lb
			return true, nil
		})
	return lb, err
}

func peeringTag(deploymentID, peerVpcID string) string { return deploymentID + "/" + peerVpcID }

// connect, for a peering the customer accepts by hand: makes the connection outside
// CloudFormation (once: a retry finds it by its tag) and reports whether it was accepted.
func (h *Handler) connect(ctx context.Context, in StepInput) (ConnectResult, error) {
	t, err := h.owned(ctx, in)
	if err != nil {
		return ConnectResult{}, err
	}
	if t.peering == nil || !t.peering.Manual() {
		return ConnectResult{Next: "apply"}, nil
	}
	p := *t.peering
	_, ec2, err := h.Accounts.Open(ctx, t.d)
	if err != nil {
		return ConnectResult{}, err
	}
	conn, err := h.findConnection(ctx, ec2, t.d, p)
	if err != nil {
		return ConnectResult{}, err
	}
	if conn == nil {
		// CreateVpcPeeringConnection takes no idempotency token: it is sent once per step
		// (never retried inside the client); a step retried after a lost answer finds the
		// connection by its tag.
		created, err := ec2.CreatePeering(ctx, t.d.Outputs[contract.InfraOutputVpcID], p.PeerAccount, p.PeerVpcID, p.PeerRegion, map[string]string{
			contract.ManagedByTagKey: contract.ManagedByTagValue, peeringTagKey: peeringTag(t.d.ID, p.PeerVpcID), "Name": "byoc peering with " + p.PeerVpcID,
		})
		if err != nil {
			return ConnectResult{}, err
		}
		conn = &created
	}
	switch conn.Status {
	case "active":
		_, _, err = h.update(ctx, in, "peering.accepted", conn.ID, func(t target) error {
			if t.peering.State != connectivity.PendingAcceptance && t.peering.State != connectivity.Provisioning {
				return nil // a late duplicate of this step: the peering moved on
			}
			t.peering.ConnectionID, t.peering.State, t.peering.ExpiresAt = conn.ID, connectivity.Provisioning, nil
			return nil
		})
		return ConnectResult{Next: "apply"}, err
	case "pending-acceptance", "initiating-request", "provisioning":
		if p.ConnectionID != conn.ID || p.State != connectivity.PendingAcceptance {
			d, wrote, err := h.update(ctx, in, "peering.pending-acceptance", conn.ID, func(t target) error {
				if t.peering.State != connectivity.Provisioning && t.peering.State != connectivity.PendingAcceptance {
					return nil // a late duplicate of this step: the peering moved on
				}
				t.peering.ConnectionID, t.peering.State = conn.ID, connectivity.PendingAcceptance
				expires := h.Store.Now().UTC().Add(connectivity.PeeringTTL)
				if at, err := time.Parse(time.RFC3339, conn.ExpirationTime); err == nil {
					expires = at.UTC() // EC2's own expiry
				}
				t.peering.ExpiresAt = &expires
				return nil
			})
			if err != nil {
				return ConnectResult{}, err
			}
			if wrote {
				h.announce(ctx, d, p.PeerVpcID, connectivity.PendingAcceptance, "accept "+conn.ID+" in account "+p.PeerAccount)
			}
		}
		return ConnectResult{Next: "wait"}, nil
	}
	return ConnectResult{}, &NotAccepted{Reason: fmt.Sprintf("peering connection %s is %s: %s", conn.ID, conn.Status, conn.Message)}
}

const peeringTagKey = "byoc:peering"

// findConnection finds the connection this peering made: by its recorded id, or by its tag
// (a step that died between creating it and recording it). Ended connections of an earlier
// attempt are passed over unless recorded.
func (h *Handler) findConnection(ctx context.Context, ec2 *cloud.EC2, d store.Deployment, p connectivity.Peering) (*cloud.PeeringConnection, error) {
	var conns []cloud.PeeringConnection
	var err error
	if p.ConnectionID != "" {
		conns, err = ec2.DescribePeerings(ctx, []string{p.ConnectionID}, nil)
	} else {
		conns, err = ec2.DescribePeerings(ctx, nil, map[string][]string{"tag:" + peeringTagKey: {peeringTag(d.ID, p.PeerVpcID)},
			"status-code": {"pending-acceptance", "initiating-request", "provisioning", "active"}})
	}
	if err != nil || len(conns) == 0 {
		return nil, err
	}
	return &conns[0], nil
}

func requestToken(execution, op string) string {
	sum := sha256.Sum256([]byte(execution + "/" + op))
	return "byoc-peering-" + hex.EncodeToString(sum[:])[:32]
}

func stackName(d store.Deployment, target string) string {
	return connectivity.StackName(d.Settings.ResourcePrefix, d.ID, target)
}

// spec is the stack of the target.
func (h *Handler) spec(t target, target string) customerstack.Spec {
	d := t.d
	s := customerstack.Spec{Name: stackName(d, target), Tags: map[string]string{contract.ManagedByTagKey: contract.ManagedByTagValue, "byoc:deployment-id": d.ID}}
	if t.link != nil {
		lb := t.n.PrivateLB
		var principals []string
		for _, a := range t.link.AllowedAccounts {
			principals = append(principals, "arn:aws:iam::"+a+":root")
		}
		s.Template = h.Config.PrivateLinkTemplate
		s.Parameters = map[string]string{contract.PrivateLinkParamLoadBalancer: lb.Arn, contract.PrivateLinkParamPrincipals: strings.Join(principals, ",")}
		return s
	}
	p := t.peering
	s.Template = h.Config.PeeringTemplate
	s.Parameters = map[string]string{
		contract.PeeringParamVpcID: d.Outputs[contract.InfraOutputVpcID], contract.PeeringParamPeerVpcID: p.PeerVpcID,
		contract.PeeringParamPeerAccountID: p.PeerAccount, contract.PeeringParamPeerRegion: p.PeerRegion,
		contract.PeeringParamPeerRoleArn: p.AccepterRoleArn, contract.PeeringParamConnectionID: "",
		contract.PeeringParamRouteTableIDs: d.Outputs[contract.InfraOutputPrivateRouteTableIDs], contract.PeeringParamSecurityGroupID: d.Outputs[contract.InfraOutputPeersSecurityGroupID],
	}
	if p.Manual() {
		s.Parameters[contract.PeeringParamConnectionID] = p.ConnectionID
	}
	for i, name := range contract.PeeringParamPeerCidrs {
		s.Parameters[name] = ""
		if i < len(p.PeerCIDRs) {
			s.Parameters[name] = p.PeerCIDRs[i]
		}
	}
	return s
}

// apply creates (or updates) the target's stack, or deletes it.
func (h *Handler) apply(ctx context.Context, in StepInput, remove bool) (customerstack.Result, error) {
	t, err := h.owned(ctx, in)
	if err != nil {
		return customerstack.Result{}, err
	}
	stacks, _, err := h.Accounts.Open(ctx, t.d)
	if err != nil {
		return customerstack.Result{}, err
	}
	tokens := func(op stackevent.Operation) string { return requestToken(in.Execution, string(op)) }
	if remove {
		stack, err := stacks.Describe(ctx, stackName(t.d, in.Target))
		if err != nil {
			return customerstack.Result{}, err
		}
		if stack == nil || stack.StackStatus == cfntypes.StackStatusDeleteComplete {
			return customerstack.Result{Action: customerstack.ActionNone, Operation: string(stackevent.Delete)}, nil
		}
		if stack.StackStatus == cfntypes.StackStatusDeleteInProgress {
			return customerstack.Result{Action: customerstack.ActionWait, Operation: string(stackevent.Delete), StackID: *stack.StackId, Status: string(stack.StackStatus)}, nil
		}
		return stacks.Delete(ctx, stack, tokens(stackevent.Delete))
	}
	if t.n.PrivateLB == nil {
		return customerstack.Result{}, &InvalidInput{Problem: "the private load balancer is not recorded"}
	}
	// A stack that never came up is deleted first (ActionDelete): the workflow waits for
	// that and applies again.
	return stacks.Apply(ctx, h.spec(t, in.Target), tokens)
}

func (h *Handler) await(ctx context.Context, in StepInput) (stackwait.Result, error) {
	if in.TaskToken == "" {
		return stackwait.Result{}, &InvalidInput{Problem: "await needs taskToken"}
	}
	t, err := h.owned(ctx, in)
	if err != nil {
		return stackwait.Result{}, err
	}
	stacks, _, err := h.Accounts.Open(ctx, t.d)
	if err != nil {
		return stackwait.Result{}, err
	}
	return stackwait.Await(ctx, h.Store, h.Tasks, stacks, store.Waiter{
		AccountID: t.d.Settings.AccountID, Region: t.d.Settings.Region, StackName: stackName(t.d, in.Target), DeploymentID: t.d.ID,
		TaskToken: in.TaskToken, StackID: in.StackID, Operation: in.Operation, RequestToken: in.RequestToken,
	})
}

func (h *Handler) poll(ctx context.Context, in StepInput) (stackevent.Result, error) {
	t, err := h.owned(ctx, in)
	if err != nil {
		return stackevent.Result{}, err
	}
	stacks, _, err := h.Accounts.Open(ctx, t.d)
	if err != nil {
		return stackevent.Result{}, err
	}
	r, err := stacks.Look(ctx, in.StackID)
	if err != nil {
		return stackevent.Result{}, err
	}
	if r.Outcome == stackevent.OutcomeFailed {
		return stackevent.Result{}, &StackFailed{Result: r}
	}
	return r, nil
}

// finish records the outcome: active (with what the stack made) or deleted.
func (h *Handler) finish(ctx context.Context, in StepInput) (any, error) {
	t, err := h.owned(ctx, in)
	if err != nil {
		return nil, err
	}
	stacks, ec2, err := h.Accounts.Open(ctx, t.d)
	if err != nil {
		return nil, err
	}
	switch t.state() {
	case connectivity.Active, connectivity.Deleted, connectivity.Failed:
		return nil, nil // a retried step: its outcome is recorded
	case connectivity.Deleting:
		if t.peering != nil && t.peering.Manual() && t.peering.ConnectionID != "" {
			// Made outside CloudFormation: deleted outside it, once the routes are gone.
			if err := ec2.DeletePeering(ctx, t.peering.ConnectionID); err != nil && !ended(err) {
				return nil, err
			}
		}
		d, wrote, err := h.update(ctx, in, "peering.deleted", in.Target, func(t target) error {
			if t.link != nil {
				t.link.State, t.link.Reason, t.link.Endpoints = connectivity.Deleted, "", nil
			} else {
				t.peering.State, t.peering.Reason = connectivity.Deleted, ""
			}
			return nil
		})
		if err == nil && wrote {
			h.announce(ctx, d, in.Target, connectivity.Deleted, "")
		}
		return nil, err
	}
	stack, err := stacks.Describe(ctx, stackName(t.d, in.Target))
	if err != nil {
		return nil, err
	}
	if stack == nil || !slices.Contains(customerstack.Settled, stack.StackStatus) {
		return nil, &InvalidInput{Problem: fmt.Sprintf("stack %s is not settled", stackName(t.d, in.Target))}
	}
	out := customerstack.Outputs(stack)
	d, wrote, err := h.update(ctx, in, "peering.active", in.Target, func(t target) error {
		if !t.state().Working() || t.state() == connectivity.Deleting {
			return nil // recorded already, or being deleted meanwhile
		}
		if t.link != nil {
			t.link.State, t.link.Reason = connectivity.Active, ""
			t.link.ServiceID, t.link.ServiceName = out[contract.PrivateLinkOutputServiceID], out[contract.PrivateLinkOutputServiceName]
			return nil
		}
		t.peering.State, t.peering.Reason, t.peering.ExpiresAt = connectivity.Active, "", nil
		t.peering.ConnectionID = out[contract.PeeringOutputConnectionID]
		return nil
	})
	if err == nil && wrote {
		h.announce(ctx, d, in.Target, connectivity.Active, "")
	}
	return nil, err
}

// ended reports an EC2 answer that says the connection is already gone.
func ended(err error) bool {
	switch cloud.ErrorCode(err) {
	case "InvalidVpcPeeringConnectionID.NotFound", "InvalidStateTransition":
		return true
	}
	return false
}

// fail records the target failed with the reason the workflow caught. A step of an
// execution that no longer owns the target records nothing.
func (h *Handler) fail(ctx context.Context, in StepInput) (any, error) {
	reason := "the workflow failed"
	if in.Error != nil {
		reason = in.Error.Error + ": " + causeOf(in.Error.Cause)
	}
	d, wrote, err := h.update(ctx, in, "peering.failed", reason, func(t target) error {
		switch t.state() {
		case connectivity.Active, connectivity.Deleted, connectivity.Failed:
			return nil // an outcome is recorded already: a retried step keeps it
		case connectivity.Deleting:
			// A deletion that failed keeps the path deleting (its routes and CIDRs may still
			// be in place) with the reason; deleting it again retries.
			if t.link != nil {
				t.link.Reason = reason
			} else {
				t.peering.Reason = reason
			}
			return nil
		}
		if t.link != nil {
			t.link.State, t.link.Reason = connectivity.Failed, reason
		} else {
			t.peering.State, t.peering.Reason = connectivity.Failed, reason
		}
		return nil
	})
	var notOwner *NotOwner
	if errors.As(err, &notOwner) {
		return nil, nil
	}
	if err == nil && wrote {
		h.announce(ctx, d, in.Target, connectivity.Failed, reason)
	}
	return nil, err
}

// causeOf is the message of a Lambda error's cause ({"errorMessage": ...}), or the cause.
func causeOf(cause string) string {
	var e struct {
		ErrorMessage string `json:"errorMessage"`
	}
	if json.Unmarshal([]byte(cause), &e) == nil && e.ErrorMessage != "" {
		return e.ErrorMessage
	}
	return cause
}
