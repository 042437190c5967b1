package maintenance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	schtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"

	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/release"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/store"
	"github.com/byocloud/byoc/shared/window"
)

// Scheduler is the part of the EventBridge Scheduler client the schedules use.
type Scheduler interface {
	CreateSchedule(ctx context.Context, in *scheduler.CreateScheduleInput, optFns ...func(*scheduler.Options)) (*scheduler.CreateScheduleOutput, error)
	UpdateSchedule(ctx context.Context, in *scheduler.UpdateScheduleInput, optFns ...func(*scheduler.Options)) (*scheduler.UpdateScheduleOutput, error)
	DeleteSchedule(ctx context.Context, in *scheduler.DeleteScheduleInput, optFns ...func(*scheduler.Options)) (*scheduler.DeleteScheduleOutput, error)
}

var _ Scheduler = (*scheduler.Client)(nil)

// Schedules keeps each deployment's one maintenance schedule: a one-time at() in UTC,
// re-armed after every firing. A weekly cron in the customer's zone would be simpler, but
// EventBridge Scheduler silently skips a cron time that does not exist in its zone (a
// 02:30 window on a spring-forward night): the at() of an instant computed by package
// window cannot be skipped.
type Schedules struct {
	Client    Scheduler
	Group     string // the schedule group (contract.EnvScheduleGroup)
	TargetArn string // the maintenance function
	RoleArn   string // the role Scheduler invokes it with
	DLQArn    string // where Scheduler puts a firing it could not deliver
}

// ScheduleEnv are the environment variables that say where the schedules go: every function
// that arms them (provision, maintenance, releases) requires them.
var ScheduleEnv = []string{contract.EnvMaintenanceTargetArn, contract.EnvSchedulerRoleArn, contract.EnvSchedulerDLQArn, contract.EnvScheduleGroup}

// SchedulesFromEnv is the schedules' configuration from ScheduleEnv's values (without a client).
func SchedulesFromEnv(v map[string]string) Schedules {
	return Schedules{Group: v[contract.EnvScheduleGroup], TargetArn: v[contract.EnvMaintenanceTargetArn],
		RoleArn: v[contract.EnvSchedulerRoleArn], DLQArn: v[contract.EnvSchedulerDLQArn]}
}

// Fire is the input a maintenance schedule gives its function.
type Fire struct {
	DeploymentID  string `json:"deploymentId"`
	Purpose       string `json:"purpose"`
	Key           string `json:"key"`
	ScheduledTime string `json:"scheduledTime"` // <aws.scheduler.scheduled-time>
}

// Arm points the deployment's schedule at a: created the first time, updated after.
func (s Schedules) Arm(ctx context.Context, deploymentID string, a store.Arm) error {
	// Scheduler substitutes the literal "<aws.scheduler.scheduled-time>": json.Marshal would
	// escape its angle brackets (\u003c) and the firing would carry the placeholder itself.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(Fire{DeploymentID: deploymentID, Purpose: a.Purpose, Key: a.Key, ScheduledTime: "<aws.scheduler.scheduled-time>"}); err != nil {
		return err
	}
	input := bytes.TrimSpace(buf.Bytes())
	expr := "at(" + a.At.UTC().Format("2006-01-02T15:04:05") + ")"
	target := &schtypes.Target{
		Arn: aws.String(s.TargetArn), RoleArn: aws.String(s.RoleArn), Input: aws.String(string(input)),
		// A window's firing is worth an hour of retries; after that the next arm is set by
		// the sweep of stale arms, and the miss is in the DLQ.
		RetryPolicy: &schtypes.RetryPolicy{MaximumEventAgeInSeconds: aws.Int32(3600), MaximumRetryAttempts: aws.Int32(20)},
	}
	if s.DLQArn != "" {
		target.DeadLetterConfig = &schtypes.DeadLetterConfig{Arn: aws.String(s.DLQArn)}
	}
	desc := fmt.Sprintf("byoc maintenance of %s: %s %s", deploymentID, a.Purpose, a.Key)
	_, err := s.Client.CreateSchedule(ctx, &scheduler.CreateScheduleInput{
		Name: aws.String(deploymentID), GroupName: aws.String(s.Group), Description: aws.String(desc),
		ScheduleExpression: aws.String(expr), ScheduleExpressionTimezone: aws.String("UTC"),
		FlexibleTimeWindow: &schtypes.FlexibleTimeWindow{Mode: schtypes.FlexibleTimeWindowModeOff},
		Target:             target, State: schtypes.ScheduleStateEnabled,
		ActionAfterCompletion: schtypes.ActionAfterCompletionNone,
	})
	var conflict *schtypes.ConflictException
	if errors.As(err, &conflict) {
		_, err = s.Client.UpdateSchedule(ctx, &scheduler.UpdateScheduleInput{
			Name: aws.String(deploymentID), GroupName: aws.String(s.Group), Description: aws.String(desc),
			ScheduleExpression: aws.String(expr), ScheduleExpressionTimezone: aws.String("UTC"),
			FlexibleTimeWindow: &schtypes.FlexibleTimeWindow{Mode: schtypes.FlexibleTimeWindowModeOff},
			Target:             target, State: schtypes.ScheduleStateEnabled,
			ActionAfterCompletion: schtypes.ActionAfterCompletionNone,
		})
	}
	if err != nil {
		return fmt.Errorf("arm the maintenance schedule of %s (%s at %s): %w", deploymentID, a.Purpose, a.At.Format(time.RFC3339), err)
	}
	return nil
}

// Disarm deletes the deployment's schedule (teardown); an absent one is already gone.
func (s Schedules) Disarm(ctx context.Context, deploymentID string) error {
	_, err := s.Client.DeleteSchedule(ctx, &scheduler.DeleteScheduleInput{Name: aws.String(deploymentID), GroupName: aws.String(s.Group)})
	var missing *schtypes.ResourceNotFoundException
	if err != nil && !errors.As(err, &missing) {
		return fmt.Errorf("delete the maintenance schedule of %s: %w", deploymentID, err)
	}
	return nil
}

// Notice is the detail of every BYOC Maintenance event. NoticeID is stable across
// redeliveries (deployment, kind and occurrence or execution): consumers deduplicate on it.
type Notice struct {
	NoticeID     string             `json:"noticeId"`
	DeploymentID string             `json:"deploymentId"`
	CustomerID   string             `json:"customerId,omitempty"`
	Window       *window.Window     `json:"window,omitempty"`
	Occurrence   *window.Occurrence `json:"occurrence,omitempty"`
	StartsAt     *time.Time         `json:"startsAt,omitempty"` // an off-cycle start
	Releases     []NoticeRelease    `json:"releases,omitempty"`
	Steps        []string           `json:"steps,omitempty"`
	Execution    string             `json:"execution,omitempty"`
	Step         string             `json:"step,omitempty"`
	Reason       string             `json:"reason,omitempty"`
}

// NoticeRelease is a release as a notice shows it.
type NoticeRelease struct {
	ID        string     `json:"id"`
	Component string     `json:"component"`
	Version   string     `json:"version"`
	Kind      string     `json:"kind"`
	Severity  string     `json:"severity,omitempty"`
	CVEs      []string   `json:"cves,omitempty"`
	Deadline  *time.Time `json:"deadline,omitempty"`
}

// Releases turns releases into their notice form.
func Releases(rs []release.Release) []NoticeRelease {
	out := make([]NoticeRelease, 0, len(rs))
	for _, r := range rs {
		out = append(out, NoticeRelease{ID: r.ID, Component: r.Component, Version: r.Version, Kind: r.Kind, Severity: r.Severity, CVEs: r.CVEs, Deadline: r.Deadline})
	}
	return out
}

// Publisher puts maintenance notices on the vendor bus.
type Publisher struct {
	Bus     servicestate.EventBus
	BusName string
}

// Publish puts one notice of detailType (contract.DetailTypeMaintenance*).
func (p Publisher) Publish(ctx context.Context, detailType string, n Notice) error {
	detail, err := json.Marshal(n)
	if err != nil {
		return err
	}
	out, err := p.Bus.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{
		EventBusName: aws.String(p.BusName), Source: aws.String(contract.SourceMaintenance),
		DetailType: aws.String(detailType), Detail: aws.String(string(detail)),
	}}})
	if err != nil {
		return fmt.Errorf("put %s of %s: %w", detailType, n.DeploymentID, err)
	}
	if out.FailedEntryCount > 0 {
		return fmt.Errorf("EventBridge refused %s of %s: %s", detailType, n.DeploymentID, aws.ToString(out.Entries[0].ErrorMessage))
	}
	return nil
}
