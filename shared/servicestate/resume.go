package servicestate

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/statemsg"
)

// ErrorCommandFailed is the error name a waiting task fails with when the command it waits
// for failed; workflows Catch it by this name.
const ErrorCommandFailed = "byoc.CommandFailed"

// WaitOutput is what a satisfied wait returns to its workflow: the service state that
// satisfied it.
type WaitOutput struct {
	DeploymentID string            `json:"deploymentId"`
	ServiceID    string            `json:"serviceId"`
	Health       health.Health     `json:"health"`
	Status       statemsg.Status   `json:"status"`
	Versions     statemsg.Versions `json:"versions"`
	Replicas     statemsg.Replicas `json:"replicas"`
	ObservedAt   time.Time         `json:"observedAt"`
	OrderKey     string            `json:"orderKey"`
	CommandID    string            `json:"commandId,omitempty"`
}

// ResumeWaiters checks every task waiting on s against it and resumes those it satisfies
// (or that can no longer be satisfied), removing them. Expired waiters are removed. It
// returns how many tasks it resumed. A waiter whose task Step Functions no longer knows
// (timed out, or resumed by a concurrent delivery) is simply removed. An error leaves the
// waiter in place for the next report (or the redelivery of this one).
func (r *Repo) ResumeWaiters(ctx context.Context, tasks cloud.TaskCompleter, s Service) (int, error) {
	waiters, err := r.Waiters(ctx, s.DeploymentID, s.ServiceID)
	if err != nil {
		return 0, err
	}
	if len(waiters) == 0 {
		// The count outlived its waiters (TTL removed them): stop looking on every report.
		return 0, r.ResetWaiterCount(ctx, s.DeploymentID, s.ServiceID, s.Waiters)
	}
	resumed := 0
	for _, w := range waiters {
		done, err := r.ResumeWaiter(ctx, tasks, w, s)
		if err != nil {
			return resumed, err
		}
		if done {
			resumed++
		}
	}
	return resumed, nil
}

// ResumeWaiter resumes one waiting task if s (and the command it names) settles its
// condition, and removes it; an expired waiter is removed without resuming. It reports
// whether the task was resumed.
func (r *Repo) ResumeWaiter(ctx context.Context, tasks cloud.TaskCompleter, w Waiter, s Service) (bool, error) {
	if w.Expired(r.now()) {
		_, err := r.RemoveWaiter(ctx, w)
		return false, err
	}
	var cmd *CommandRecord
	if id := w.Condition.CommandID; id != "" {
		c, err := r.Command(ctx, w.DeploymentID, id)
		switch {
		case err == nil:
			cmd = &c
		case !IsNotFound(err):
			return false, err
		}
	}
	ok, failed := w.Condition.Evaluate(s, cmd)
	switch {
	case ok:
		out, err := json.Marshal(WaitOutput{
			DeploymentID: s.DeploymentID, ServiceID: s.ServiceID, Health: s.Health, Status: s.Status,
			Versions: s.Versions, Replicas: s.Replicas, ObservedAt: s.ObservedAt, OrderKey: s.OrderKey,
			CommandID: w.Condition.CommandID,
		})
		if err != nil {
			return false, err
		}
		_, err = tasks.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{TaskToken: aws.String(w.TaskToken), Output: aws.String(string(out))})
		if err != nil && !taskGone(err) {
			return false, fmt.Errorf("resume task waiting on %s/%s: %w", w.DeploymentID, w.Condition.ServiceID, err)
		}
	case failed != "":
		_, err := tasks.SendTaskFailure(ctx, &sfn.SendTaskFailureInput{
			TaskToken: aws.String(w.TaskToken), Error: aws.String(ErrorCommandFailed), Cause: aws.String(failed),
		})
		if err != nil && !taskGone(err) {
			return false, fmt.Errorf("fail task waiting on %s/%s: %w", w.DeploymentID, w.Condition.ServiceID, err)
		}
	default:
		return false, nil
	}
	// Resumed (or already gone): the waiter is done. Removing after resuming means a crash
	// in between resumes the task twice, which Step Functions answers with TaskTimedOut.
	_, err := r.RemoveWaiter(ctx, w)
	return true, err
}

// taskGone reports whether Step Functions no longer waits for the token: the task timed out,
// was already resumed, or its execution ended.
func taskGone(err error) bool {
	switch cloud.ErrorCode(err) {
	case "TaskTimedOut", "TaskDoesNotExist", "InvalidToken":
		return true
	}
	return false
}
