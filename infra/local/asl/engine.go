package asl

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Engine holds state machines and runs their executions. It is safe for concurrent use.
type Engine struct {
	clock    Clock
	tasks    Tasks
	region   string
	account  string
	observer func(HistoryEvent)
	random   func() float64

	mu         sync.Mutex
	machines   map[string]*StateMachine // by ARN
	executions map[string]*Execution    // by ARN
	byMachine  map[string][]*Execution  // by state machine ARN, in start order
	tokens     map[string]*taskWait
}

// Options configures an Engine. Zero values take the defaults.
type Options struct {
	Tasks     Tasks              // Lambda, SQS and EventBridge; nil: every such task fails with *.SdkClientException
	Clock     Clock              // default SystemClock()
	Region    string             // default us-east-1
	AccountID string             // default 000000000000 (kumo's Lambda account)
	Observer  func(HistoryEvent) // called for every history event, in order; it may read the engine but must not start, stop or answer tasks
	Random    func() float64     // [0,1) for retry jitter; default math/rand
}

// NewEngine makes an engine.
func NewEngine(o Options) *Engine {
	e := &Engine{
		clock: o.Clock, tasks: o.Tasks, region: o.Region, account: o.AccountID,
		observer: o.Observer, random: o.Random,
		machines: map[string]*StateMachine{}, executions: map[string]*Execution{},
		byMachine: map[string][]*Execution{}, tokens: map[string]*taskWait{},
	}
	if e.clock == nil {
		e.clock = SystemClock()
	}
	if e.tasks == nil {
		e.tasks = TaskFuncs{}
	}
	if e.region == "" {
		e.region = "us-east-1"
	}
	if e.account == "" {
		e.account = "000000000000"
	}
	if e.random == nil {
		e.random = mrand.Float64
	}
	return e
}

// Region and AccountID are those the engine puts in ARNs.
func (e *Engine) Region() string    { return e.region }
func (e *Engine) AccountID() string { return e.account }

// API errors carry the Step Functions error code the service answers with.
type APIError struct {
	Code    string
	Message string
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

func apiErr(code, format string, args ...any) *APIError {
	return &APIError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Step Functions API error codes the engine raises.
const (
	CodeStateMachineDoesNotExist     = "StateMachineDoesNotExist"
	CodeStateMachineAlreadyExists    = "StateMachineAlreadyExists"
	CodeStateMachineTypeNotSupported = "StateMachineTypeNotSupported"
	CodeExecutionDoesNotExist        = "ExecutionDoesNotExist"
	CodeExecutionAlreadyExists       = "ExecutionAlreadyExists"
	CodeInvalidArn                   = "InvalidArn"
	CodeInvalidName                  = "InvalidName"
	CodeInvalidDefinition            = "InvalidDefinition"
	CodeInvalidExecutionInput        = "InvalidExecutionInput"
	CodeInvalidOutput                = "InvalidOutput"
	CodeInvalidToken                 = "InvalidToken"
	CodeTaskDoesNotExist             = "TaskDoesNotExist"
	CodeTaskTimedOut                 = "TaskTimedOut"
	CodeValidation                   = "ValidationException"
)

// StateMachine is a created state machine.
type StateMachine struct {
	ARN          string
	Name         string
	Type         string
	RoleARN      string
	Definition   *Definition
	CreationDate time.Time
	UpdateDate   time.Time
	RevisionID   string
	// Metadata is kept for the service (logging and tracing configuration, tags); the engine
	// does not read it.
	Metadata map[string]any
}

// CreateStateMachineInput is what CreateStateMachine needs.
type CreateStateMachineInput struct {
	Name       string
	Definition string
	RoleARN    string
	Type       string // STANDARD (default); EXPRESS is refused
	Metadata   map[string]any
}

// ValidName applies AWS's rules for state machine and execution names.
func ValidName(name string) error {
	if n := utf8.RuneCountInString(name); n < 1 || n > 80 {
		return fmt.Errorf("the name must have 1 to 80 characters")
	}
	for _, r := range name {
		switch {
		case r <= 0x20 || (r >= 0x7f && r <= 0x9f) || r == 0x85 || r == 0xa0:
			return fmt.Errorf("the name must not contain whitespace or control characters")
		case strings.ContainsRune("<>{}[]?*\"#%\\^|~`$&,;:/", r):
			return fmt.Errorf("the name must not contain %q", r)
		}
	}
	return nil
}

func validRoleARN(arn string) bool {
	return strings.HasPrefix(arn, "arn:") && strings.Count(arn, ":") >= 5
}

// CreateStateMachine compiles the definition and registers the machine. Creating the same
// name with the same definition and type again returns the existing machine, as AWS does.
func (e *Engine) CreateStateMachine(in CreateStateMachineInput) (*StateMachine, error) {
	if err := ValidName(in.Name); err != nil {
		return nil, apiErr(CodeInvalidName, "Invalid Name: '%s': %v", in.Name, err)
	}
	typ := in.Type
	if typ == "" {
		typ = "STANDARD"
	}
	switch typ {
	case "STANDARD":
	case "EXPRESS":
		return nil, apiErr(CodeStateMachineTypeNotSupported, "the local engine runs STANDARD state machines only")
	default:
		return nil, apiErr(CodeValidation, "1 validation error detected: Value '%s' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [STANDARD, EXPRESS]", typ)
	}
	if !validRoleARN(in.RoleARN) {
		return nil, apiErr(CodeInvalidArn, "Invalid Arn: 'Resource type not valid in this context: %s'", in.RoleARN)
	}
	def, err := CompileDefinition(in.Definition)
	if err != nil {
		return nil, apiErr(CodeInvalidDefinition, "%v", err)
	}
	arn := e.machineARN(in.Name)
	e.mu.Lock()
	defer e.mu.Unlock()
	if old, exists := e.machines[arn]; exists {
		if old.Definition.source == in.Definition && old.Type == typ {
			c := *old
			return &c, nil
		}
		return nil, apiErr(CodeStateMachineAlreadyExists, "State Machine Already Exists: '%s'", arn)
	}
	now := e.clock.Now()
	m := &StateMachine{ARN: arn, Name: in.Name, Type: typ, RoleARN: in.RoleARN, Definition: def,
		CreationDate: now, UpdateDate: now, RevisionID: newUUID(), Metadata: in.Metadata}
	e.machines[arn] = m
	c := *m
	return &c, nil
}

// UpdateStateMachine replaces the definition and/or role. Running executions keep the
// definition they started with.
func (e *Engine) UpdateStateMachine(arn string, definition, roleARN *string, metadata map[string]any) (*StateMachine, error) {
	if definition == nil && roleARN == nil && metadata == nil {
		return nil, apiErr("MissingRequiredParameter", "Either the definition, the roleArn or the logging/tracing configuration must be specified")
	}
	var def *Definition
	if definition != nil {
		d, err := CompileDefinition(*definition)
		if err != nil {
			return nil, apiErr(CodeInvalidDefinition, "%v", err)
		}
		def = d
	}
	if roleARN != nil && !validRoleARN(*roleARN) {
		return nil, apiErr(CodeInvalidArn, "Invalid Arn: 'Resource type not valid in this context: %s'", *roleARN)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	m, err := e.machineLocked(arn)
	if err != nil {
		return nil, err
	}
	n := *m
	if def != nil {
		n.Definition = def
	}
	if roleARN != nil {
		n.RoleARN = *roleARN
	}
	for k, v := range metadata {
		if n.Metadata == nil {
			n.Metadata = map[string]any{}
		}
		n.Metadata[k] = v
	}
	n.UpdateDate = e.clock.Now()
	n.RevisionID = newUUID()
	e.machines[arn] = &n
	c := n
	return &c, nil
}

// DeleteStateMachine removes a machine. Its executions keep running and stay describable.
func (e *Engine) DeleteStateMachine(arn string) error {
	if err := e.checkMachineARN(arn); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.machines, arn)
	return nil
}

// DescribeStateMachine returns a machine.
func (e *Engine) DescribeStateMachine(arn string) (*StateMachine, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	m, err := e.machineLocked(arn)
	if err != nil {
		return nil, err
	}
	c := *m
	return &c, nil
}

// ListStateMachines returns every machine, by name.
func (e *Engine) ListStateMachines() []StateMachine {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]StateMachine, 0, len(e.machines))
	for _, m := range e.machines {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b StateMachine) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (e *Engine) machineARN(name string) string {
	return fmt.Sprintf("arn:aws:states:%s:%s:stateMachine:%s", e.region, e.account, name)
}

func (e *Engine) checkMachineARN(arn string) error {
	if !strings.HasPrefix(arn, "arn:") || !strings.Contains(arn, ":stateMachine:") {
		return apiErr(CodeInvalidArn, "Invalid Arn: 'Resource type not valid in this context: %s'", arn)
	}
	return nil
}

func (e *Engine) machineLocked(arn string) (*StateMachine, error) {
	if err := e.checkMachineARN(arn); err != nil {
		return nil, err
	}
	m, ok := e.machines[arn]
	if !ok {
		return nil, apiErr(CodeStateMachineDoesNotExist, "State Machine Does Not Exist: '%s'", arn)
	}
	return m, nil
}

// Execution statuses.
const (
	StatusRunning   = "RUNNING"
	StatusSucceeded = "SUCCEEDED"
	StatusFailed    = "FAILED"
	StatusTimedOut  = "TIMED_OUT"
	StatusAborted   = "ABORTED"
)

// Execution is one run of a state machine.
type Execution struct {
	engine  *Engine
	arn     string
	name    string
	machine StateMachine // as it was when the execution started
	input   string
	value   any
	start   time.Time
	parent  *Execution
	ctx     context.Context
	cancel  context.CancelCauseFunc
	done    chan struct{}

	mu        sync.Mutex
	observing sync.Mutex // held while the observer sees an event; keeps events in order
	status    string
	stop      time.Time
	output    string
	errName   string
	cause     string
	history   []HistoryEvent
	lastID    int64
	children  []*Execution
}

// ExecutionInfo describes an execution (DescribeExecution).
type ExecutionInfo struct {
	ARN             string
	StateMachineARN string
	Name            string
	Status          string
	StartDate       time.Time
	StopDate        time.Time // zero while running
	Input           string
	Output          string // set when SUCCEEDED
	Error, Cause    string // set when FAILED, TIMED_OUT or ABORTED
}

func (x *Execution) info() *ExecutionInfo {
	x.mu.Lock()
	defer x.mu.Unlock()
	return &ExecutionInfo{ARN: x.arn, StateMachineARN: x.machine.ARN, Name: x.name, Status: x.status,
		StartDate: x.start, StopDate: x.stop, Input: x.input, Output: x.output, Error: x.errName, Cause: x.cause}
}

// maxPayloadBytes is Step Functions' payload quota (256 KiB) for inputs, outputs and results.
const maxPayloadBytes = 262144

// StartExecution starts a run. Starting again with the same name and input while the first
// run is RUNNING returns it; anything else with a used name is ExecutionAlreadyExists (AWS's
// idempotency for Standard workflows).
func (e *Engine) StartExecution(machineARN, name, input string) (*ExecutionInfo, error) {
	x, err := e.startExecution(machineARN, name, input, nil)
	if err != nil {
		return nil, err
	}
	return x.info(), nil
}

func (e *Engine) startExecution(machineARN, name, input string, parent *Execution) (*Execution, error) {
	if name == "" {
		name = newUUID()
	} else if err := ValidName(name); err != nil {
		return nil, apiErr(CodeInvalidName, "Invalid Name: '%s': %v", name, err)
	}
	if input == "" {
		input = "{}"
	}
	if len(input) > maxPayloadBytes {
		return nil, apiErr(CodeInvalidExecutionInput, "The input is %d bytes; the limit is %d", len(input), maxPayloadBytes)
	}
	value, err := ParseJSON([]byte(input))
	if err != nil {
		return nil, apiErr(CodeInvalidExecutionInput, "Invalid State Machine Execution Input: '%v'", err)
	}
	e.mu.Lock()
	m, err := e.machineLocked(machineARN)
	if err != nil {
		e.mu.Unlock()
		return nil, err
	}
	arn := fmt.Sprintf("arn:aws:states:%s:%s:execution:%s:%s", e.region, e.account, m.Name, name)
	if old, exists := e.executions[arn]; exists {
		e.mu.Unlock()
		info := old.info()
		if info.Status == StatusRunning && info.Input == input {
			return old, nil
		}
		return nil, apiErr(CodeExecutionAlreadyExists, "Execution Already Exists: '%s'", arn)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	x := &Execution{engine: e, arn: arn, name: name, machine: *m, input: input, value: value,
		start: e.clock.Now(), parent: parent, ctx: ctx, cancel: cancel, done: make(chan struct{}), status: StatusRunning}
	e.executions[arn] = x
	e.byMachine[m.ARN] = append(e.byMachine[m.ARN], x)
	e.mu.Unlock()
	if parent != nil {
		parent.mu.Lock()
		parent.children = append(parent.children, x)
		parent.mu.Unlock()
	}
	x.record(HistoryEvent{Type: EventExecutionStarted, ExecutionStartedEventDetails: &ExecutionStartedEventDetails{
		Input: input, InputDetails: notTruncated, RoleArn: m.RoleARN}}, 0)
	go x.run()
	return x, nil
}

// errExecutionTimedOut and errExecutionStopped are why an execution's context ends.
var (
	errExecutionTimedOut = errors.New("execution timed out")
	errExecutionStopped  = errors.New("execution stopped")
)

func (x *Execution) run() {
	defer close(x.done)
	if t := x.machine.Definition.timeoutSeconds; t > 0 {
		timer := x.engine.clock.NewTimer(time.Duration(t) * time.Second)
		defer timer.Stop()
		go func() {
			select {
			case <-timer.C():
				x.finish(StatusTimedOut, "", ErrTimeout, "The execution ran longer than its TimeoutSeconds", errExecutionTimedOut)
			case <-x.ctx.Done():
			}
		}()
	}
	r := &runner{x: x, ctx: x.ctx}
	out, fail := r.runMachine(x.machine.Definition.top, x.value)
	switch {
	case fail != nil && fail.aborted:
		// Stopped or timed out: finish has already recorded why.
	case fail != nil:
		x.finish(StatusFailed, "", fail.Name, fail.Cause, nil)
	default:
		x.finish(StatusSucceeded, MarshalJSON(out), "", "", nil)
	}
}

// finish closes the execution once; later calls (a timeout racing the last state) do nothing.
func (x *Execution) finish(status, output, errName, cause string, stopCause error) bool {
	x.mu.Lock()
	if x.status != StatusRunning {
		x.mu.Unlock()
		return false
	}
	x.status = status
	x.stop = x.engine.clock.Now()
	x.output, x.errName, x.cause = output, errName, cause
	ev := HistoryEvent{}
	switch status {
	case StatusSucceeded:
		ev.Type = EventExecutionSucceeded
		ev.ExecutionSucceededEventDetails = &OutputEventDetails{Output: output, OutputDetails: notTruncated}
	case StatusFailed:
		ev.Type = EventExecutionFailed
		ev.ExecutionFailedEventDetails = &ErrorEventDetails{Error: errName, Cause: cause}
	case StatusTimedOut:
		ev.Type = EventExecutionTimedOut
		ev.ExecutionTimedOutEventDetails = &ErrorEventDetails{Error: errName, Cause: cause}
	case StatusAborted:
		ev.Type = EventExecutionAborted
		ev.ExecutionAbortedEventDetails = &ErrorEventDetails{Error: errName, Cause: cause}
	}
	children := slices.Clone(x.children)
	x.notifyAndUnlock(x.appendLocked(ev, x.lastID))
	if stopCause != nil {
		x.cancel(stopCause)
	} else {
		x.cancel(nil)
	}
	// AWS stops the executions a stopped or timed-out parent started with .sync.
	if status == StatusAborted || status == StatusTimedOut {
		for _, c := range children {
			c.finish(StatusAborted, "", "", "The parent execution ended", errExecutionStopped)
		}
	}
	return true
}

// record appends an event unless the execution has closed, and returns its id (0 if dropped).
func (x *Execution) record(ev HistoryEvent, prev int64) int64 {
	x.mu.Lock()
	if x.status != StatusRunning {
		x.mu.Unlock()
		return 0
	}
	ev = x.appendLocked(ev, prev)
	x.notifyAndUnlock(ev)
	return ev.ID
}

func (x *Execution) appendLocked(ev HistoryEvent, prev int64) HistoryEvent {
	x.lastID++
	ev.ID = x.lastID
	ev.PreviousEventID = prev
	ev.ExecutionArn = x.arn
	ev.Timestamp = x.engine.clock.Now()
	x.history = append(x.history, ev)
	return ev
}

// notifyAndUnlock releases x.mu and passes ev to the observer. The observer lock is taken
// before x.mu is released, so events reach the observer in history order, and the observer
// runs without x.mu, so it may read the execution (DescribeExecution, History).
func (x *Execution) notifyAndUnlock(ev HistoryEvent) {
	if x.engine.observer == nil {
		x.mu.Unlock()
		return
	}
	x.observing.Lock()
	x.mu.Unlock()
	defer x.observing.Unlock()
	x.engine.observer(ev)
}

func (e *Engine) execution(arn string) (*Execution, error) {
	if !strings.HasPrefix(arn, "arn:") || !strings.Contains(arn, ":execution:") {
		return nil, apiErr(CodeInvalidArn, "Invalid Arn: 'Resource type not valid in this context: %s'", arn)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.executions[arn]
	if !ok {
		return nil, apiErr(CodeExecutionDoesNotExist, "Execution Does Not Exist: '%s'", arn)
	}
	return x, nil
}

// DescribeExecution returns an execution's state.
func (e *Engine) DescribeExecution(arn string) (*ExecutionInfo, error) {
	x, err := e.execution(arn)
	if err != nil {
		return nil, err
	}
	return x.info(), nil
}

// ListExecutions returns a machine's executions, newest first, optionally of one status.
func (e *Engine) ListExecutions(machineARN, status string) ([]ExecutionInfo, error) {
	e.mu.Lock()
	if _, err := e.machineLocked(machineARN); err != nil {
		e.mu.Unlock()
		return nil, err
	}
	xs := slices.Clone(e.byMachine[machineARN])
	e.mu.Unlock()
	out := []ExecutionInfo{}
	for i := len(xs) - 1; i >= 0; i-- {
		info := xs[i].info()
		if status == "" || info.Status == status {
			out = append(out, *info)
		}
	}
	return out, nil
}

// StopExecution aborts a running execution.
func (e *Engine) StopExecution(arn, errName, cause string) (time.Time, error) {
	x, err := e.execution(arn)
	if err != nil {
		return time.Time{}, err
	}
	if !x.finish(StatusAborted, "", errName, cause, errExecutionStopped) {
		info := x.info()
		return time.Time{}, apiErr(CodeValidation, "Execution Is Not Running: '%s' is %s", arn, info.Status)
	}
	return x.info().StopDate, nil
}

// History returns an execution's events in order.
func (e *Engine) History(arn string) ([]HistoryEvent, error) {
	x, err := e.execution(arn)
	if err != nil {
		return nil, err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.history), nil
}

// Wait blocks until the execution has closed (or ctx ends) and returns its final state.
func (e *Engine) Wait(ctx context.Context, arn string) (*ExecutionInfo, error) {
	x, err := e.execution(arn)
	if err != nil {
		return nil, err
	}
	select {
	case <-x.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return x.info(), nil
}

// Task tokens. A token is opaque to callers; the engine keeps every token it issued so it can
// tell a malformed token (InvalidToken) from one it never issued (TaskDoesNotExist) and from
// one whose task is over (TaskTimedOut), which is how AWS answers the three cases.

const tokenPrefix = "AQC"

type tokenOutcome struct {
	output any
	fail   *Failure
}

type taskWait struct {
	outcome   chan tokenOutcome // buffered 1
	heartbeat chan struct{}     // buffered 1
	closed    bool
}

func (e *Engine) newTaskToken() (string, *taskWait) {
	var b [48]byte
	_, _ = rand.Read(b[:])
	token := tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	w := &taskWait{outcome: make(chan tokenOutcome, 1), heartbeat: make(chan struct{}, 1)}
	e.mu.Lock()
	e.tokens[token] = w
	e.mu.Unlock()
	return token, w
}

func (e *Engine) closeToken(token string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if w, ok := e.tokens[token]; ok {
		w.closed = true
	}
}

// maxTokenLength is the API's limit on task tokens.
const maxTokenLength = 2048

func (e *Engine) openToken(token string) (*taskWait, error) {
	raw, decodeErr := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(token, tokenPrefix))
	if len(token) == 0 || len(token) > maxTokenLength || !strings.HasPrefix(token, tokenPrefix) || decodeErr != nil || len(raw) != 48 {
		return nil, apiErr(CodeInvalidToken, "Invalid Token: 'The provided token is not valid'")
	}
	w, ok := e.tokens[token]
	if !ok {
		return nil, apiErr(CodeTaskDoesNotExist, "Task Does Not Exist: no task was issued this token")
	}
	if w.closed {
		return nil, apiErr(CodeTaskTimedOut, "Task Timed Out: 'Provided task does not exist anymore'")
	}
	return w, nil
}

// SendTaskSuccess completes a .waitForTaskToken task with output (a JSON document).
func (e *Engine) SendTaskSuccess(token, output string) error {
	v, err := ParseJSON([]byte(output))
	if err != nil {
		return apiErr(CodeInvalidOutput, "Invalid Output: '%v'", err)
	}
	if len(output) > maxPayloadBytes {
		return apiErr(CodeValidation, "The output is %d bytes; the limit is %d", len(output), maxPayloadBytes)
	}
	return e.completeToken(token, tokenOutcome{output: v})
}

// SendTaskFailure fails a .waitForTaskToken task with an error name and cause.
func (e *Engine) SendTaskFailure(token, errName, cause string) error {
	if utf8.RuneCountInString(errName) > 256 {
		return apiErr(CodeValidation, "1 validation error detected: Value at 'error' failed to satisfy constraint: Member must have length less than or equal to 256")
	}
	if utf8.RuneCountInString(cause) > 32768 {
		return apiErr(CodeValidation, "1 validation error detected: Value at 'cause' failed to satisfy constraint: Member must have length less than or equal to 32768")
	}
	return e.completeToken(token, tokenOutcome{fail: &Failure{Name: errName, Cause: cause}})
}

func (e *Engine) completeToken(token string, o tokenOutcome) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	w, err := e.openToken(token)
	if err != nil {
		return err
	}
	w.closed = true
	w.outcome <- o
	return nil
}

// SendTaskHeartbeat tells a waiting task its worker is alive, restarting its heartbeat timer.
func (e *Engine) SendTaskHeartbeat(token string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	w, err := e.openToken(token)
	if err != nil {
		return err
	}
	select {
	case w.heartbeat <- struct{}{}:
	default:
	}
	return nil
}

// UpdateMetadata changes a machine's service metadata (tags, say) in place; unlike
// UpdateStateMachine it leaves the update date and revision alone, as tagging does on AWS.
func (e *Engine) UpdateMetadata(arn string, change func(map[string]any)) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	m, err := e.machineLocked(arn)
	if err != nil {
		return err
	}
	n := *m
	n.Metadata = map[string]any{}
	for k, v := range m.Metadata {
		n.Metadata[k] = v
	}
	change(n.Metadata)
	e.machines[arn] = &n
	return nil
}
