package main

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/byocloud/byoc/shared/connectivity"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/runs"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/store"
)

// DeploymentSummary is a deployment in the fleet list: its summary and its health.
type DeploymentSummary struct {
	store.Summary
	Health       health.Health `json:"health"`
	HealthReason string        `json:"healthReason,omitempty"`
}

// FleetPage is a page of the fleet.
type FleetPage struct {
	Deployments []DeploymentSummary `json:"deployments"`
	NextToken   string              `json:"nextToken,omitempty"`
}

func listDeployments(h *Handler, c *call) (any, error) {
	q := c.URL.Query()
	limit, err := limitOf(q.Get("limit"))
	if err != nil {
		return nil, err
	}
	status := lifecycle.Status(q.Get("status"))
	if status != "" && !status.Known() {
		return nil, badRequest("status: %q is not one of %v", status, lifecycle.All())
	}
	page, next, err := h.Store.Fleet(c.Context(), store.FleetQuery{Status: status, Limit: limit, NextToken: q.Get("nextToken")})
	if errors.Is(err, store.ErrBadToken) {
		return nil, badRequest("nextToken: not a token of this list (use the nextToken of the previous page, with the same status filter)")
	}
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(page))
	for i, d := range page {
		ids[i] = d.ID
	}
	healths, err := h.Services.DeploymentHealths(c.Context(), ids)
	if err != nil {
		return nil, err
	}
	out := FleetPage{Deployments: make([]DeploymentSummary, len(page)), NextToken: next}
	for i, d := range page {
		hl := healths[d.ID]
		out.Deployments[i] = DeploymentSummary{Summary: d, Health: hl.Health, HealthReason: hl.Reason}
	}
	return out, nil
}

// FleetCounts is the whole fleet counted by status (the list shows a page at a time).
type FleetCounts struct {
	Total    int                      `json:"total"`
	ByStatus map[lifecycle.Status]int `json:"byStatus"`
}

func fleetCounts(h *Handler, c *call) (any, error) {
	counts, err := h.Store.FleetCounts(c.Context())
	if err != nil {
		return nil, err
	}
	out := FleetCounts{ByStatus: counts}
	for _, n := range counts {
		out.Total += n
	}
	return out, nil
}

func limitOf(s string) (int, error) {
	if s == "" {
		return store.DefaultPage, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > store.MaxPage {
		return 0, badRequest("limit: %q must be a whole number from 1 to %d", s, store.MaxPage)
	}
	return n, nil
}

// DeploymentView is one deployment as the API shows it.
type DeploymentView struct {
	store.Deployment
	Health servicestate.DeploymentHealth `json:"health"`
}

// deployment reads the deployment of the path's {id}, or answers 404.
func (h *Handler) deployment(c *call) (store.Deployment, error) {
	id := c.PathValue("id")
	if !settings.ValidDeploymentID(id) {
		return store.Deployment{}, badRequest("id: %q must be %s", id, settings.DeploymentIDRule)
	}
	d, err := h.Store.Get(c.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Deployment{}, notFound("deployment %s does not exist", id)
	}
	return d, err
}

func getDeployment(h *Handler, c *call) (any, error) {
	d, err := h.deployment(c)
	if err != nil {
		return nil, err
	}
	hl, err := h.Services.DeploymentHealth(c.Context(), d.ID)
	if err != nil {
		return nil, err
	}
	// The whole record, as the audit speaks of it: operators see what the workflows see.
	if d.Network == nil {
		d.Network = &connectivity.Network{}
	}
	return DeploymentView{Deployment: d, Health: hl}, nil
}

// AuditPage is a page of a deployment's audit trail, newest first.
type AuditPage struct {
	Entries   []store.AuditEntry `json:"entries"`
	NextToken string             `json:"nextToken,omitempty"`
}

func auditTrail(h *Handler, c *call) (any, error) {
	d, err := h.deployment(c)
	if err != nil {
		return nil, err
	}
	limit, err := limitOf(c.URL.Query().Get("limit"))
	if err != nil {
		return nil, err
	}
	entries, next, err := h.Store.AuditPage(c.Context(), d.ID, limit, c.URL.Query().Get("nextToken"))
	if errors.Is(err, store.ErrBadToken) {
		return nil, badRequest("nextToken: not a token of this deployment's audit trail")
	}
	if err != nil {
		return nil, err
	}
	return AuditPage{Entries: entries, NextToken: next}, nil
}

// Operation is a workflow the API started, as the caller follows it.
type Operation struct {
	Workflow     string `json:"workflow"`
	Name         string `json:"name"`
	DeploymentID string `json:"deploymentId,omitempty"`
	Status       string `json:"status"` // RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED
	Error        string `json:"error,omitempty"`
	Cause        string `json:"cause,omitempty"`
	// Started is false when the request found the workflow already running (a repeat).
	Started bool `json:"started"`
}

// retryProvisioning starts the next provision execution of a failed deployment.
func retryProvisioning(h *Handler, c *call) (any, error) {
	if err := c.decode(&struct{}{}); err != nil {
		return nil, err
	}
	d, err := h.deployment(c)
	if err != nil {
		return nil, err
	}
	if d.Status != lifecycle.Failed {
		return nil, conflict("deployment %s is %s: only a failed provisioning is retried", d.ID, d.Status)
	}
	if d.Failure != nil && d.Failure.Status == contract.FailureTeardown {
		return nil, conflict("deployment %s failed while being torn down: delete it again to resume the teardown", d.ID)
	}
	input, _ := json.Marshal(map[string]string{"deploymentId": d.ID})
	s, err := runs.StartNext(c.Context(), h.Workflows, h.Config.Machines[workflowProvision], workflowProvision, d.ID, d.Execution, string(input))
	if err != nil {
		return nil, err
	}
	return Operation{Workflow: workflowProvision, Name: s.Name, DeploymentID: d.ID, Status: string(sfntypes.ExecutionStatusRunning), Started: !s.Running}, nil
}

// getOperation reports on an execution the API started.
func getOperation(h *Handler, c *call) (any, error) {
	workflow, name := c.PathValue("workflow"), c.PathValue("name")
	machine, ok := h.Config.Machines[workflow]
	if !ok {
		return nil, notFound("workflow %q: must be provision, command, teardown or peering", workflow)
	}
	if !executionNamePattern.MatchString(name) {
		return nil, badRequest("name: %q is not an execution name (1 to 80 letters, digits, - and _)", name)
	}
	out, err := h.Workflows.DescribeExecution(c.Context(), &sfn.DescribeExecutionInput{ExecutionArn: aws.String(runs.ExecutionArn(machine, name))})
	var missing *sfntypes.ExecutionDoesNotExist
	if errors.As(err, &missing) {
		return nil, notFound("no %s execution %s", workflow, name)
	}
	if err != nil {
		return nil, err
	}
	return Operation{Workflow: workflow, Name: name, Status: string(out.Status), Error: aws.ToString(out.Error), Cause: aws.ToString(out.Cause), Started: true}, nil
}

// deleteDeployment starts the teardown workflow (teardown-<id>-N). A deployment some other
// workflow is changing (provisioning, upgrading, a peering being built) is refused with 409,
// as is one whose services still run unless the body says force. A teardown already running
// is answered as is; one that stopped (failed) is resumed by the next execution; a deleted
// deployment is answered deleted.
func deleteDeployment(h *Handler, c *call) (any, error) {
	var body struct {
		Force      bool `json:"force"`
		DeleteData bool `json:"deleteData"`
		// Abandon: the customer's account no longer lets byoc in; leave what byoc built there
		// to the customer and retire the vendor side. The workflow refuses it while the
		// management role still works.
		Abandon bool `json:"abandon"`
	}
	if err := c.decode(&body); err != nil {
		return nil, err
	}
	d, err := h.deployment(c)
	if err != nil {
		return nil, err
	}
	last := ""
	if _, ok := runs.Number(workflowTeardown, d.ID, d.Execution); ok {
		last = d.Execution
	}
	switch d.Status {
	case lifecycle.Deleted:
		return Operation{Workflow: workflowTeardown, Name: runs.NameOf(last), DeploymentID: d.ID, Status: string(sfntypes.ExecutionStatusSucceeded)}, nil
	case lifecycle.Provisioning, lifecycle.Updating:
		return nil, conflict("deployment %s is %s: delete it once that workflow ends", d.ID, d.Status)
	case lifecycle.Deleting:
		// A teardown still running is the answer; one whose execution is gone is resumed.
		if last != "" {
			running, err := runs.Running(c.Context(), h.Workflows, h.Config.Machines[workflowTeardown], runs.NameOf(last))
			if err != nil {
				return nil, err
			}
			if running {
				return Operation{Workflow: workflowTeardown, Name: runs.NameOf(last), DeploymentID: d.ID, Status: string(sfntypes.ExecutionStatusRunning)}, nil
			}
		}
	default:
		if d.Network != nil {
			for _, p := range d.Network.Peerings {
				if p.State.Working() {
					return nil, conflict("peering %s of deployment %s is %s: delete the deployment once that workflow ends (or delete the peering first)", p.PeerVpcID, d.ID, p.State)
				}
			}
		}
		if !body.Force && !body.Abandon {
			live, err := h.Services.NotTerminated(c.Context(), d.ID)
			if err != nil {
				return nil, err
			}
			if len(live) > 0 {
				return nil, conflict("deployment %s has services not terminated: %s; terminate them first (PATCH .../services/{id}/state {\"command\":\"terminate\"}), or delete with force", d.ID, strings.Join(live, ", "))
			}
		}
	}
	input, _ := json.Marshal(map[string]any{"deploymentId": d.ID, "force": body.Force, "deleteData": body.DeleteData, "abandon": body.Abandon, "actor": actor(c.caller)})
	s, err := runs.StartNext(c.Context(), h.Workflows, h.Config.Machines[workflowTeardown], workflowTeardown, d.ID, last, string(input))
	if err != nil {
		return nil, err
	}
	return Operation{Workflow: workflowTeardown, Name: s.Name, DeploymentID: d.ID, Status: string(sfntypes.ExecutionStatusRunning), Started: !s.Running}, nil
}
