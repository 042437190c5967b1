package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/customerstack"
	"github.com/byocloud/byoc/shared/maintenance"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/steperr"
	"github.com/byocloud/byoc/shared/store"
)

// Config is what the control-plane stack tells provision through its environment.
type Config struct {
	Rules                 settings.Rules
	MaxAttempts           int    // provisioning attempts per workflow execution
	TemplateBody          string // the infrastructure template, compacted
	StateQueueArn         string // infrastructure parameter StateQueueArn
	ControlPlaneAccountID string // infrastructure parameter ControlPlaneAccountId
	ControlPlaneRoleArn   string // infrastructure parameter ControlPlaneRoleArn: this function's own role
	// StateQueueURL is the state queue, whose policy record admits a new exporter to at once.
	// Optional: empty leaves admission to statesweep's next run.
	StateQueueURL string
	// Schedules is where deployments' maintenance schedules go (without a client).
	Schedules maintenance.Schedules
}

// DefaultMaxAttempts bounds delete-and-recreate after a rollback when
// MAX_PROVISION_ATTEMPTS is not set.
const DefaultMaxAttempts = 3

// maxTemplateBody is CloudFormation's limit on TemplateBody (larger templates need
// TemplateURL).
const maxTemplateBody = 51200

// ConfigFromEnv reads and checks the configuration at cold start.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	var problems []string
	need := func(name string) string {
		v := getenv(name)
		if v == "" {
			problems = append(problems, name+" must be set")
		}
		return v
	}
	need(contract.EnvTableName)
	c := Config{
		Rules:         settings.RulesFromEnv(getenv(contract.EnvSupportedRegions)),
		MaxAttempts:   DefaultMaxAttempts,
		StateQueueArn: need(contract.EnvStateQueueArn),
	}
	if roleArn := need(contract.EnvProvisionerRoleArn); roleArn != "" {
		// arn:<partition>:iam::<account>:role/<name>
		parts := strings.Split(roleArn, ":")
		if len(parts) != 6 || parts[2] != "iam" || len(parts[4]) != 12 {
			problems = append(problems, fmt.Sprintf("%s %q must be an IAM role ARN", contract.EnvProvisionerRoleArn, roleArn))
		} else {
			c.ControlPlaneAccountID, c.ControlPlaneRoleArn = parts[4], roleArn
		}
	}
	if v := getenv(contract.EnvStateQueueURL); v != "" {
		if u, err := url.Parse(v); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			problems = append(problems, fmt.Sprintf("%s %q must be an SQS queue URL", contract.EnvStateQueueURL, v))
		}
		c.StateQueueURL = v
	}
	if v := getenv(contract.EnvMaxProvisionAttempts); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10 {
			problems = append(problems, fmt.Sprintf("%s %q must be a whole number from 1 to 10", contract.EnvMaxProvisionAttempts, v))
		}
		c.MaxAttempts = n
	}
	if path := need(contract.EnvInfraTemplatePath); path != "" {
		body, err := loadTemplate(path)
		if err != nil {
			problems = append(problems, err.Error())
		}
		c.TemplateBody = body
	}
	schedules := map[string]string{}
	for _, name := range maintenance.ScheduleEnv {
		schedules[name] = need(name)
	}
	c.Schedules = maintenance.SchedulesFromEnv(schedules)
	if err := c.Rules.Validate(); err != nil {
		problems = append(problems, contract.EnvSupportedRegions+": "+err.Error())
	}
	if len(problems) > 0 {
		return Config{}, fmt.Errorf("provision: %s", strings.Join(problems, "; "))
	}
	return c, nil
}

// loadTemplate reads the infrastructure template and compacts it: CloudFormation counts the
// bytes of TemplateBody, and the synthesized template is indented.
func loadTemplate(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", contract.EnvInfraTemplatePath, err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return "", fmt.Errorf("%s %s is not a JSON template: %w", contract.EnvInfraTemplatePath, path, err)
	}
	if buf.Len() > maxTemplateBody {
		return "", fmt.Errorf("%s %s is %d bytes compacted, over CloudFormation's TemplateBody limit of %d (it would have to be passed by TemplateURL)",
			contract.EnvInfraTemplatePath, path, buf.Len(), maxTemplateBody)
	}
	return buf.String(), nil
}

// Handler runs the steps of the provision workflow. Each step reads the deployment from the
// store and writes it back conditionally, so a step retried by the workflow, or run twice
// by Lambda, finds its own work done and does not repeat it.
type Handler struct {
	Store     *store.Store
	Tasks     cloud.TaskCompleter
	Customers customerstack.Opener
	// Maintenance arms a deployment's maintenance schedule once it is ready.
	Maintenance *maintenance.Service
	// State is the service-state repository on the same table, where record registers the
	// data plane; SQS opens its command channel and updates the state queue's policy.
	State  *servicestate.Repo
	SQS    channel.SQS
	Config Config
	Log    *slog.Logger
}

// Steps of the workflow: the "step" field of the input.
const (
	StepPrepare = "prepare"
	StepApply   = "apply"
	StepAwait   = "await"
	StepPoll    = "poll"
	StepRecord  = "record"
	StepFail    = "fail"
)

// Input is the payload every task of provision.asl.json sends.
type Input struct {
	Step         string `json:"step"`
	DeploymentID string `json:"deploymentId"`
	Execution    string `json:"execution"` // $$.Execution.Id
	TaskToken    string `json:"taskToken,omitempty"`
	StackID      string `json:"stackId,omitempty"`
	Operation    string `json:"operation,omitempty"`
	RequestToken string `json:"requestToken,omitempty"`
	// Error is what a Catch put at $.error: the error name and its cause.
	Error *steperr.Caught `json:"error,omitempty"`
	// Takeover (prepare) lets this execution take a deployment another execution is working
	// on; without it prepare refuses (NotOwner).
	Takeover bool `json:"takeover,omitempty"`
	// StartedAt (apply, poll) is $$.Execution.StartTime: the execution's Deadline counts
	// from it.
	StartedAt time.Time `json:"startedAt,omitzero"`
}

// Deadline is how long one execution may work on a deployment. The poll after it fails the
// attempt with DeadlineExceeded, recorded like any failure; the state machine's own timeout
// is later (provision.asl.json's TimeoutSeconds) and only a backstop.
const Deadline = 24 * time.Hour

// Handle dispatches to the step. Errors come back classified (see errors.go).
func (h *Handler) Handle(ctx context.Context, in Input) (any, error) {
	if in.DeploymentID == "" || in.Execution == "" {
		return nil, &InvalidInput{Problem: "deploymentId and execution are required"}
	}
	log := h.Log.With("step", in.Step, "deploymentId", in.DeploymentID, "execution", in.Execution)
	var out any
	var err error
	switch in.Step {
	case StepPrepare:
		out, err = h.prepare(ctx, log, in)
	case StepApply:
		out, err = h.apply(ctx, log, in)
	case StepAwait:
		out, err = h.await(ctx, log, in)
	case StepPoll:
		out, err = h.poll(ctx, in)
	case StepRecord:
		out, err = h.record(ctx, log, in)
	case StepFail:
		out, err = h.fail(ctx, log, in)
	default:
		return nil, &InvalidInput{Problem: fmt.Sprintf("step %q is not one of prepare, apply, await, poll, record, fail", in.Step)}
	}
	if err != nil {
		err = classify(err)
		log.ErrorContext(ctx, "provision step failed", "error", err.Error(), "errorType", fmt.Sprintf("%T", err))
		return nil, err
	}
	return out, nil
}
