// Package schedules fires the EventBridge Scheduler schedules that kumo stores but never
// runs: cron, rate and at expressions in the schedule's IANA time zone (with the daylight
// saving rules EventBridge Scheduler documents), StartDate and EndDate, DISABLED state,
// ActionAfterCompletion DELETE, and the <aws.scheduler.*> context attributes in the target
// input. Targets are Lambda (asynchronous invoke), SQS, Step Functions and EventBridge, the
// templated targets byoc uses. Time comes from a clock.Clock, so a demo can run it fast
// and a test can fire a schedule now.
package schedules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	_ "time/tzdata" // every IANA zone, whatever the machine has installed

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	schtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/uuid"

	"github.com/byocloud/byoc/infra/local/eventsources/clock"
)

// Config wires a Firer.
type Config struct {
	AWS aws.Config // kumo's Scheduler store and the targets, through the front door
	// Account owns the schedules: their ARNs name it (kumo's store names its own account).
	Account string
	Clock   clock.Clock // nil: real time
	// Sync is how often (real time) the schedules are read again from the store; 0 means
	// 250 ms. FireNow and Sync read them at once.
	Sync time.Duration
	// Retries is how many times a failed target call is tried again (EventBridge Scheduler
	// retries for up to a day; a local cloud gives up sooner). 0 means 2.
	Retries  int
	Observer func(Firing)
	Logger   *slog.Logger
}

// Firing is one invocation of a schedule's target.
type Firing struct {
	Group, Name   string
	ScheduleArn   string
	Target        string
	ScheduledTime time.Time
	ExecutionID   string
	Attempt       int
	Input         string
	Err           error
}

// Firer runs schedules. Safe for concurrent use.
type Firer struct {
	cfg    Config
	clock  clock.Clock
	store  *scheduler.Client
	lambda *lambda.Client
	sqs    *sqs.Client
	sfn    *sfn.Client
	events *eventbridge.Client
	log    *slog.Logger

	// syncMu serializes Syncs: a Sync that listed the store before a schedule was created
	// must not drop the entry a later Sync loaded meanwhile (its next occurrence would then be
	// recomputed from a clock that may have moved past it, and an at() schedule never fire).
	syncMu  sync.Mutex
	mu      sync.Mutex
	entries map[string]*entry // group/name -> schedule
	wake    chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
	held    atomic.Bool
}

type entry struct {
	s           scheduler.GetScheduleOutput
	expr        Expression
	next        time.Time
	has         bool   // next is set
	fingerprint string // what decides when and how it fires
}

// New returns a firer; Start runs it.
func New(cfg Config) *Firer {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Sync <= 0 {
		cfg.Sync = 250 * time.Millisecond
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 2
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Firer{
		cfg: cfg, clock: cfg.Clock, log: cfg.Logger,
		store: scheduler.NewFromConfig(cfg.AWS), lambda: lambda.NewFromConfig(cfg.AWS), sqs: sqs.NewFromConfig(cfg.AWS),
		sfn: sfn.NewFromConfig(cfg.AWS), events: eventbridge.NewFromConfig(cfg.AWS),
		entries: map[string]*entry{}, wake: make(chan struct{}, 1),
	}
}

// Start runs the firer until Close.
func (f *Firer) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan struct{})
	go f.loop(ctx)
}

// Close stops the firer.
func (f *Firer) Close() {
	if f.cancel != nil {
		f.cancel()
		<-f.done
	}
}

func key(group, name string) string { return group + "/" + name }

// Sync reads the schedules from the store now.
func (f *Firer) Sync(ctx context.Context) error {
	f.syncMu.Lock()
	defer f.syncMu.Unlock()
	var token *string
	seen := map[string]bool{}
	for {
		page, err := f.store.ListSchedules(ctx, &scheduler.ListSchedulesInput{NextToken: token})
		if err != nil {
			return fmt.Errorf("list schedules: %w", err)
		}
		for _, sum := range page.Schedules {
			k := key(aws.ToString(sum.GroupName), aws.ToString(sum.Name))
			seen[k] = true
			// The store's modification dates are whole seconds, too coarse to notice an
			// update: every schedule is read, and only a changed one is recomputed.
			if err := f.load(ctx, aws.ToString(sum.GroupName), aws.ToString(sum.Name)); err != nil {
				f.log.Warn("schedule not run", "schedule", k, "error", err)
			}
		}
		if token = page.NextToken; token == nil {
			break
		}
	}
	f.mu.Lock()
	for k := range f.entries {
		if !seen[k] {
			delete(f.entries, k)
		}
	}
	f.mu.Unlock()
	f.poke()
	return nil
}

// load reads one schedule and, when it is new or changed, computes its next occurrence.
func (f *Firer) load(ctx context.Context, group, name string) error {
	s, err := f.store.GetSchedule(ctx, &scheduler.GetScheduleInput{GroupName: aws.String(group), Name: aws.String(name)})
	if err != nil {
		return err
	}
	print, _ := json.Marshal(struct {
		Expr, Zone, State string
		Start, End        *time.Time
		Target            *schtypes.Target
	}{aws.ToString(s.ScheduleExpression), aws.ToString(s.ScheduleExpressionTimezone), string(s.State), s.StartDate, s.EndDate, s.Target})
	f.mu.Lock()
	old := f.entries[key(group, name)]
	f.mu.Unlock()
	if old != nil && old.fingerprint == string(print) {
		return nil
	}
	loc, err := LoadZone(aws.ToString(s.ScheduleExpressionTimezone))
	if err != nil {
		return err
	}
	// The store stamps CreationDate from the machine's clock, while the firer runs on the
	// cloud's clock, which may be accelerated or manual: carry the schedule's age over, not
	// its wall-clock date, so a schedule created just now starts now in the cloud's time
	// (and an accelerated clock does not replay the occurrences it ran ahead of).
	created := f.clock.Now()
	if stamp := aws.ToTime(s.CreationDate); !stamp.IsZero() {
		if age := time.Since(stamp); age > 0 {
			created = created.Add(-age)
		}
	}
	anchor := created
	if s.StartDate != nil && s.StartDate.After(anchor) {
		anchor = *s.StartDate
	}
	expr, err := Parse(aws.ToString(s.ScheduleExpression), loc, anchor)
	if err != nil {
		return err
	}
	e := &entry{s: *s, expr: expr, fingerprint: string(print)}
	// Occurrences from the schedule's start on; one that passed while the store was not
	// read yet is due at once.
	e.next, e.has = expr.Next(anchor.Add(-time.Nanosecond))
	f.mu.Lock()
	f.entries[key(group, name)] = e
	f.mu.Unlock()
	return nil
}

// arn is a schedule's ARN in its owner's account (Config.Account; kumo's store writes its own).
func (f *Firer) arn(e *entry) string {
	if f.cfg.Account == "" {
		return aws.ToString(e.s.Arn)
	}
	return OwnArn(aws.ToString(e.s.Arn), f.cfg.Account)
}

// Hold stops firing until the returned release is called; occurrences that come due
// meanwhile fire on release, in order. A scenario holds the schedules across a jump of the
// clock, so the data plane reports at the new time before the sweeps look for silence.
func (f *Firer) Hold() (release func()) {
	// The store is read first: a schedule created just before the jump is anchored at its
	// creation in the cloud's time only while the clock has not moved; read after the jump,
	// a one-time at() before the new time would have no occurrence left and never fire.
	if err := f.Sync(context.Background()); err != nil {
		f.log.Warn("schedules not read before the hold", "error", err)
	}
	f.held.Store(true)
	return func() {
		f.held.Store(false)
		f.poke()
	}
}

func (f *Firer) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Next returns a schedule's next occurrence as the firer knows it.
func (f *Firer) Next(group, name string) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.entries[key(group, name)]
	if !ok || !e.has {
		return time.Time{}, false
	}
	return e.next, true
}

func (f *Firer) loop(ctx context.Context) {
	defer close(f.done)
	ticker := time.NewTicker(f.cfg.Sync)
	defer ticker.Stop()
	_ = f.Sync(ctx)
	var wait <-chan time.Time
	var waitFor time.Time
	for {
		due, earliest := f.due()
		if f.held.Load() {
			due, earliest = nil, time.Time{}
		}
		for _, e := range due {
			if f.held.Load() {
				break // held meanwhile (a jump is coming): the rest fires on release
			}
			f.fire(ctx, e, f.latest(e))
		}
		if len(due) > 0 {
			continue
		}
		if !earliest.IsZero() && !earliest.Equal(waitFor) {
			waitFor = earliest
			wait = f.clock.After(earliest.Sub(f.clock.Now()))
		}
		select {
		case <-ctx.Done():
			return
		case <-wait:
			waitFor, wait = time.Time{}, nil
		case <-f.wake:
		case <-ticker.C:
			_ = f.Sync(ctx)
		}
	}
}

// due returns the enabled schedules whose occurrence has come, and the earliest future one.
func (f *Firer) due() ([]*entry, time.Time) {
	now := f.clock.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	var due []*entry
	var earliest time.Time
	for _, e := range f.entries {
		if !e.has || e.s.State == schtypes.ScheduleStateDisabled {
			continue
		}
		if e.s.EndDate != nil && e.next.After(*e.s.EndDate) {
			continue
		}
		if !e.next.After(now) {
			due = append(due, e)
		} else if earliest.IsZero() || e.next.Before(earliest) {
			earliest = e.next
		}
	}
	return due, earliest
}

// latest is the last occurrence of a due schedule that has come: a recurring schedule that
// missed several (the clock jumped) fires once, for the latest, as a catch-up would be
// pointless churn (a sweep for each minute of a skipped week).
func (f *Firer) latest(e *entry) time.Time {
	now := f.clock.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	at := e.next
	for {
		n, ok := e.expr.Next(at)
		if !ok || n.After(now) {
			return at
		}
		at = n
	}
}

// fire invokes a schedule's target for the occurrence at, then moves to the next one; a
// schedule with no further occurrence is complete, and deleted when it asks for that.
func (f *Firer) fire(ctx context.Context, e *entry, at time.Time) Firing {
	first := f.invoke(ctx, e, at)
	f.mu.Lock()
	e.next, e.has = e.expr.Next(at)
	complete := !e.has || (e.s.EndDate != nil && e.next.After(*e.s.EndDate))
	f.mu.Unlock()
	if complete && e.s.ActionAfterCompletion == schtypes.ActionAfterCompletionDelete {
		// Not while a Sync runs: one that read the schedule before the delete would put it
		// back after, and it would fire again.
		f.syncMu.Lock()
		defer f.syncMu.Unlock()
		if _, err := f.store.DeleteSchedule(ctx, &scheduler.DeleteScheduleInput{GroupName: e.s.GroupName, Name: e.s.Name}); err != nil {
			f.log.Warn("schedule complete but not deleted", "schedule", aws.ToString(e.s.Name), "error", err)
		}
		f.mu.Lock()
		delete(f.entries, key(aws.ToString(e.s.GroupName), aws.ToString(e.s.Name)))
		f.mu.Unlock()
	}
	return first
}

// FireNow invokes a schedule's target at once, as if its occurrence had come; its regular
// occurrences are unchanged. It reads the schedule from the store first.
func (f *Firer) FireNow(ctx context.Context, group, name string) (Firing, error) {
	if group == "" {
		group = "default"
	}
	f.syncMu.Lock() // a concurrent Sync's cleanup must not drop the entry loaded here
	err := f.load(ctx, group, name)
	f.syncMu.Unlock()
	if err != nil {
		return Firing{}, fmt.Errorf("fire schedule %s/%s: %w", group, name, err)
	}
	f.mu.Lock()
	e := f.entries[key(group, name)]
	f.mu.Unlock()
	fired := f.invoke(ctx, e, f.clock.Now())
	return fired, fired.Err
}

// invoke calls the target, retrying a failure, and reports every attempt.
func (f *Firer) invoke(ctx context.Context, e *entry, at time.Time) Firing {
	t := e.s.Target
	var fired Firing
	execID := uuid.NewString()
	for attempt := 1; attempt <= f.cfg.Retries+1; attempt++ {
		fired = Firing{
			Group: aws.ToString(e.s.GroupName), Name: aws.ToString(e.s.Name), ScheduleArn: f.arn(e),
			Target: aws.ToString(t.Arn), ScheduledTime: at.UTC().Truncate(time.Second), ExecutionID: execID, Attempt: attempt,
		}
		fired.Input = ContextInput(aws.ToString(t.Input), fired)
		fired.Err = f.call(ctx, t, fired)
		if f.cfg.Observer != nil {
			f.cfg.Observer(fired)
		}
		if fired.Err == nil || ctx.Err() != nil {
			break
		}
		f.log.Warn("schedule target failed", "schedule", fired.Name, "target", fired.Target, "attempt", attempt, "error", fired.Err)
		if limit := retryLimit(t); attempt > limit {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		}
	}
	if fired.Err != nil && t.DeadLetterConfig != nil && aws.ToString(t.DeadLetterConfig.Arn) != "" {
		f.deadLetter(ctx, aws.ToString(t.DeadLetterConfig.Arn), fired)
	}
	return fired
}

func retryLimit(t *schtypes.Target) int {
	if t.RetryPolicy != nil && t.RetryPolicy.MaximumRetryAttempts != nil {
		return int(*t.RetryPolicy.MaximumRetryAttempts)
	}
	return 185
}

// ContextInput fills the context attributes EventBridge Scheduler substitutes in a target's
// input (https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-schedule-context-attributes.html).
func ContextInput(input string, fired Firing) string {
	return strings.NewReplacer(
		"<aws.scheduler.schedule-arn>", fired.ScheduleArn,
		"<aws.scheduler.scheduled-time>", fired.ScheduledTime.UTC().Format(time.RFC3339),
		"<aws.scheduler.execution-id>", fired.ExecutionID,
		"<aws.scheduler.attempt-number>", strconv.Itoa(fired.Attempt),
	).Replace(input)
}

// call invokes one templated target.
func (f *Firer) call(ctx context.Context, t *schtypes.Target, fired Firing) error {
	arn := aws.ToString(t.Arn)
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 {
		return fmt.Errorf("target %q is not an ARN", arn)
	}
	switch parts[2] {
	case "lambda":
		out, err := f.lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(arn), InvocationType: ltypes.InvocationTypeEvent, Payload: []byte(fired.Input)})
		if err == nil && out.StatusCode != 202 {
			err = fmt.Errorf("invoke %s: status %d", arn, out.StatusCode)
		}
		return err
	case "sqs":
		url, err := f.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(parts[5]), QueueOwnerAWSAccountId: aws.String(parts[4])})
		if err != nil {
			return err
		}
		in := &sqs.SendMessageInput{QueueUrl: url.QueueUrl, MessageBody: aws.String(fired.Input)}
		if t.SqsParameters != nil && t.SqsParameters.MessageGroupId != nil {
			in.MessageGroupId = t.SqsParameters.MessageGroupId
			in.MessageDeduplicationId = aws.String(fired.ExecutionID)
		}
		_, err = f.sqs.SendMessage(ctx, in)
		return err
	case "states":
		_, err := f.sfn.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn), Input: aws.String(fired.Input)})
		return err
	case "events":
		if t.EventBridgeParameters == nil {
			return errors.New("an EventBridge target needs EventBridgeParameters (Source, DetailType)")
		}
		out, err := f.events.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{
			EventBusName: aws.String(arn), Source: t.EventBridgeParameters.Source, DetailType: t.EventBridgeParameters.DetailType,
			Detail: aws.String(fired.Input),
		}}})
		if err == nil && out.FailedEntryCount > 0 {
			err = fmt.Errorf("PutEvents: %s", aws.ToString(out.Entries[0].ErrorMessage))
		}
		return err
	}
	return fmt.Errorf("target %s: the local cloud runs Lambda, SQS, Step Functions and EventBridge targets only", arn)
}

// deadLetter sends a failed invocation's input to the target's dead-letter queue, with the
// error attributes EventBridge Scheduler adds.
func (f *Firer) deadLetter(ctx context.Context, queueArn string, fired Firing) {
	parts := strings.SplitN(queueArn, ":", 6)
	if len(parts) != 6 {
		return
	}
	url, err := f.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(parts[5]), QueueOwnerAWSAccountId: aws.String(parts[4])})
	if err != nil {
		f.log.Warn("schedule dead-letter queue missing", "queue", queueArn, "error", err)
		return
	}
	str := func(v string) sqstypes.MessageAttributeValue {
		return sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	_, err = f.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: url.QueueUrl, MessageBody: aws.String(fired.Input),
		MessageAttributes: map[string]sqstypes.MessageAttributeValue{
			"ERROR_MESSAGE": str(fired.Err.Error()), "EXECUTION_ID": str(fired.ExecutionID),
			"SCHEDULE_ARN": str(fired.ScheduleArn), "TARGET_ARN": str(fired.Target),
		}})
	if err != nil {
		f.log.Warn("schedule dead-letter send failed", "queue", queueArn, "error", err)
	}
}
