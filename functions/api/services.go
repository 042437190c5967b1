package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/connectivity"
	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/runs"
	"github.com/byocloud/byoc/shared/scrape"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/statemsg"
	"github.com/byocloud/byoc/shared/store"
)

// ServiceView is a service as the API shows it: its last report, its health and where it is
// reachable.
type ServiceView struct {
	ID           string                 `json:"id"`
	Status       statemsg.Status        `json:"status"`
	Health       health.Health          `json:"health"`
	HealthReason string                 `json:"healthReason,omitempty"`
	Versions     statemsg.Versions      `json:"versions"`
	Replicas     statemsg.Replicas      `json:"replicas"`
	Endpoints    connectivity.Endpoints `json:"endpoints"`
	AccessList   []string               `json:"ipAccessList,omitempty"`
	LastSeenAt   time.Time              `json:"lastSeenAt"`
}

func serviceView(d store.Deployment, s servicestate.Service) ServiceView {
	n := connectivity.Network{}
	if d.Network != nil {
		n = *d.Network
	}
	return ServiceView{ID: s.ServiceID, Status: s.Status, Health: s.Health, HealthReason: s.HealthReason,
		Versions: s.Versions, Replicas: s.Replicas, Endpoints: n.EndpointsOf(s.Hostname),
		AccessList: n.AccessLists[s.ServiceID], LastSeenAt: s.LastSeenAt}
}

func listServices(h *Handler, c *call) (any, error) {
	d, err := h.deployment(c)
	if err != nil {
		return nil, err
	}
	svcs, err := h.Services.Services(c.Context(), d.ID)
	if err != nil {
		return nil, err
	}
	out := make([]ServiceView, len(svcs))
	for i, s := range svcs {
		out[i] = serviceView(d, s)
	}
	return map[string]any{"services": out}, nil
}

// service reads the deployment and the service of the path, or answers 404.
func (h *Handler) service(c *call) (store.Deployment, servicestate.Service, error) {
	d, err := h.deployment(c)
	if err != nil {
		return d, servicestate.Service{}, err
	}
	id := c.PathValue("serviceId")
	if !statemsg.ValidID(id) {
		return d, servicestate.Service{}, badRequest("serviceId: %q %s", id, statemsg.IDRule)
	}
	s, err := h.Services.Service(c.Context(), d.ID, id)
	if servicestate.IsNotFound(err) || (err == nil && !s.Reported()) {
		return d, servicestate.Service{}, notFound("deployment %s has no service %s (services appear once their exporter reports)", d.ID, id)
	}
	return d, s, err
}

func getService(h *Handler, c *call) (any, error) {
	d, s, err := h.service(c)
	if err != nil {
		return nil, err
	}
	return serviceView(d, s), nil
}

// stateCommands are the state changes ClickHouse Cloud's API offers, as channel commands.
var stateCommands = map[string]channel.Kind{"start": channel.Start, "stop": channel.Stop, "terminate": channel.Terminate, "idle": channel.Idle}

func serviceState(h *Handler, c *call) (any, error) {
	var body struct {
		Command string `json:"command"`
	}
	if err := c.decode(&body); err != nil {
		return nil, err
	}
	kind, ok := stateCommands[body.Command]
	if !ok {
		return nil, badRequest("command: %q must be start, stop, terminate or idle", body.Command)
	}
	return h.command(c, kind, nil)
}

func serviceScaling(h *Handler, c *call) (any, error) {
	var body struct {
		Replicas *int `json:"replicas"`
	}
	if err := c.decode(&body); err != nil {
		return nil, err
	}
	if body.Replicas == nil || *body.Replicas < 1 || *body.Replicas > statemsg.MaxReplicas {
		return nil, badRequest("replicas: required, a whole number from 1 to %d", statemsg.MaxReplicas)
	}
	return h.command(c, channel.Scale, map[string]string{"replicas": strconv.Itoa(*body.Replicas)})
}

func serviceBackup(h *Handler, c *call) (any, error) {
	var body struct {
		BackupID string `json:"backupId"`
	}
	if err := c.decode(&body); err != nil {
		return nil, err
	}
	var params map[string]string
	if body.BackupID != "" {
		if !statemsg.ValidID(body.BackupID) {
			return nil, badRequest("backupId: %q %s", body.BackupID, statemsg.IDRule)
		}
		params = map[string]string{"backupId": body.BackupID}
	}
	return h.command(c, channel.Backup, params)
}

// commandTimeout is how long the command workflow waits for the agent's acknowledgement.
const commandTimeout = 30 * time.Minute

// command starts the command workflow for one service: the command goes to the agent, the
// workflow waits for its acknowledgement. The answer is the operation to follow.
func (h *Handler) command(c *call, kind channel.Kind, params map[string]string) (any, error) {
	d, s, err := h.service(c)
	if err != nil {
		return nil, err
	}
	if d.Status != lifecycle.Ready && d.Status != lifecycle.Updating {
		return nil, conflict("deployment %s is %s: its services take commands only while it is ready or updating", d.ID, d.Status)
	}
	if s.Status == statemsg.StatusTerminated && kind != channel.Terminate {
		return nil, conflict("service %s was terminated: it takes no more commands", s.ServiceID)
	}
	in := map[string]any{"deploymentId": d.ID, "serviceId": s.ServiceID, "kind": kind, "timeoutSeconds": int(commandTimeout.Seconds())}
	if params != nil {
		in["params"] = params
	}
	input, _ := json.Marshal(in)
	// The execution's name comes from the request's Idempotency-Key when it has one: a
	// request run again (its first run died after starting the workflow, its key's lease
	// ended) finds the same execution instead of commanding the agent twice.
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	if c.key != "" {
		sum := sha256.Sum256([]byte(c.caller + "\x00" + c.key))
		suffix = sum[:6]
	}
	name := fmt.Sprintf("%s-%s-%s", kind, d.ID, hex.EncodeToString(suffix))
	_, err = h.Workflows.StartExecution(c.Context(), &sfn.StartExecutionInput{
		StateMachineArn: aws.String(h.Config.Machines[workflowCommand]), Name: aws.String(name), Input: aws.String(string(input)),
	})
	var exists *sfntypes.ExecutionAlreadyExists
	if errors.As(err, &exists) {
		// The request's own execution (run again after its first run died), answered as it
		// is; or the key's name taken by another command (a key reused after its record
		// expired), which is refused rather than silently not sent.
		out, derr := h.Workflows.DescribeExecution(c.Context(), &sfn.DescribeExecutionInput{ExecutionArn: aws.String(runs.ExecutionArn(h.Config.Machines[workflowCommand], name))})
		if derr != nil {
			return nil, derr
		}
		if !sameJSON(aws.ToString(out.Input), string(input)) {
			return nil, conflict("Idempotency-Key: its workflow name is taken by another command (keys must not be reused); use a new key")
		}
		return Operation{Workflow: workflowCommand, Name: name, DeploymentID: d.ID, Status: string(out.Status)}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("start the command workflow: %w", err)
	}
	return Operation{Workflow: workflowCommand, Name: name, DeploymentID: d.ID, Status: string(sfntypes.ExecutionStatusRunning), Started: true}, nil
}

// executionNamePattern is what Step Functions accepts as an execution name (ASCII subset).
var executionNamePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

func prometheusConfig(h *Handler, c *call) (any, error) {
	d, s, err := h.service(c)
	if err != nil {
		return nil, err
	}
	n := connectivity.Network{}
	if d.Network != nil {
		n = *d.Network
	}
	e := n.EndpointsOf(s.Hostname)
	target, private := e.Public, false
	if e.Private != "" {
		target, private = e.Private, true
	}
	if target == "" {
		return nil, conflict("service %s has no endpoint to scrape: the public load balancer is removed and no peering is active", s.ServiceID)
	}
	return scrape.For(s.ServiceID, target, private), nil
}

// sameJSON reports whether two JSON documents hold the same values (Step Functions may hand
// an execution's input back formatted otherwise).
func sameJSON(a, b string) bool {
	var x, y any
	return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil && reflect.DeepEqual(x, y)
}
