package stackevent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/byocloud/byoc/shared/cloud"
)

// Result is what a workflow task waiting on a stack receives when the stack operation ends,
// and what the fallback poll reports. Every field is always present: the workflow selects
// them by JSONPath, which fails on a missing field.
type Result struct {
	StackID string `json:"stackId"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	// Outcome drives the workflow's choice: OutcomeSucceeded (record the outputs),
	// OutcomeDeleted (the rolled-back stack is gone: create it again), OutcomeWaiting (poll
	// only: keep waiting). A failure is not an outcome but an error, ErrorStackFailed.
	Outcome string `json:"outcome"`
}

// Outcomes of a stack wait.
const (
	OutcomeSucceeded = "succeeded"
	OutcomeDeleted   = "deleted"
	OutcomeWaiting   = "waiting"
	OutcomeFailed    = "failed"
)

// ErrorStackFailed is the error name a waiting task fails with when its stack operation
// failed; the workflow catches it to record the failure and maybe retry.
const ErrorStackFailed = "StackFailed"

// ResultOf classifies a stack status into a Result.
func ResultOf(stackID, status, reason string) Result {
	r := Result{StackID: stackID, Status: status, Reason: reason, Outcome: OutcomeWaiting}
	op, outcome, _ := Classify(status)
	switch {
	case outcome == Failed:
		r.Outcome = OutcomeFailed
	case outcome == Succeeded && op == Delete:
		r.Outcome = OutcomeDeleted
	case outcome == Succeeded:
		r.Outcome = OutcomeSucceeded
	}
	return r
}

// ErrTaskGone means the task token can no longer be completed: it was completed already (a
// duplicate event, or the await step and the event raced), it timed out into the fallback
// poll, or its execution ended. Nobody is waiting, so there is nothing to do.
var ErrTaskGone = errors.New("task token no longer awaited")

// Resume completes a waiting task with the end of its stack operation: success for a
// successful end, failure ErrorStackFailed (cause: the Result as JSON) otherwise. It must
// not be called for an operation still in progress.
func Resume(ctx context.Context, c cloud.TaskCompleter, token string, r Result) error {
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	switch r.Outcome {
	case OutcomeSucceeded, OutcomeDeleted:
		_, err = c.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{TaskToken: aws.String(token), Output: aws.String(string(body))})
	case OutcomeFailed:
		_, err = c.SendTaskFailure(ctx, &sfn.SendTaskFailureInput{
			TaskToken: aws.String(token),
			Error:     aws.String(ErrorStackFailed),
			Cause:     aws.String(string(body)),
		})
	default:
		return fmt.Errorf("resume task: stack %s is still %s", r.StackID, r.Status)
	}
	var gone *sfntypes.TaskDoesNotExist
	var timedOut *sfntypes.TaskTimedOut
	var invalid *sfntypes.InvalidToken
	if errors.As(err, &gone) || errors.As(err, &timedOut) || errors.As(err, &invalid) {
		return fmt.Errorf("%w: %v", ErrTaskGone, err)
	}
	if err != nil {
		return fmt.Errorf("resume task for stack %s: %w", r.StackID, err)
	}
	return nil
}
