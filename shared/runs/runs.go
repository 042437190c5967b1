// Package runs names and starts the numbered executions of a deployment's workflows:
// provision-<id>-N, teardown-<id>-N. Step Functions refuses a second execution of a name
// (for 90 days), so the name is what makes a duplicate start nothing; a retry is the next
// number. Used by onboard (a customer's fix restarts provisioning), and by the operator API
// (retry, teardown).
package runs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// Workflows is what starting a numbered execution needs of Step Functions.
type Workflows interface {
	StartExecution(context.Context, *sfn.StartExecutionInput, ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error)
	DescribeExecution(context.Context, *sfn.DescribeExecutionInput, ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error)
}

// Name is the N-th execution of a deployment's workflow.
func Name(workflow, deploymentID string, n int) string {
	return fmt.Sprintf("%s-%s-%d", workflow, deploymentID, n)
}

// Number is N of an execution (name or ARN) named <workflow>-<id>-N.
func Number(workflow, deploymentID, execution string) (int, bool) {
	rest, ok := strings.CutPrefix(NameOf(execution), workflow+"-"+deploymentID+"-")
	n, err := strconv.Atoi(rest)
	return n, ok && err == nil && n > 0
}

// NameOf is the name of an execution given by ARN (arn:...:execution:<machine>:<name>) or
// by name.
func NameOf(execution string) string { return execution[strings.LastIndex(execution, ":")+1:] }

// MachineOf is the state machine of an execution ARN ("" for a bare name).
func MachineOf(executionArn string) string {
	i := strings.LastIndex(executionArn, ":")
	if i < 0 || !strings.Contains(executionArn, ":execution:") {
		return ""
	}
	return strings.Replace(executionArn[:i], ":execution:", ":stateMachine:", 1)
}

// ExecutionArn is the ARN of an execution of a state machine.
func ExecutionArn(machineArn, name string) string {
	return strings.Replace(machineArn, ":stateMachine:", ":execution:", 1) + ":" + name
}

// MaxNames bounds the closed executions StartNext steps over to find a free name.
const MaxNames = 20

// Start is what StartNext did.
type Start struct {
	Name string
	// Running: the name was taken by an execution still running (a duplicate of this start,
	// or the one before it still at work); nothing new was started.
	Running bool
}

// StartNext starts the execution after last (a name or ARN of this workflow; "" or another
// name: the first). A name taken by a running execution is that execution (Running); names
// taken by closed executions (refused, or of an earlier retry) are stepped over.
func StartNext(ctx context.Context, wf Workflows, machineArn, workflow, deploymentID, last, input string) (Start, error) {
	n, ok := Number(workflow, deploymentID, last)
	if !ok {
		n = 0
	}
	for range MaxNames {
		n++
		name := Name(workflow, deploymentID, n)
		_, err := wf.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(machineArn), Name: aws.String(name), Input: aws.String(input)})
		var exists *sfntypes.ExecutionAlreadyExists
		if !errors.As(err, &exists) {
			if err != nil {
				return Start{}, fmt.Errorf("start %s: %w", name, err)
			}
			return Start{Name: name}, nil
		}
		running, err := Running(ctx, wf, machineArn, name)
		if err != nil {
			return Start{}, err
		}
		if running {
			return Start{Name: name, Running: true}, nil
		}
	}
	return Start{}, fmt.Errorf("%s of deployment %s: the next %d execution names are taken by closed executions", workflow, deploymentID, MaxNames)
}

// Running reports whether the execution of that name is running (or about to run again). An
// execution Step Functions does not know (forgotten after 90 days) is not running.
func Running(ctx context.Context, wf Workflows, machineArn, name string) (bool, error) {
	out, err := wf.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(ExecutionArn(machineArn, name))})
	var gone *sfntypes.ExecutionDoesNotExist
	if errors.As(err, &gone) {
		return false, nil // Step Functions forgets a closed execution after 90 days
	}
	if err != nil {
		return false, fmt.Errorf("describe execution %s: %w", name, err)
	}
	return out.Status == sfntypes.ExecutionStatusRunning || out.Status == sfntypes.ExecutionStatusPendingRedrive, nil
}
