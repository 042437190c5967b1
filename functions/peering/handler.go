package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/connectivity"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/customerstack"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/runs"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/statemsg"
	"github.com/byocloud/byoc/shared/store"
)

// Config is what the control-plane stack tells the function through its environment, and
// the templates its bundle carries.
type Config struct {
	Table, BusName, MachineArn, BootstrapTemplateURL string
	Regions                                          []string
	PeeringTemplate, PrivateLinkTemplate             string
}

// ConfigFromEnv reads the configuration and the templates, refusing what is missing at cold
// start.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	v, err := cloud.Require(getenv, contract.EnvTableName, contract.EnvEventBusName, contract.EnvPeeringMachineArn, contract.EnvBootstrapTemplateURL)
	if err != nil {
		return Config{}, err
	}
	c := Config{Table: v[contract.EnvTableName], BusName: v[contract.EnvEventBusName], MachineArn: v[contract.EnvPeeringMachineArn],
		BootstrapTemplateURL: v[contract.EnvBootstrapTemplateURL],
		Regions:              settings.RulesFromEnv(getenv(contract.EnvSupportedRegions)).Regions()}
	task := getenv("LAMBDA_TASK_ROOT")
	for file, into := range map[string]*string{contract.PeeringTemplateFile: &c.PeeringTemplate, contract.PrivateLinkTemplateFile: &c.PrivateLinkTemplate} {
		body, err := os.ReadFile(filepath.Join(task, file))
		if err != nil {
			return Config{}, fmt.Errorf("read the %s template from the function's bundle: %w", file, err)
		}
		*into = string(body)
	}
	return c, nil
}

// New wires a handler to AWS.
func New(awsCfg aws.Config, c Config, log *slog.Logger) *Handler {
	db := cloud.NewDynamoDB(awsCfg)
	repo := servicestate.New(db, c.Table)
	return &Handler{
		Config: c, Store: store.New(db, c.Table), Services: repo,
		Accounts:  Accounts{STS: sts.NewFromConfig(awsCfg), Base: awsCfg},
		Workflows: sfn.NewFromConfig(awsCfg), Tasks: sfn.NewFromConfig(awsCfg), Bus: eventbridge.NewFromConfig(awsCfg),
		Commands: &channel.Sender{SQS: sqs.NewFromConfig(awsCfg), Recorder: repo},
		Log:      log,
	}
}

// Accounts opens a deployment's account as its management role: the stack manager and EC2.
type Accounts struct {
	STS  cloud.STS
	Base aws.Config
}

// Open assumes the management role once for a step.
func (a Accounts) Open(ctx context.Context, d store.Deployment) (*customerstack.Manager, *cloud.EC2, error) {
	cfg, err := cloud.AssumeRole(ctx, a.STS, a.Base, d.CustomerRole())
	if err != nil {
		return nil, nil, err
	}
	return &customerstack.Manager{CFN: cloudformation.NewFromConfig(cfg)}, cloud.NewEC2(cfg), nil
}

// Handler serves the operator's actions, BYOC Peering Requested events and the workflow's
// steps. Every change to a deployment's network is one conditional write of its record with
// its audit entry.
type Handler struct {
	Config   Config
	Store    *store.Store
	Services *servicestate.Repo
	Accounts interface {
		Open(context.Context, store.Deployment) (*customerstack.Manager, *cloud.EC2, error)
	}
	Workflows interface {
		StartExecution(context.Context, *sfn.StartExecutionInput, ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error)
		DescribeExecution(context.Context, *sfn.DescribeExecutionInput, ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error)
	}
	Tasks    cloud.TaskCompleter
	Bus      servicestate.EventBus
	Commands interface {
		Send(context.Context, channel.Command) (servicestate.CommandRecord, error)
	}
	Log *slog.Logger
}

// Action is an operator's request (a direct invocation).
type Action struct {
	Action       string `json:"action"`
	DeploymentID string `json:"deploymentId"`
	Actor        string `json:"actor,omitempty"`
	// request
	connectivity.PeeringRequest
	// delete: target is a peer VPC id or "privatelink"; force deletes the last private path
	// while the public load balancer is removed.
	Target string `json:"target,omitempty"`
	Force  bool   `json:"force,omitempty"`
	// privatelink
	AllowedAccounts []string `json:"allowedAccounts,omitempty"`
	// register-endpoint
	EndpointID string `json:"endpointId,omitempty"`
	// public-lb
	Enabled  *bool `json:"enabled,omitempty"`
	Verified bool  `json:"verified,omitempty"`
	// access-list
	ServiceID string `json:"serviceId,omitempty"`
	connectivity.AccessListChange
}

// Actions.
const (
	ActionRequest     = "request"
	ActionDelete      = "delete"
	ActionShow        = "show"
	ActionPrivateLink = "privatelink"
	ActionRegister    = "register-endpoint"
	ActionPublicLB    = "public-lb"
	ActionAccessList  = "access-list"
)

// PrivateLinkTarget is the workflow target of the PrivateLink endpoint service.
const PrivateLinkTarget = connectivity.PrivateLinkTarget

// Handle tells an event, a workflow step and an action apart.
func (h *Handler) Handle(ctx context.Context, payload json.RawMessage) (any, error) {
	var probe struct {
		DetailType string          `json:"detail-type"`
		Account    string          `json:"account"`
		Detail     json.RawMessage `json:"detail"`
		Step       string          `json:"step"`
	}
	if err := json.Unmarshal(payload, &probe); err != nil {
		return nil, &InvalidRequest{Reason: "payload: must be a JSON object: " + err.Error()}
	}
	switch {
	case probe.DetailType == contract.DetailTypePeeringRequested:
		// The bus policy and the rule admit only the vendor's own account; checked again here.
		if vendor := strings.Split(h.Config.MachineArn, ":"); len(vendor) < 5 || probe.Account != vendor[4] {
			h.Log.WarnContext(ctx, "BYOC Peering Requested from another account refused", "account", probe.Account)
			return nil, &Refused{Reason: "account: BYOC Peering Requested is taken only from the vendor's own account, not " + probe.Account}
		}
		var a Action
		c := settings.Collector{Of: "BYOC Peering Requested"}
		if err := c.DecodeStrict(probe.Detail, &a.PeeringRequest); err != nil {
			return nil, &InvalidRequest{Reason: err.Error()}
		}
		a.Action, a.DeploymentID, a.Actor = ActionRequest, a.PeeringRequest.DeploymentID, "event:"+probe.Account
		out, err := h.act(ctx, a)
		if refusal(err) {
			// Asking again would be refused again: the requester is told on the bus, and the
			// event is not retried into the dead-letter queue.
			h.announce(ctx, store.Deployment{ID: a.DeploymentID}, a.PeerVpcID, "refused", err.Error())
			return map[string]string{"refused": err.Error()}, nil
		}
		return out, err
	case probe.Step != "":
		var in StepInput
		c := settings.Collector{Of: "peering step"}
		if err := c.DecodeStrict(payload, &in); err != nil {
			return nil, &InvalidInput{Problem: err.Error()}
		}
		return h.step(ctx, in)
	}
	var a Action
	c := settings.Collector{Of: "peering action"}
	if err := c.DecodeStrict(payload, &a); err != nil {
		return nil, &InvalidRequest{Reason: err.Error()}
	}
	if a.PeeringRequest.DeploymentID == "" {
		a.PeeringRequest.DeploymentID = a.DeploymentID
	}
	return h.act(ctx, a)
}

func (h *Handler) act(ctx context.Context, a Action) (any, error) {
	if !settings.ValidDeploymentID(a.DeploymentID) {
		return nil, &InvalidRequest{Reason: "deploymentId: must be " + settings.DeploymentIDRule}
	}
	if a.Actor == "" {
		a.Actor = "operator"
	}
	var out any
	var err error
	switch a.Action {
	case ActionRequest:
		out, err = h.request(ctx, a)
	case ActionDelete:
		out, err = h.delete(ctx, a)
	case ActionShow:
		out, err = h.show(ctx, a.DeploymentID)
	case ActionPrivateLink:
		out, err = h.privateLink(ctx, a)
	case ActionRegister:
		out, err = h.register(ctx, a)
	case ActionPublicLB:
		out, err = h.publicLB(ctx, a)
	case ActionAccessList:
		out, err = h.accessList(ctx, a)
	default:
		return nil, &InvalidRequest{Reason: fmt.Sprintf("action: %q is not one of request, delete, show, privatelink, register-endpoint, public-lb, access-list", a.Action)}
	}
	if err != nil {
		err = classify(err)
		h.Log.ErrorContext(ctx, "peering action refused or failed", "action", a.Action, "deploymentId", a.DeploymentID, "error", err.Error(), "errorType", fmt.Sprintf("%T", err))
	}
	return out, err
}

// refusal reports whether err is a refusal of the request itself (not a failure to serve it).
func refusal(err error) bool {
	return errors.As(err, new(*InvalidRequest)) || errors.As(err, new(*Refused)) || errors.As(err, new(*NotFound))
}

// operational is a deployment whose network may change: ready, or being upgraded.
func (h *Handler) operational(ctx context.Context, id string) (store.Deployment, error) {
	d, err := h.Store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Deployment{}, &NotFound{Reason: "deploymentId: no deployment " + id}
	}
	if err != nil {
		return store.Deployment{}, err
	}
	if err := stillOperational(d); err != nil {
		return store.Deployment{}, err
	}
	return d, nil
}

// stillOperational is operational's rule for a deployment read again inside a write: a
// write that lost a race is applied again to what won, which may be a teardown.
func stillOperational(d store.Deployment) error {
	if d.Status != lifecycle.Ready && d.Status != lifecycle.Updating {
		return &Refused{Reason: fmt.Sprintf("deploymentId: deployment %s is %s; its network can change only once it is ready", d.ID, d.Status)}
	}
	return nil
}

func network(d store.Deployment) connectivity.Network {
	if d.Network == nil {
		return connectivity.Network{}
	}
	n := *d.Network
	n.Peerings = slices.Clone(n.Peerings)
	return n
}

// change writes the deployment's network (one conditional write with its audit entry),
// reading it again and re-applying edit when another write came first. edit returns false
// when there is nothing to write.
func (h *Handler) change(ctx context.Context, id string, audit store.Audit, edit func(d store.Deployment, n *connectivity.Network) (bool, error)) (store.Deployment, error) {
	for attempt := 0; ; attempt++ {
		d, err := h.Store.Get(ctx, id)
		if err != nil {
			return store.Deployment{}, err
		}
		n := network(d)
		write, err := edit(d, &n)
		if err != nil || !write {
			return d, err
		}
		next := d
		next.Network = &n
		stored, err := h.Store.Update(ctx, d, next, audit)
		if errors.Is(err, store.ErrConflict) && attempt < 5 {
			continue
		}
		return stored, err
	}
}

// executionName is the workflow execution of one change of a target: its request time, so
// a repeated request finds the execution it started and a later one starts anew.
func executionName(deploymentID, target string, at time.Time) string {
	return fmt.Sprintf("peering-%s-%s-%d", deploymentID, strings.TrimPrefix(target, "vpc-"), at.UnixMilli())
}

func (h *Handler) executionArn(name string) string {
	return strings.Replace(h.Config.MachineArn, ":stateMachine:", ":execution:", 1) + ":" + name
}

// start starts the target's workflow execution name; "" starts nothing (the target is as
// asked already). A repeated request finds its execution: running, it is left alone; ended
// without recording an outcome (its failure step failed, it was stopped or timed out), a new
// execution takes the target over, so nothing stays stuck.
func (h *Handler) start(ctx context.Context, deploymentID, target, name string) error {
	if name == "" {
		return nil
	}
	input, _ := json.Marshal(map[string]string{"deploymentId": deploymentID, "target": target})
	_, err := h.Workflows.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(h.Config.MachineArn), Name: aws.String(name), Input: aws.String(string(input))})
	var exists *sfntypes.ExecutionAlreadyExists
	if !errors.As(err, &exists) {
		return err
	}
	old := h.executionArn(name)
	out, err := h.Workflows.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(old)})
	if err != nil || out.Status == sfntypes.ExecutionStatusRunning {
		return err
	}
	fresh := executionName(deploymentID, target, h.Store.Now().UTC())
	if fresh == name {
		fresh += "-1" // the same millisecond as the ended one (a test's, not a real workflow's)
	}
	var took bool
	_, err = h.change(ctx, deploymentID, store.Audit{Actor: "peering", Action: "peering.takeover", Detail: target + ": " + name + " ended " + string(out.Status)},
		func(_ store.Deployment, n *connectivity.Network) (bool, error) {
			took = false
			if target == PrivateLinkTarget {
				if pl := n.PrivateLink; pl != nil && pl.Execution == old && pl.State.Working() {
					cp := *pl
					cp.Execution = h.executionArn(fresh)
					n.PrivateLink, took = &cp, true
				}
				return took, nil
			}
			if i := n.Find(target); i >= 0 && n.Peerings[i].Execution == old && n.Peerings[i].State.Working() {
				n.Peerings[i].Execution, took = h.executionArn(fresh), true
			}
			return took, nil
		})
	if err != nil || !took {
		return err
	}
	_, err = h.Workflows.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(h.Config.MachineArn), Name: aws.String(fresh), Input: aws.String(string(input))})
	return err
}

// request validates a peering request, records it and starts its workflow. The same request
// again returns the peering as it stands.
func (h *Handler) request(ctx context.Context, a Action) (any, error) {
	d, err := h.operational(ctx, a.DeploymentID)
	if err != nil {
		return nil, err
	}
	var name string
	if d.Outputs[contract.InfraOutputPeersSecurityGroupID] == "" {
		return nil, &Refused{Reason: "deploymentId: the deployment's infrastructure stack predates private connectivity (no " + contract.InfraOutputPeersSecurityGroupID + "); provision it again first"}
	}
	d, err = h.change(ctx, a.DeploymentID, store.Audit{Actor: a.Actor, Action: "peering.requested", Detail: a.PeerVpcID}, func(d store.Deployment, n *connectivity.Network) (bool, error) {
		if err := stillOperational(d); err != nil {
			return false, err // a teardown (or a failure) took it after the first check
		}
		name = ""
		if i := n.Find(a.PeerVpcID); i >= 0 && n.Peerings[i].State == connectivity.Deleting {
			return false, &Refused{Reason: "peerVpcId: the peering with " + a.PeerVpcID + " is being deleted; ask again once it is deleted"}
		}
		if i := n.Find(a.PeerVpcID); i >= 0 && n.Peerings[i].State.Live() && connectivity.SamePeering(n.Peerings[i], connectivity.Canonical(a.PeeringRequest)) {
			if n.Peerings[i].State.Working() {
				name = runs.NameOf(n.Peerings[i].Execution) // still on its way: see that it runs
			}
			return false, nil
		}
		r, err := connectivity.CheckPeering(a.PeeringRequest, d.Settings.VPCCIDR, *n, h.Config.Regions)
		if err != nil {
			return false, &InvalidRequest{Reason: err.Error()}
		}
		now := h.Store.Now().UTC()
		p := connectivity.Peering{PeerVpcID: r.PeerVpcID, Name: r.Name, PeerAccount: r.PeerAccount, PeerRegion: r.PeerRegion, PeerCIDRs: r.PeerCIDRs,
			AccepterRoleArn: r.AccepterRoleArn, State: connectivity.Provisioning, RequestedAt: now, UpdatedAt: now}
		if i := n.Find(r.PeerVpcID); i >= 0 {
			old := n.Peerings[i]
			if old.State.Live() {
				return false, &Refused{Reason: fmt.Sprintf("peerVpcId: the deployment already has a peering with %s (%s) with other settings; delete it first", r.PeerVpcID, old.State)}
			}
			n.Peerings[i] = p
		} else {
			n.Peerings = append(connectivity.PruneEnded(n.Peerings), p)
		}
		name = executionName(d.ID, r.PeerVpcID, now)
		n.Peerings[n.Find(r.PeerVpcID)].Execution = h.executionArn(name)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if err := h.start(ctx, d.ID, a.PeerVpcID, name); err != nil {
		return nil, err
	}
	return h.peeringView(d, a.PeerVpcID), nil
}

// delete starts removing a peering or the PrivateLink service.
func (h *Handler) delete(ctx context.Context, a Action) (any, error) {
	if _, err := h.operational(ctx, a.DeploymentID); err != nil {
		return nil, err
	}
	var name string
	d, err := h.change(ctx, a.DeploymentID, store.Audit{Actor: a.Actor, Action: "peering.delete", Detail: a.Target}, func(d store.Deployment, n *connectivity.Network) (bool, error) {
		now := h.Store.Now().UTC()
		if a.Target == PrivateLinkTarget {
			pl := n.PrivateLink
			if pl == nil {
				return false, &NotFound{Reason: "target: the deployment has no PrivateLink service"}
			}
			if pl.State == connectivity.Deleted {
				return false, nil // deleted already: a repeated delete (its first answer lost) answers the same
			}
			if pl.State == connectivity.Deleting {
				name = runs.NameOf(pl.Execution)
				return false, nil
			}
			connected := slices.ContainsFunc(pl.Endpoints, func(e connectivity.Endpoint) bool { return e.State == "available" })
			if err := connectivity.CheckDeletePath(*n, pl.State == connectivity.Active && connected, a.Force); err != nil {
				return false, &Refused{Reason: err.Error()}
			}
			cp := *pl
			name = executionName(d.ID, a.Target, now)
			cp.State, cp.Execution, cp.UpdatedAt = connectivity.Deleting, h.executionArn(name), now
			n.PrivateLink = &cp
			return true, nil
		}
		i := n.Find(a.Target)
		if !connectivity.ValidPeerVpcID(a.Target) || i < 0 {
			return false, &NotFound{Reason: fmt.Sprintf("target: the deployment has no peering with %q", a.Target)}
		}
		p := n.Peerings[i]
		if p.State == connectivity.Deleted {
			return false, nil // deleted already: a repeated delete (its first answer lost) answers the same
		}
		if p.State == connectivity.Deleting {
			name = runs.NameOf(p.Execution)
			return false, nil
		}
		if err := connectivity.CheckDeletePath(*n, p.State == connectivity.Active, a.Force); err != nil {
			return false, &Refused{Reason: err.Error()}
		}
		name = executionName(d.ID, a.Target, now)
		p.State, p.Execution, p.UpdatedAt = connectivity.Deleting, h.executionArn(name), now
		n.Peerings[i] = p
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if name != "" {
		if err := h.start(ctx, d.ID, a.Target, name); err != nil {
			return nil, err
		}
	}
	return h.show(ctx, d.ID)
}

// privateLink asks for the endpoint service, allowing the accounts given.
func (h *Handler) privateLink(ctx context.Context, a Action) (any, error) {
	if err := connectivity.CheckAllowedAccounts(a.AllowedAccounts); err != nil {
		return nil, &InvalidRequest{Reason: err.Error()}
	}
	if d, err := h.operational(ctx, a.DeploymentID); err != nil {
		return nil, err
	} else if d.Outputs[contract.InfraOutputPeersSecurityGroupID] == "" {
		return nil, &Refused{Reason: "deploymentId: the deployment's infrastructure stack predates private connectivity; provision it again first"}
	}
	var name string
	d, err := h.change(ctx, a.DeploymentID, store.Audit{Actor: a.Actor, Action: "privatelink.requested", Detail: strings.Join(a.AllowedAccounts, ",")}, func(d store.Deployment, n *connectivity.Network) (bool, error) {
		if err := stillOperational(d); err != nil {
			return false, err // a teardown (or a failure) took it after the first check
		}
		now := h.Store.Now().UTC()
		name = ""
		if pl := n.PrivateLink; pl != nil && pl.State.Live() {
			if pl.State != connectivity.Deleting && slices.Equal(pl.AllowedAccounts, a.AllowedAccounts) {
				if pl.State.Working() {
					name = runs.NameOf(pl.Execution)
				}
				return false, nil
			}
			return false, &Refused{Reason: "allowedAccounts: the deployment's PrivateLink service exists (" + string(pl.State) + "); delete it to change who may connect"}
		}
		name = executionName(d.ID, PrivateLinkTarget, now)
		n.PrivateLink = &connectivity.PrivateLink{State: connectivity.Provisioning, AllowedAccounts: slices.Clone(a.AllowedAccounts), Execution: h.executionArn(name), UpdatedAt: now}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if err := h.start(ctx, d.ID, PrivateLinkTarget, name); err != nil {
		return nil, err
	}
	return h.show(ctx, d.ID)
}

// register accepts a customer's interface endpoint: only one that is registered, from an
// allowed account, and waiting for acceptance.
func (h *Handler) register(ctx context.Context, a Action) (any, error) {
	if !connectivity.ValidEndpointID(a.EndpointID) {
		return nil, &InvalidRequest{Reason: "endpointId: " + connectivity.EndpointRule}
	}
	d, err := h.operational(ctx, a.DeploymentID)
	if err != nil {
		return nil, err
	}
	pl := network(d).PrivateLink
	if pl == nil || pl.State != connectivity.Active {
		return nil, &Refused{Reason: "endpointId: the deployment's PrivateLink service is not active"}
	}
	_, ec2, err := h.Accounts.Open(ctx, d)
	if err != nil {
		return nil, err
	}
	conns, err := ec2.DescribeEndpointConnections(ctx, pl.ServiceID)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(conns, func(c cloud.EndpointConnection) bool { return c.VpcEndpointID == a.EndpointID })
	if i < 0 {
		return nil, &Refused{Reason: fmt.Sprintf("endpointId: no endpoint %s is connecting to %s; create the interface endpoint first", a.EndpointID, pl.ServiceName)}
	}
	conn := conns[i]
	if !slices.Contains(pl.AllowedAccounts, conn.Owner) {
		return nil, &Refused{Reason: fmt.Sprintf("endpointId: %s belongs to account %s, which the service does not allow", a.EndpointID, conn.Owner)}
	}
	if conn.State == "pendingAcceptance" {
		failed, err := ec2.AcceptEndpointConnections(ctx, pl.ServiceID, []string{a.EndpointID})
		if err != nil {
			return nil, err
		}
		if why := failed[a.EndpointID]; why != "" {
			return nil, &Refused{Reason: "endpointId: EC2 did not accept it: " + why}
		}
		conn.State = "available"
	}
	var dns []string
	for _, e := range conn.DNSEntries {
		dns = append(dns, e.DNSName)
	}
	_, err = h.change(ctx, d.ID, store.Audit{Actor: a.Actor, Action: "privatelink.endpoint-accepted", Detail: a.EndpointID}, func(_ store.Deployment, n *connectivity.Network) (bool, error) {
		if n.PrivateLink == nil {
			return false, &Refused{Reason: "endpointId: the PrivateLink service is gone"}
		}
		cp := *n.PrivateLink
		want := connectivity.Endpoint{ID: a.EndpointID, Owner: conn.Owner, State: conn.State, DNSNames: dns}
		if i := slices.IndexFunc(cp.Endpoints, func(e connectivity.Endpoint) bool { return e.ID == a.EndpointID }); i >= 0 &&
			cp.Endpoints[i].State == want.State && slices.Equal(cp.Endpoints[i].DNSNames, want.DNSNames) {
			return false, nil // registered already: a repeated request writes nothing
		}
		cp.Endpoints = slices.DeleteFunc(slices.Clone(cp.Endpoints), func(e connectivity.Endpoint) bool { return e.ID == a.EndpointID })
		cp.Endpoints = append(cp.Endpoints, want)
		n.PrivateLink = &cp
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return h.show(ctx, d.ID)
}

// publicLB removes (after a verified private path) or restores the public load balancer.
func (h *Handler) publicLB(ctx context.Context, a Action) (any, error) {
	if a.Enabled == nil {
		return nil, &InvalidRequest{Reason: "enabled: required (false removes the public load balancer, true restores it)"}
	}
	if _, err := h.operational(ctx, a.DeploymentID); err != nil {
		return nil, err
	}
	verb := map[bool]string{true: "public-lb.restored", false: "public-lb.removed"}[*a.Enabled]
	d, err := h.change(ctx, a.DeploymentID, store.Audit{Actor: a.Actor, Action: verb}, func(_ store.Deployment, n *connectivity.Network) (bool, error) {
		if n.PublicRemoved == !*a.Enabled {
			return false, nil // as asked already: the command below is sent again, once
		}
		if !*a.Enabled {
			if err := connectivity.CheckRemovePublic(*n, a.Verified); err != nil {
				return false, &Refused{Reason: err.Error()}
			}
		}
		now := h.Store.Now().UTC()
		n.PublicRemoved, n.PublicChanged = !*a.Enabled, &now
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	n := network(d)
	if n.PublicChanged == nil {
		return h.show(ctx, d.ID) // never removed: nothing to restore
	}
	if _, err := h.Commands.Send(ctx, channel.Command{ID: fmt.Sprintf("public-lb-%d", n.PublicChanged.UnixMilli()), DeploymentID: d.ID,
		Kind: channel.PublicLoadBalancer, Params: map[string]string{"enabled": strconv.FormatBool(!n.PublicRemoved)}}); err != nil {
		return nil, err
	}
	return h.show(ctx, d.ID)
}

// accessList changes a service's IP access list and pushes it to the agent.
func (h *Handler) accessList(ctx context.Context, a Action) (any, error) {
	if !statemsg.ValidID(a.ServiceID) {
		return nil, &InvalidRequest{Reason: "serviceId: " + statemsg.IDRule}
	}
	if _, err := h.operational(ctx, a.DeploymentID); err != nil {
		return nil, err
	}
	d, err := h.change(ctx, a.DeploymentID, store.Audit{Actor: a.Actor, Action: "access-list.changed", Detail: a.ServiceID}, func(_ store.Deployment, n *connectivity.Network) (bool, error) {
		next, err := connectivity.ApplyAccessList(n.AccessLists[a.ServiceID], a.AccessListChange)
		if err != nil {
			return false, &InvalidRequest{Reason: err.Error()}
		}
		if slices.Equal(next, n.AccessLists[a.ServiceID]) {
			return false, nil
		}
		lists := map[string][]string{}
		for k, v := range n.AccessLists {
			lists[k] = v
		}
		lists[a.ServiceID] = next
		n.AccessLists = lists
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	list := network(d).AccessLists[a.ServiceID]
	params := map[string]string{}
	for i, c := range list {
		params[channel.AccessListParam(i)] = c
	}
	// The id names the service, the list and the record version that holds it: a repeated
	// request that changes nothing sends the same command (which the channel and the agent
	// drop) unless another change of the deployment came between, when the same list is
	// simply applied again.
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d/%s", a.ServiceID, d.Version, strings.Join(list, ","))))
	if _, err := h.Commands.Send(ctx, channel.Command{ID: "acl-" + hex.EncodeToString(sum[:])[:32], DeploymentID: d.ID, ServiceID: a.ServiceID,
		Kind: channel.AccessList, Params: params}); err != nil {
		return nil, err
	}
	return map[string]any{"serviceId": a.ServiceID, "ipAccessList": list}, nil
}

// View is what show returns.
type View struct {
	DeploymentID string                `json:"deploymentId"`
	VpcCIDR      string                `json:"vpcCidr"`
	Network      connectivity.Network  `json:"network"`
	Peerings     []PeeringView         `json:"peerings"`
	Services     []ServiceEndpoints    `json:"services"`
	PeerAccess   PeerAccessInstruction `json:"peerAccess"`
}

// PeeringView is a peering with what the customer does on their side.
type PeeringView struct {
	connectivity.Peering
	PeerRoutes []connectivity.PeerRoute `json:"peerRoutes,omitempty"`
}

// ServiceEndpoints are a service's hostnames.
type ServiceEndpoints struct {
	ServiceID string `json:"serviceId"`
	connectivity.Endpoints
}

// PeerAccessInstruction says how the customer prepares the peer account.
type PeerAccessInstruction struct {
	TemplateURL    string `json:"templateUrl"`
	QuickCreateURL string `json:"quickCreateUrl"`
}

func (h *Handler) peeringView(d store.Deployment, peerVpcID string) PeeringView {
	n := network(d)
	p := n.Peerings[n.Find(peerVpcID)]
	return PeeringView{Peering: p, PeerRoutes: connectivity.PeerRoutes(p, d.Settings.VPCCIDR)}
}

func (h *Handler) show(ctx context.Context, id string) (View, error) {
	d, err := h.Store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return View{}, &NotFound{Reason: "deploymentId: no deployment " + id}
	}
	if err != nil {
		return View{}, err
	}
	n := network(d)
	v := View{DeploymentID: id, VpcCIDR: d.Settings.VPCCIDR, Network: n, Peerings: []PeeringView{}, Services: []ServiceEndpoints{}}
	for _, p := range n.Peerings {
		v.Peerings = append(v.Peerings, h.peeringView(d, p.PeerVpcID))
	}
	services, err := h.Services.Services(ctx, id)
	if err != nil {
		return View{}, err
	}
	for _, s := range services {
		v.Services = append(v.Services, ServiceEndpoints{ServiceID: s.ServiceID, Endpoints: n.EndpointsOf(s.Hostname)})
	}
	template := h.Config.BootstrapTemplateURL
	template = template[:strings.LastIndex(template, "/")+1] + contract.PeerAccessTemplateFile
	q := url.Values{"templateURL": {template}, "stackName": {contract.PeerAccessStackName + "-<peer VPC id>"},
		"param_" + contract.PeerAccessParamByocAccountID: {d.Settings.AccountID}}
	v.PeerAccess = PeerAccessInstruction{TemplateURL: template, QuickCreateURL: fmt.Sprintf(
		"https://console.aws.amazon.com/cloudformation/home?region=<peer region>#/stacks/quickcreate?%s", q.Encode())}
	return v, nil
}

// announce puts BYOC Peering Changed on the vendor bus (best effort: the record is the truth;
// a lost notice is logged).
func (h *Handler) announce(ctx context.Context, d store.Deployment, target string, state connectivity.State, reason string) {
	if h.Bus == nil {
		return
	}
	detail, _ := json.Marshal(map[string]string{"deploymentId": d.ID, "customerId": d.Settings.CustomerID, "target": target, "state": string(state), "reason": reason})
	_, err := h.Bus.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{
		EventBusName: aws.String(h.Config.BusName), Source: aws.String(contract.SourcePeering),
		DetailType: aws.String(contract.DetailTypePeeringChanged), Detail: aws.String(string(detail)),
	}}})
	if err != nil {
		h.Log.WarnContext(ctx, "BYOC Peering Changed not published", "deploymentId", d.ID, "target", target, "error", err.Error())
	}
}
