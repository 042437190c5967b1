package asl

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A definition is compiled once, when the state machine is created or updated: every field is
// checked, every path, template and intrinsic function is parsed, and anything this engine
// does not implement is refused with the JSON path of the offending field. Executions then run
// the compiled form and never meet an unparsed string.

// Diagnostic is one problem found in a definition. Codes follow AWS's
// ValidateStateMachineDefinition where AWS has one; UNSUPPORTED_FEATURE is ours, for what AWS
// accepts but this engine does not run.
type Diagnostic struct {
	Severity string `json:"severity"`
	Code     string `json:"code"`
	Message  string `json:"message"`
	Location string `json:"location,omitempty"`
}

func (d Diagnostic) String() string {
	if d.Location == "" {
		return d.Code + ": " + d.Message
	}
	return d.Code + ": " + d.Message + " at " + d.Location
}

// Diagnostic codes.
const (
	CodeInvalidJSON        = "INVALID_JSON_DESCRIPTION"
	CodeSchema             = "SCHEMA_VALIDATION_FAILED"
	CodeMissingTarget      = "MISSING_TRANSITION_TARGET"
	CodeUnreachable        = "UNREACHABLE_STATE"
	CodeDuplicateStateName = "DUPLICATE_STATE_NAME"
	CodeUnsupported        = "UNSUPPORTED_FEATURE"
)

// DefinitionError refuses a definition; it lists every problem found.
type DefinitionError struct {
	Diagnostics []Diagnostic
}

func (e *DefinitionError) Error() string {
	parts := make([]string, len(e.Diagnostics))
	for i, d := range e.Diagnostics {
		parts[i] = d.String()
	}
	return "Invalid State Machine Definition: '" + strings.Join(parts, ", ") + "'"
}

// Definition is a compiled state machine definition.
type Definition struct {
	source         string
	comment        string
	timeoutSeconds int64 // 0: no execution timeout
	top            *machine
}

// Source returns the definition text as it was given.
func (d *Definition) Source() string { return d.source }

type machine struct {
	startAt string
	states  map[string]*state
}

type stateType string

const (
	typePass     stateType = "Pass"
	typeTask     stateType = "Task"
	typeChoice   stateType = "Choice"
	typeWait     stateType = "Wait"
	typeSucceed  stateType = "Succeed"
	typeFail     stateType = "Fail"
	typeParallel stateType = "Parallel"
	typeMap      stateType = "Map"
)

type state struct {
	name string
	typ  stateType
	next string
	end  bool

	inputPath, outputPath *Path
	inputNull, outputNull bool // "InputPath": null and "OutputPath": null select {}
	parameters            *template
	resultSelector        *template
	resultPath            *Path
	resultNull            bool // "ResultPath": null keeps the input as output
	result                any  // Pass
	hasResult             bool

	// Task
	resource           *resource
	timeoutSeconds     int64 // 0: none
	timeoutSecondsPath *Path
	heartbeatSeconds   int64
	heartbeatPath      *Path
	retry              []*retrier
	catch              []*catcher

	// Choice
	choices      []*choiceRule
	defaultState string

	// Wait
	waitSeconds       int64
	hasWaitSeconds    bool
	waitSecondsPath   *Path
	waitTimestamp     time.Time
	hasWaitTimestamp  bool
	waitTimestampPath *Path

	// Fail
	errorName, cause     string
	errorPath, causePath *dynamic

	// Parallel
	branches []*machine

	// Map
	processor          *machine
	itemsPath          *Path
	itemSelector       *template
	maxConcurrency     int64
	maxConcurrencyPath *Path
	toleratedCount     int64
	hasToleratedCount  bool
	toleratedCountPath *Path
	toleratedPercent   float64
	hasToleratedPct    bool
	toleratedPctPath   *Path
}

// dynamic is a value computed from a path or an intrinsic function (ErrorPath, CausePath).
type dynamic struct {
	path *Path
	fn   *intrinsic
	src  string
}

type retrier struct {
	errorEquals    []string
	interval       float64
	maxAttempts    int64
	backoffRate    float64
	maxDelay       float64 // 0: no cap
	jitterFull     bool
	errorEqualsAll bool
}

type catcher struct {
	errorEquals []string
	next        string
	resultPath  *Path
	resultNull  bool
}

// Limits AWS enforces on definitions.
const (
	maxStateNameLength = 80
	maxSeconds         = 99999999
	maxDelaySecondsCap = 31622400
)

// knownErrors are the predefined error names; a States.* name outside this list can never be
// raised, so naming it in ErrorEquals is a mistake worth refusing.
var knownErrors = []string{
	"States.ALL", "States.DataLimitExceeded", "States.ExceedToleratedFailureThreshold",
	"States.HeartbeatTimeout", "States.Http.Socket", "States.IntrinsicFailure",
	"States.ItemReaderFailed", "States.NoChoiceMatched", "States.ParameterPathFailure",
	"States.Permissions", "States.ResultPathMatchFailure", "States.ResultWriterFailed",
	"States.Runtime", "States.TaskFailed", "States.Timeout", "States.BranchFailed",
	"States.QueryEvaluationError",
}

type compiler struct {
	diags []Diagnostic
	names map[string]string // state name -> where it was first defined
}

func ptr(base string, key string) string {
	key = strings.ReplaceAll(key, "~", "~0")
	key = strings.ReplaceAll(key, "/", "~1")
	return base + "/" + key
}

func ptrIdx(base string, i int) string { return base + "/" + strconv.Itoa(i) }

func (c *compiler) add(code, at, format string, args ...any) {
	loc := at
	if loc == "" {
		loc = "/"
	}
	c.diags = append(c.diags, Diagnostic{Severity: "ERROR", Code: code, Message: fmt.Sprintf(format, args...), Location: loc})
}

func (c *compiler) schema(at, format string, args ...any) {
	c.add(CodeSchema, at, format, args...)
}

func (c *compiler) unsupported(at, format string, args ...any) {
	c.add(CodeUnsupported, at, format, args...)
}

// ValidateDefinition returns every problem in a definition; none means it can be created.
func ValidateDefinition(src string) []Diagnostic {
	_, err := CompileDefinition(src)
	if err == nil {
		return nil
	}
	return err.(*DefinitionError).Diagnostics
}

// CompileDefinition validates and compiles a JSONPath Amazon States Language definition.
func CompileDefinition(src string) (*Definition, error) {
	c := &compiler{names: map[string]string{}}
	doc, err := ParseJSON([]byte(src))
	if err != nil {
		c.add(CodeInvalidJSON, "", "%v", err)
		return nil, &DefinitionError{c.diags}
	}
	root, ok := doc.(*Object)
	if !ok {
		c.add(CodeInvalidJSON, "", "the definition must be a JSON object, not %s", typeName(doc))
		return nil, &DefinitionError{c.diags}
	}
	def := &Definition{source: src}
	c.allowed(root, "", "the state machine", "Comment", "StartAt", "States", "TimeoutSeconds", "Version", "QueryLanguage")
	c.queryLanguage(root, "")
	def.comment, _ = c.str(root, "Comment", "", false)
	if v, ok := c.str(root, "Version", "", false); ok && v != "1.0" {
		c.schema(ptr("", "Version"), "The field \"Version\" must be \"1.0\"")
	}
	if n, ok := c.integer(root, "TimeoutSeconds", "", 1, maxSeconds); ok {
		def.timeoutSeconds = n
	}
	def.top = c.machine(root, "")
	if len(c.diags) > 0 {
		return nil, &DefinitionError{c.diags}
	}
	return def, nil
}

func (c *compiler) queryLanguage(o *Object, at string) {
	if v, ok := o.Get("QueryLanguage"); ok {
		switch v {
		case "JSONPath":
		case "JSONata":
			c.unsupported(ptr(at, "QueryLanguage"), "The JSONata query language is not implemented by the local engine; use JSONPath")
		default:
			c.schema(ptr(at, "QueryLanguage"), "The field \"QueryLanguage\" must be \"JSONPath\" or \"JSONata\"")
		}
	}
}

// allowed reports members that this object may not have.
func (c *compiler) allowed(o *Object, at, what string, fields ...string) {
	for _, m := range o.Members() {
		if slices.Contains(fields, m.Key) {
			continue
		}
		switch m.Key {
		case "Assign":
			c.unsupported(ptr(at, m.Key), "Workflow variables (\"Assign\") are not implemented by the local engine")
		case "Arguments", "Output", "Items":
			c.unsupported(ptr(at, m.Key), "The field %q belongs to the JSONata query language, which the local engine does not implement", m.Key)
		case "Credentials":
			c.unsupported(ptr(at, m.Key), "Cross-account task credentials are not implemented by the local engine")
		case "ItemReader", "ItemBatcher", "ResultWriter", "Label":
			c.unsupported(ptr(at, m.Key), "The field %q belongs to Distributed Map, which the local engine does not implement", m.Key)
		default:
			c.schema(ptr(at, m.Key), "The field %q is not supported for %s", m.Key, what)
		}
	}
}

func (c *compiler) str(o *Object, key, at string, required bool) (string, bool) {
	v, ok := o.Get(key)
	if !ok {
		if required {
			c.schema(ptr(at, key), "The field %q is required", key)
		}
		return "", false
	}
	s, isStr := v.(string)
	if !isStr {
		c.schema(ptr(at, key), "The field %q must be a string, not %s", key, typeName(v))
		return "", false
	}
	return s, true
}

func (c *compiler) integer(o *Object, key, at string, lo, hi int64) (int64, bool) {
	v, ok := o.Get(key)
	if !ok {
		return 0, false
	}
	n, isNum := v.(Number)
	i, err := strconv.ParseInt(string(n), 10, 64)
	if !isNum || err != nil {
		c.schema(ptr(at, key), "The field %q must be an integer, not %s", key, MarshalJSON(v))
		return 0, false
	}
	if i < lo || i > hi {
		c.schema(ptr(at, key), "The field %q must be between %d and %d, not %d", key, lo, hi, i)
		return 0, false
	}
	return i, true
}

func (c *compiler) number(o *Object, key, at string, lo, hi float64) (float64, bool) {
	v, ok := o.Get(key)
	if !ok {
		return 0, false
	}
	n, isNum := v.(Number)
	if !isNum {
		c.schema(ptr(at, key), "The field %q must be a number, not %s", key, typeName(v))
		return 0, false
	}
	f := n.Float()
	if f < lo || f > hi {
		c.schema(ptr(at, key), "The field %q must be between %v and %v, not %s", key, lo, hi, n)
		return 0, false
	}
	return f, true
}

func (c *compiler) boolean(o *Object, key, at string) (bool, bool) {
	v, ok := o.Get(key)
	if !ok {
		return false, false
	}
	b, isBool := v.(bool)
	if !isBool {
		c.schema(ptr(at, key), "The field %q must be a boolean, not %s", key, typeName(v))
		return false, false
	}
	return b, true
}

// pathField compiles a path-valued field. nullable fields report null separately.
type pathRules struct {
	reference bool // only names and indexes (ResultPath, timing paths)
	context   bool // may read the context object ($$)
	nullable  bool
}

func (c *compiler) path(o *Object, key, at string, rules pathRules) (p *Path, isNull bool) {
	v, ok := o.Get(key)
	if !ok {
		return nil, false
	}
	if v == nil {
		if rules.nullable {
			return nil, true
		}
		c.schema(ptr(at, key), "The field %q must not be null", key)
		return nil, false
	}
	s, isStr := v.(string)
	if !isStr {
		c.schema(ptr(at, key), "The field %q must be a JSONPath string, not %s", key, typeName(v))
		return nil, false
	}
	return c.compilePath(s, ptr(at, key), key, rules), false
}

func (c *compiler) compilePath(s, at, key string, rules pathRules) *Path {
	p, err := CompilePath(s)
	if err != nil {
		c.schema(at, "The value for the field %q must be a valid JSONPath: %v", key, err)
		return nil
	}
	if p.context && !rules.context {
		c.schema(at, "The field %q cannot read the context object ($$)", key)
		return nil
	}
	if rules.reference && !p.IsReference() {
		c.schema(at, "The value for the field %q must be a reference path (names and single indexes only), not %q", key, s)
		return nil
	}
	return p
}

func (c *compiler) machine(o *Object, at string) *machine {
	m := &machine{states: map[string]*state{}}
	m.startAt, _ = c.str(o, "StartAt", at, true)
	sv, ok := o.Get("States")
	if !ok {
		c.schema(ptr(at, "States"), "The field \"States\" is required")
		return m
	}
	states, isObj := sv.(*Object)
	if !isObj || states.Len() == 0 {
		c.schema(ptr(at, "States"), "The field \"States\" must be a non-empty object")
		return m
	}
	statesAt := ptr(at, "States")
	order := []string{}
	for _, member := range states.Members() {
		sat := ptr(statesAt, member.Key)
		name := member.Key
		if prev, dup := c.names[name]; dup {
			c.add(CodeDuplicateStateName, sat, "The state name %q is already used at %s; state names must be unique in the whole state machine", name, prev)
		} else {
			c.names[name] = sat
		}
		if len([]rune(name)) > maxStateNameLength || name == "" {
			c.schema(sat, "A state name must have 1 to %d characters", maxStateNameLength)
		}
		so, isObj := member.Value.(*Object)
		if !isObj {
			c.schema(sat, "A state must be a JSON object, not %s", typeName(member.Value))
			continue
		}
		if st := c.state(name, so, sat); st != nil {
			m.states[name] = st
			order = append(order, name)
		}
	}
	if m.startAt != "" {
		if _, ok := m.states[m.startAt]; !ok && states.Len() == len(order) {
			c.add(CodeMissingTarget, ptr(at, "StartAt"), "The field \"StartAt\" names %q, which is not a state of this machine", m.startAt)
		}
	}
	c.checkTransitions(m, statesAt, order)
	return m
}

// checkTransitions makes sure every target exists and every state can be reached.
func (c *compiler) checkTransitions(m *machine, statesAt string, order []string) {
	exists := func(name string) bool { _, ok := m.states[name]; return ok }
	for _, name := range order {
		st := m.states[name]
		sat := ptr(statesAt, name)
		if st.next != "" && !exists(st.next) {
			c.add(CodeMissingTarget, ptr(sat, "Next"), "Missing 'Next' target: %q is not a state of this machine", st.next)
		}
		if st.defaultState != "" && !exists(st.defaultState) {
			c.add(CodeMissingTarget, ptr(sat, "Default"), "Missing 'Default' target: %q is not a state of this machine", st.defaultState)
		}
		for i, r := range st.choices {
			if r.next != "" && !exists(r.next) {
				c.add(CodeMissingTarget, ptr(ptrIdx(ptr(sat, "Choices"), i), "Next"), "Missing 'Next' target: %q is not a state of this machine", r.next)
			}
		}
		for i, k := range st.catch {
			if k.next != "" && !exists(k.next) {
				c.add(CodeMissingTarget, ptr(ptrIdx(ptr(sat, "Catch"), i), "Next"), "Missing 'Next' target: %q is not a state of this machine", k.next)
			}
		}
	}
	if !exists(m.startAt) {
		return
	}
	seen := map[string]bool{}
	queue := []string{m.startAt}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if seen[name] || !exists(name) {
			continue
		}
		seen[name] = true
		st := m.states[name]
		queue = append(queue, st.next, st.defaultState)
		for _, r := range st.choices {
			queue = append(queue, r.next)
		}
		for _, k := range st.catch {
			queue = append(queue, k.next)
		}
	}
	for _, name := range order {
		if !seen[name] {
			c.add(CodeUnreachable, ptr(statesAt, name), "The state %q cannot be reached from %q", name, m.startAt)
		}
	}
}

var stateFields = map[stateType][]string{
	typePass:     {"Next", "End", "InputPath", "OutputPath", "Parameters", "ResultPath", "Result"},
	typeTask:     {"Next", "End", "InputPath", "OutputPath", "Parameters", "ResultSelector", "ResultPath", "Resource", "TimeoutSeconds", "TimeoutSecondsPath", "HeartbeatSeconds", "HeartbeatSecondsPath", "Retry", "Catch"},
	typeChoice:   {"InputPath", "OutputPath", "Choices", "Default"},
	typeWait:     {"Next", "End", "InputPath", "OutputPath", "Seconds", "SecondsPath", "Timestamp", "TimestampPath"},
	typeSucceed:  {"InputPath", "OutputPath"},
	typeFail:     {"Error", "ErrorPath", "Cause", "CausePath"},
	typeParallel: {"Next", "End", "InputPath", "OutputPath", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch", "Branches"},
	typeMap: {"Next", "End", "InputPath", "OutputPath", "Parameters", "ItemSelector", "ResultSelector", "ResultPath", "Retry", "Catch",
		"ItemsPath", "MaxConcurrency", "MaxConcurrencyPath", "Iterator", "ItemProcessor",
		"ToleratedFailureCount", "ToleratedFailureCountPath", "ToleratedFailurePercentage", "ToleratedFailurePercentagePath"},
}

func (c *compiler) state(name string, o *Object, at string) *state {
	typ, ok := c.str(o, "Type", at, true)
	if !ok {
		return nil
	}
	st := &state{name: name, typ: stateType(typ)}
	fields, known := stateFields[st.typ]
	if !known {
		c.schema(ptr(at, "Type"), "The field \"Type\" must be one of Pass, Task, Choice, Wait, Succeed, Fail, Parallel, Map, not %q", typ)
		return nil
	}
	c.allowed(o, at, "a "+typ+" state", append([]string{"Type", "Comment", "QueryLanguage"}, fields...)...)
	c.queryLanguage(o, at)
	c.str(o, "Comment", at, false)

	// Transitions.
	switch st.typ {
	case typeChoice, typeSucceed, typeFail:
	default:
		next, hasNext := c.str(o, "Next", at, false)
		end, hasEnd := c.boolean(o, "End", at)
		switch {
		case hasNext && hasEnd && end:
			c.schema(at, "A state must not have both \"Next\" and \"End\": true")
		case hasNext:
			st.next = next
		case hasEnd && end:
			st.end = true
		default:
			c.schema(at, "A %s state must have \"Next\" or \"End\": true", typ)
		}
	}

	// Input and output processing.
	if st.typ != typeFail {
		ctxRules := pathRules{context: false, nullable: true}
		st.inputPath, st.inputNull = c.path(o, "InputPath", at, ctxRules)
		st.outputPath, st.outputNull = c.path(o, "OutputPath", at, ctxRules)
	}
	if v, ok := o.Get("Parameters"); ok {
		st.parameters = c.template(v, ptr(at, "Parameters"), "Parameters")
	}
	if v, ok := o.Get("ResultSelector"); ok {
		st.resultSelector = c.template(v, ptr(at, "ResultSelector"), "ResultSelector")
	}
	st.resultPath, st.resultNull = c.path(o, "ResultPath", at, pathRules{reference: true, nullable: true})

	switch st.typ {
	case typePass:
		if v, ok := o.Get("Result"); ok {
			st.result, st.hasResult = v, true
		}
	case typeTask:
		c.task(st, o, at)
	case typeChoice:
		c.choice(st, o, at)
	case typeWait:
		c.wait(st, o, at)
	case typeFail:
		c.fail(st, o, at)
	case typeParallel:
		c.parallel(st, o, at)
	case typeMap:
		c.mapState(st, o, at)
	}
	if st.typ == typeTask || st.typ == typeParallel || st.typ == typeMap {
		st.retry = c.retriers(o, at)
		st.catch = c.catchers(o, at)
	}
	return st
}

func (c *compiler) task(st *state, o *Object, at string) {
	arn, ok := c.str(o, "Resource", at, true)
	if ok {
		st.resource = c.resource(arn, ptr(at, "Resource"))
	}
	if n, ok := c.integer(o, "TimeoutSeconds", at, 1, maxSeconds); ok {
		st.timeoutSeconds = n
	}
	st.timeoutSecondsPath, _ = c.path(o, "TimeoutSecondsPath", at, pathRules{reference: true})
	if st.timeoutSeconds > 0 && st.timeoutSecondsPath != nil {
		c.schema(at, "A Task state must not have both \"TimeoutSeconds\" and \"TimeoutSecondsPath\"")
	}
	if n, ok := c.integer(o, "HeartbeatSeconds", at, 1, maxSeconds); ok {
		st.heartbeatSeconds = n
	}
	st.heartbeatPath, _ = c.path(o, "HeartbeatSecondsPath", at, pathRules{reference: true})
	if st.heartbeatSeconds > 0 && st.heartbeatPath != nil {
		c.schema(at, "A Task state must not have both \"HeartbeatSeconds\" and \"HeartbeatSecondsPath\"")
	}
	if st.heartbeatSeconds > 0 && st.timeoutSeconds > 0 && st.heartbeatSeconds >= st.timeoutSeconds {
		c.schema(ptr(at, "HeartbeatSeconds"), "\"HeartbeatSeconds\" (%d) must be smaller than \"TimeoutSeconds\" (%d)", st.heartbeatSeconds, st.timeoutSeconds)
	}
	hasHeartbeat := st.heartbeatSeconds > 0 || st.heartbeatPath != nil
	if st.resource != nil {
		if hasHeartbeat && st.resource.pattern != patternToken {
			c.unsupported(at, "Heartbeats can only be sent to .waitForTaskToken tasks (SendTaskHeartbeat); the local engine does not run \"HeartbeatSeconds\" on %s", st.resource.arn)
		}
		c.taskParameters(st, o, at)
	}
}

func (c *compiler) choice(st *state, o *Object, at string) {
	st.defaultState, _ = c.str(o, "Default", at, false)
	v, ok := o.Get("Choices")
	if !ok {
		c.schema(ptr(at, "Choices"), "The field \"Choices\" is required")
		return
	}
	arr, isArr := v.([]any)
	if !isArr || len(arr) == 0 {
		c.schema(ptr(at, "Choices"), "The field \"Choices\" must be a non-empty array")
		return
	}
	for i, e := range arr {
		if r := c.choiceRule(e, ptrIdx(ptr(at, "Choices"), i), true); r != nil {
			st.choices = append(st.choices, r)
		}
	}
}

func (c *compiler) wait(st *state, o *Object, at string) {
	count := 0
	if n, ok := c.integer(o, "Seconds", at, 0, maxSeconds); ok {
		st.waitSeconds, st.hasWaitSeconds = n, true
		count++
	} else if _, present := o.Get("Seconds"); present {
		count++
	}
	if p, _ := c.path(o, "SecondsPath", at, pathRules{reference: true, context: true}); p != nil {
		st.waitSecondsPath = p
		count++
	}
	if s, ok := c.str(o, "Timestamp", at, false); ok {
		t, err := parseTimestamp(s)
		if err != nil {
			c.schema(ptr(at, "Timestamp"), "The field \"Timestamp\" must be an RFC 3339 timestamp with an uppercase T and Z (like 2016-03-14T01:59:00Z), not %q", s)
		}
		st.waitTimestamp, st.hasWaitTimestamp = t, true
		count++
	}
	if p, _ := c.path(o, "TimestampPath", at, pathRules{reference: true, context: true}); p != nil {
		st.waitTimestampPath = p
		count++
	}
	if count != 1 {
		c.schema(at, "A Wait state must have exactly one of \"Seconds\", \"SecondsPath\", \"Timestamp\", \"TimestampPath\"")
	}
}

func (c *compiler) fail(st *state, o *Object, at string) {
	st.errorName, _ = c.str(o, "Error", at, false)
	st.cause, _ = c.str(o, "Cause", at, false)
	st.errorPath = c.dynamicField(o, "ErrorPath", at)
	st.causePath = c.dynamicField(o, "CausePath", at)
	if _, has := o.Get("Error"); has && st.errorPath != nil {
		c.schema(at, "A Fail state must not have both \"Error\" and \"ErrorPath\"")
	}
	if _, has := o.Get("Cause"); has && st.causePath != nil {
		c.schema(at, "A Fail state must not have both \"Cause\" and \"CausePath\"")
	}
}

func (c *compiler) dynamicField(o *Object, key, at string) *dynamic {
	s, ok := c.str(o, key, at, false)
	if !ok {
		return nil
	}
	if looksLikeIntrinsic(s) {
		fn, err := compileIntrinsic(s)
		if err != nil {
			c.schema(ptr(at, key), "%v", err)
			return nil
		}
		return &dynamic{fn: fn, src: s}
	}
	p := c.compilePath(s, ptr(at, key), key, pathRules{context: true})
	if p == nil {
		return nil
	}
	return &dynamic{path: p, src: s}
}

func (c *compiler) parallel(st *state, o *Object, at string) {
	v, ok := o.Get("Branches")
	if !ok {
		c.schema(ptr(at, "Branches"), "The field \"Branches\" is required")
		return
	}
	arr, isArr := v.([]any)
	if !isArr || len(arr) == 0 {
		c.schema(ptr(at, "Branches"), "The field \"Branches\" must be a non-empty array")
		return
	}
	for i, b := range arr {
		bat := ptrIdx(ptr(at, "Branches"), i)
		bo, isObj := b.(*Object)
		if !isObj {
			c.schema(bat, "A branch must be a JSON object")
			continue
		}
		c.allowed(bo, bat, "a branch", "StartAt", "States", "Comment")
		st.branches = append(st.branches, c.machine(bo, bat))
	}
}

func (c *compiler) mapState(st *state, o *Object, at string) {
	_, hasIterator := o.Get("Iterator")
	_, hasProcessor := o.Get("ItemProcessor")
	switch {
	case hasIterator && hasProcessor:
		c.schema(at, "A Map state must not have both \"Iterator\" and \"ItemProcessor\"")
	case hasProcessor:
		v, _ := o.Get("ItemProcessor")
		pat := ptr(at, "ItemProcessor")
		po, isObj := v.(*Object)
		if !isObj {
			c.schema(pat, "The field \"ItemProcessor\" must be a JSON object")
			break
		}
		c.allowed(po, pat, "an ItemProcessor", "StartAt", "States", "Comment", "ProcessorConfig")
		if cv, ok := po.Get("ProcessorConfig"); ok {
			cat := ptr(pat, "ProcessorConfig")
			co, isObj := cv.(*Object)
			if !isObj {
				c.schema(cat, "The field \"ProcessorConfig\" must be a JSON object")
			} else {
				c.allowed(co, cat, "a ProcessorConfig", "Mode", "ExecutionType")
				if mode, ok := c.str(co, "Mode", cat, false); ok {
					switch mode {
					case "INLINE":
					case "DISTRIBUTED":
						c.unsupported(ptr(cat, "Mode"), "Distributed Map is not implemented by the local engine; use \"Mode\": \"INLINE\"")
					default:
						c.schema(ptr(cat, "Mode"), "The field \"Mode\" must be INLINE or DISTRIBUTED, not %q", mode)
					}
				}
				if _, ok := co.Get("ExecutionType"); ok {
					c.unsupported(ptr(cat, "ExecutionType"), "\"ExecutionType\" belongs to Distributed Map, which the local engine does not implement")
				}
			}
		}
		st.processor = c.machine(po, pat)
	case hasIterator:
		v, _ := o.Get("Iterator")
		iat := ptr(at, "Iterator")
		io, isObj := v.(*Object)
		if !isObj {
			c.schema(iat, "The field \"Iterator\" must be a JSON object")
			break
		}
		c.allowed(io, iat, "an Iterator", "StartAt", "States", "Comment")
		st.processor = c.machine(io, iat)
	default:
		c.schema(at, "A Map state must have \"ItemProcessor\" (or the older \"Iterator\")")
	}
	st.itemsPath, _ = c.path(o, "ItemsPath", at, pathRules{reference: true, context: true})
	if v, ok := o.Get("ItemSelector"); ok {
		if st.parameters != nil {
			c.schema(at, "A Map state must not have both \"ItemSelector\" and \"Parameters\"")
		}
		st.itemSelector = c.template(v, ptr(at, "ItemSelector"), "ItemSelector")
	} else if st.parameters != nil {
		// In a Map state the older "Parameters" field is what "ItemSelector" now is.
		st.itemSelector, st.parameters = st.parameters, nil
	}
	if n, ok := c.integer(o, "MaxConcurrency", at, 0, maxSeconds); ok {
		st.maxConcurrency = n
	}
	st.maxConcurrencyPath, _ = c.path(o, "MaxConcurrencyPath", at, pathRules{reference: true})
	if _, has := o.Get("MaxConcurrency"); has && st.maxConcurrencyPath != nil {
		c.schema(at, "A Map state must not have both \"MaxConcurrency\" and \"MaxConcurrencyPath\"")
	}
	if n, ok := c.integer(o, "ToleratedFailureCount", at, 0, maxSeconds); ok {
		st.toleratedCount, st.hasToleratedCount = n, true
	}
	st.toleratedCountPath, _ = c.path(o, "ToleratedFailureCountPath", at, pathRules{reference: true})
	if st.hasToleratedCount && st.toleratedCountPath != nil {
		c.schema(at, "A Map state must not have both \"ToleratedFailureCount\" and \"ToleratedFailureCountPath\"")
	}
	if f, ok := c.number(o, "ToleratedFailurePercentage", at, 0, 100); ok {
		st.toleratedPercent, st.hasToleratedPct = f, true
	}
	st.toleratedPctPath, _ = c.path(o, "ToleratedFailurePercentagePath", at, pathRules{reference: true})
	if st.hasToleratedPct && st.toleratedPctPath != nil {
		c.schema(at, "A Map state must not have both \"ToleratedFailurePercentage\" and \"ToleratedFailurePercentagePath\"")
	}
}

func (c *compiler) errorEquals(o *Object, at string) ([]string, bool) {
	v, ok := o.Get("ErrorEquals")
	if !ok {
		c.schema(ptr(at, "ErrorEquals"), "The field \"ErrorEquals\" is required")
		return nil, false
	}
	arr, isArr := v.([]any)
	if !isArr || len(arr) == 0 {
		c.schema(ptr(at, "ErrorEquals"), "The field \"ErrorEquals\" must be a non-empty array of error names")
		return nil, false
	}
	names := make([]string, 0, len(arr))
	all := false
	for i, e := range arr {
		s, isStr := e.(string)
		if !isStr {
			c.schema(ptrIdx(ptr(at, "ErrorEquals"), i), "An error name must be a string")
			continue
		}
		if strings.HasPrefix(s, "States.") && !slices.Contains(knownErrors, s) {
			c.schema(ptrIdx(ptr(at, "ErrorEquals"), i), "%q is not a predefined error name", s)
		}
		if s == ErrAll {
			all = true
		}
		names = append(names, s)
	}
	if all && len(arr) > 1 {
		c.schema(ptr(at, "ErrorEquals"), "\"States.ALL\" must appear alone in \"ErrorEquals\"")
	}
	return names, all
}

func (c *compiler) retriers(o *Object, at string) []*retrier {
	v, ok := o.Get("Retry")
	if !ok {
		return nil
	}
	rat := ptr(at, "Retry")
	arr, isArr := v.([]any)
	if !isArr {
		c.schema(rat, "The field \"Retry\" must be an array")
		return nil
	}
	var out []*retrier
	for i, e := range arr {
		eat := ptrIdx(rat, i)
		ro, isObj := e.(*Object)
		if !isObj {
			c.schema(eat, "A retrier must be a JSON object")
			continue
		}
		c.allowed(ro, eat, "a retrier", "ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds", "JitterStrategy", "Comment")
		r := &retrier{interval: 1, maxAttempts: 3, backoffRate: 2}
		r.errorEquals, r.errorEqualsAll = c.errorEquals(ro, eat)
		if r.errorEqualsAll && i != len(arr)-1 {
			c.schema(eat, "A retrier with \"States.ALL\" must be the last retrier")
		}
		if n, ok := c.integer(ro, "IntervalSeconds", eat, 1, maxSeconds); ok {
			r.interval = float64(n)
		}
		if n, ok := c.integer(ro, "MaxAttempts", eat, 0, maxSeconds); ok {
			r.maxAttempts = n
		}
		if f, ok := c.number(ro, "BackoffRate", eat, 1, 1e9); ok {
			r.backoffRate = f
		}
		if n, ok := c.integer(ro, "MaxDelaySeconds", eat, 1, maxDelaySecondsCap); ok {
			r.maxDelay = float64(n)
		}
		if s, ok := c.str(ro, "JitterStrategy", eat, false); ok {
			switch s {
			case "FULL":
				r.jitterFull = true
			case "NONE":
			default:
				c.schema(ptr(eat, "JitterStrategy"), "The field \"JitterStrategy\" must be FULL or NONE, not %q", s)
			}
		}
		out = append(out, r)
	}
	return out
}

func (c *compiler) catchers(o *Object, at string) []*catcher {
	v, ok := o.Get("Catch")
	if !ok {
		return nil
	}
	cat := ptr(at, "Catch")
	arr, isArr := v.([]any)
	if !isArr {
		c.schema(cat, "The field \"Catch\" must be an array")
		return nil
	}
	var out []*catcher
	for i, e := range arr {
		eat := ptrIdx(cat, i)
		co, isObj := e.(*Object)
		if !isObj {
			c.schema(eat, "A catcher must be a JSON object")
			continue
		}
		c.allowed(co, eat, "a catcher", "ErrorEquals", "Next", "ResultPath", "Comment")
		k := &catcher{}
		var all bool
		k.errorEquals, all = c.errorEquals(co, eat)
		if all && i != len(arr)-1 {
			c.schema(eat, "A catcher with \"States.ALL\" must be the last catcher")
		}
		k.next, _ = c.str(co, "Next", eat, true)
		k.resultPath, k.resultNull = c.path(co, "ResultPath", eat, pathRules{reference: true, nullable: true})
		out = append(out, k)
	}
	return out
}

// parseTimestamp accepts what Step Functions accepts: RFC 3339 with an uppercase T and an
// uppercase Z (or a numeric offset).
func parseTimestamp(s string) (time.Time, error) {
	if len(s) < 20 || s[10] != 'T' || strings.ContainsAny(s, "tz") {
		return time.Time{}, fmt.Errorf("not an RFC 3339 timestamp")
	}
	return time.Parse(time.RFC3339Nano, s)
}
