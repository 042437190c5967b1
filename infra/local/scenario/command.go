package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// CommandRelease is the ClickHouse release the follow-up applies to the first service
// through the command workflow once a deployment without injected faults is healthy: the
// loop an operator's command takes, from the control plane to the agent and back.
const CommandRelease = "24.9.2.42"

// CommandResult is what the follow-up's run of the command workflow did.
type CommandResult struct {
	Execution string // the execution's name
	ServiceID string
	Release   string
	CommandID string
	Status    string // the execution's final status
	Elapsed   time.Duration
}

// command starts the control plane's command workflow, as an operator would, to apply
// CommandRelease to the first service, and steps the data plane (whose agent applies the
// command and whose exporter acknowledges it) until the execution ends. It fails unless the
// execution succeeded and the service's stored state is on the new release.
func (f *follower) command(ctx context.Context) error {
	fail := func(format string, args ...any) error {
		return &Failure{Scenario: f.o.Scenario, Reason: fmt.Sprintf(format, args...)}
	}
	machine := f.r.ControlPlane.Outputs[OutputCommandMachine]
	service := DataPlaneServices[0]
	input, _ := json.Marshal(map[string]any{
		"deploymentId": f.id, "serviceId": service, "kind": "apply-release",
		"params": map[string]string{"clickhouseVersion": CommandRelease}, "timeoutSeconds": int(f.o.PhaseTimeout.Seconds()),
	})
	res := &CommandResult{Execution: "apply-release-" + f.id, ServiceID: service, Release: CommandRelease}
	f.hr.Command = res
	began := time.Now()
	defer func() { res.Elapsed = time.Since(began) }()
	states := sfn.NewFromConfig(f.r.Cloud.Config())
	started, err := states.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(machine), Name: aws.String(res.Execution), Input: aws.String(string(input)),
	})
	if err != nil {
		return fmt.Errorf("start the command workflow: %w", err)
	}
	f.progress("command workflow %s: apply-release %s to %s", res.Execution, CommandRelease, service)
	deadline := time.Now().Add(f.o.PhaseTimeout)
	for {
		desc, err := states.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: started.ExecutionArn})
		if err != nil {
			return fmt.Errorf("describe the command workflow's execution: %w", err)
		}
		if desc.Status != sfntypes.ExecutionStatusRunning {
			res.Status = string(desc.Status)
			var out struct {
				Command struct {
					ID string `json:"id"`
				} `json:"command"`
			}
			_ = json.Unmarshal([]byte(aws.ToString(desc.Output)), &out)
			res.CommandID = out.Command.ID
			if desc.Status != sfntypes.ExecutionStatusSucceeded {
				return fail("the command workflow ended %s: %s %s", desc.Status, aws.ToString(desc.Error), aws.ToString(desc.Cause))
			}
			break
		}
		if time.Now().After(deadline) {
			return fail("the command workflow %s did not end within %s%s", res.Execution, f.o.PhaseTimeout, f.lastError())
		}
		if err := f.step(ctx); err != nil {
			return err
		}
		time.Sleep(StepInterval)
	}
	s, err := f.repo.Service(context.WithoutCancel(ctx), f.id, service)
	if err != nil {
		return err
	}
	if s.Versions.ClickHouse != CommandRelease {
		return fail("the command workflow succeeded, yet %s is stored on ClickHouse %q, want %s", service, s.Versions.ClickHouse, CommandRelease)
	}
	return nil
}
