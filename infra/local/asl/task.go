package asl

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// defaultTaskTimeout is AWS's TimeoutSeconds when a Task state sets none.
const defaultTaskTimeout = maxSeconds

// taskScope guards one task attempt's history: the call runs on its own goroutine, and once the
// attempt has ended (timeout, abort) nothing the call does afterwards may reach the history.
type taskScope struct {
	sc     *stateCtx
	mu     sync.Mutex
	closed bool
}

func (ts *taskScope) event(ev HistoryEvent) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if !ts.closed {
		ts.sc.r.event(ev)
	}
}

// close ends the scope; it reports false if it was already closed.
func (ts *taskScope) close(final *HistoryEvent) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.closed {
		return false
	}
	ts.closed = true
	if final != nil {
		ts.sc.r.event(*final)
	}
	return true
}

func (sc *stateCtx) task(input any) (any, *Failure) {
	st := sc.st
	e := sc.r.x.engine
	eff, f := sc.inputPath(input)
	if f != nil {
		return nil, f
	}
	var wait *taskWait
	if st.resource.pattern == patternToken {
		sc.token, wait = e.newTaskToken()
		sc.ctxObj = nil
		defer e.closeToken(sc.token)
	}
	params := eff
	if st.parameters != nil {
		if params, f = sc.applyTemplate(st.parameters, eff); f != nil {
			return nil, f
		}
	}
	timeout := int64(defaultTaskTimeout)
	explicitTimeout := st.timeoutSeconds > 0 || st.timeoutSecondsPath != nil
	if st.timeoutSeconds > 0 {
		timeout = st.timeoutSeconds
	}
	if st.timeoutSecondsPath != nil {
		if timeout, f = sc.positiveInt(st.timeoutSecondsPath, eff, "TimeoutSecondsPath"); f != nil {
			return nil, f
		}
	}
	heartbeat := st.heartbeatSeconds
	if st.heartbeatPath != nil {
		if heartbeat, f = sc.positiveInt(st.heartbeatPath, eff, "HeartbeatSecondsPath"); f != nil {
			return nil, f
		}
	}

	ts := &taskScope{sc: sc}
	r := st.resource
	var timeoutPtr, heartbeatPtr *int64
	if explicitTimeout {
		timeoutPtr = &timeout
	}
	if heartbeat > 0 {
		heartbeatPtr = &heartbeat
	}
	if r.kind == resLambdaFunction {
		ts.event(HistoryEvent{Type: "LambdaFunctionScheduled", LambdaFunctionScheduledEventDetails: &LambdaFunctionScheduledEventDetails{
			Resource: r.arn, Input: MarshalJSON(params), InputDetails: notTruncated, TimeoutInSeconds: timeoutPtr}})
		ts.event(HistoryEvent{Type: "LambdaFunctionStarted"})
	} else {
		ts.event(HistoryEvent{Type: "TaskScheduled", TaskScheduledEventDetails: &TaskScheduledEventDetails{
			ResourceType: r.service, Resource: r.action, Region: e.region, Parameters: MarshalJSON(params),
			TimeoutInSeconds: timeoutPtr, HeartbeatInSeconds: heartbeatPtr}})
		ts.event(HistoryEvent{Type: "TaskStarted", TaskStartedEventDetails: &TaskEventDetails{ResourceType: r.service, Resource: r.action}})
	}

	ctx, cancel := context.WithCancel(sc.r.ctx)
	defer cancel()
	type outcome struct {
		v any
		f *Failure
	}
	done := make(chan outcome, 1)
	go func() {
		v, f := sc.callIntegration(ctx, ts, params, wait, heartbeat)
		done <- outcome{v, f}
	}()
	// Without TimeoutSeconds AWS allows 99999999 seconds, which no local run reaches: no timer,
	// so a manual clock's pending timers are only the ones the workflow asked for.
	var expired <-chan time.Time
	if explicitTimeout {
		timer := e.clock.NewTimer(time.Duration(timeout) * time.Second)
		defer timer.Stop()
		expired = timer.C()
	}
	select {
	case o := <-done:
		return sc.taskResult(ts, input, o.v, o.f)
	case <-expired:
		fail := &Failure{Name: ErrTimeout, Cause: fmt.Sprintf("The task ran longer than its timeout of %d seconds", timeout)}
		ev := sc.failureEvent(fail, true)
		if !ts.close(&ev) {
			o := <-done
			return sc.taskResult(ts, input, o.v, o.f)
		}
		return nil, fail
	case <-sc.r.ctx.Done():
		ev := HistoryEvent{Type: abortedEvent(st.typ)}
		ts.close(&ev)
		return nil, abortedFailure
	}
}

func (sc *stateCtx) taskResult(ts *taskScope, input, v any, f *Failure) (any, *Failure) {
	if f != nil {
		return nil, f
	}
	ts.close(nil)
	return sc.finishResult(input, v)
}

func (sc *stateCtx) positiveInt(p *Path, input any, field string) (int64, *Failure) {
	v, err := readPath(p, input, sc.context)
	n, isNum := v.(Number)
	i, isInt := n.Int64()
	if err != nil || !isNum || !isInt || i <= 0 || i > maxSeconds {
		return 0, runtimeError("The %s field '%s' must reference a positive integer", field, p.src)
	}
	return i, nil
}

// failureEvent is the history event for a failed (or timed-out) call.
func (sc *stateCtx) failureEvent(f *Failure, timedOut bool) HistoryEvent {
	r := sc.st.resource
	if r.kind == resLambdaFunction {
		d := &ErrorEventDetails{Error: f.Name, Cause: f.Cause}
		if timedOut {
			return HistoryEvent{Type: "LambdaFunctionTimedOut", LambdaFunctionTimedOutEventDetails: d}
		}
		return HistoryEvent{Type: "LambdaFunctionFailed", LambdaFunctionFailedEventDetails: d}
	}
	d := &TaskEventDetails{ResourceType: r.service, Resource: r.action, Error: f.Name, Cause: f.Cause}
	if timedOut {
		return HistoryEvent{Type: "TaskTimedOut", TaskTimedOutEventDetails: d}
	}
	return HistoryEvent{Type: "TaskFailed", TaskFailedEventDetails: d}
}

func (sc *stateCtx) succeededEvent(output any) HistoryEvent {
	r := sc.st.resource
	text := MarshalJSON(output)
	if r.kind == resLambdaFunction {
		return HistoryEvent{Type: "LambdaFunctionSucceeded", LambdaFunctionSucceededEventDetails: &OutputEventDetails{Output: text, OutputDetails: notTruncated}}
	}
	return HistoryEvent{Type: "TaskSucceeded", TaskSucceededEventDetails: &TaskEventDetails{ResourceType: r.service, Resource: r.action, Output: text, OutputDetails: notTruncated}}
}

// callIntegration makes the call, waits for the token or the child execution when the
// integration pattern says so, and records the outcome.
func (sc *stateCtx) callIntegration(ctx context.Context, ts *taskScope, params any, wait *taskWait, heartbeat int64) (any, *Failure) {
	r := sc.st.resource
	fail := func(f *Failure) (any, *Failure) {
		ts.event(sc.failureEvent(f, f.Name == ErrHeartbeatTimeout))
		return nil, f
	}
	var out any
	var f *Failure
	var child *Execution
	switch r.kind {
	case resLambdaInvoke, resLambdaFunction:
		out, f = sc.invokeLambda(ctx, params)
	case resSendMessage:
		out, f = sc.sendMessage(ctx, params)
	case resPutEvents:
		out, f = sc.putEvents(ctx, params)
	case resStartExecution:
		out, child, f = sc.startChild(params)
	}
	if f != nil {
		return fail(f)
	}
	if len(MarshalJSON(out)) > maxPayloadBytes {
		return fail(&Failure{Name: ErrDataLimitExceeded, Cause: fmt.Sprintf("The state/task '%s' returned a result with a size exceeding the maximum number of bytes service limit.", r.service)})
	}
	switch r.pattern {
	case patternToken:
		ts.event(HistoryEvent{Type: "TaskSubmitted", TaskSubmittedEventDetails: &TaskEventDetails{
			ResourceType: r.service, Resource: r.action, Output: MarshalJSON(out), OutputDetails: notTruncated}})
		out, f = sc.awaitToken(ctx, wait, heartbeat)
	case patternSync, patternSync2:
		ts.event(HistoryEvent{Type: "TaskSubmitted", TaskSubmittedEventDetails: &TaskEventDetails{
			ResourceType: r.service, Resource: r.action, Output: MarshalJSON(out), OutputDetails: notTruncated}})
		out, f = sc.awaitChild(ctx, child, r.pattern == patternSync2)
	}
	if f != nil {
		if f.aborted {
			return nil, f
		}
		return fail(f)
	}
	ts.event(sc.succeededEvent(out))
	return out, nil
}

func (sc *stateCtx) awaitToken(ctx context.Context, w *taskWait, heartbeat int64) (any, *Failure) {
	clock := sc.r.x.engine.clock
	var beat <-chan time.Time
	var timer Timer
	reset := func() {
		if heartbeat <= 0 {
			return
		}
		if timer != nil {
			timer.Stop()
		}
		timer = clock.NewTimer(time.Duration(heartbeat) * time.Second)
		beat = timer.C()
	}
	reset()
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		// An outcome that is already there wins over a timer that fired at the same moment.
		select {
		case o := <-w.outcome:
			return o.output, o.fail
		default:
		}
		select {
		case o := <-w.outcome:
			return o.output, o.fail
		case <-w.heartbeat:
			reset()
		case <-beat:
			return nil, &Failure{Name: ErrHeartbeatTimeout, Cause: fmt.Sprintf("No heartbeat was received for %d seconds", heartbeat)}
		case <-ctx.Done():
			return nil, abortedFailure
		}
	}
}

// Service integrations. Their outputs have the shapes AWS gives them: the API response in
// PascalCase plus, for request/response calls, the SDK's HTTP metadata.

func sdkMetadata(requestID, contentType string, length int, extra ...Member) (*Object, *Object) {
	if requestID == "" {
		requestID = newUUID()
	}
	date := time.Now().UTC().Format(time.RFC1123)
	date = date[:len(date)-3] + "GMT"
	all := []Member{
		{"Content-Length", []any{strconv.Itoa(length)}},
		{"Content-Type", []any{contentType}},
		{"Date", []any{date}},
		{"x-amzn-RequestId", []any{requestID}},
	}
	single := []Member{
		{"Content-Length", strconv.Itoa(length)},
		{"Content-Type", contentType},
		{"Date", date},
		{"x-amzn-RequestId", requestID},
	}
	for _, m := range extra {
		all = append(all, Member{m.Key, []any{m.Value}})
		single = append(single, m)
	}
	http := NewObject(
		Member{"AllHttpHeaders", NewObject(all...)},
		Member{"HttpHeaders", NewObject(single...)},
		Member{"HttpStatusCode", Number("200")},
	)
	return http, NewObject(Member{"RequestId", requestID})
}

func paramString(params *Object, key string, required bool) (string, *Failure) {
	v, ok := params.Get(key)
	if !ok || v == nil {
		if required {
			return "", runtimeError("The parameter '%s' is required", key)
		}
		return "", nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", runtimeError("The parameter '%s' must be a string, not %s", key, typeName(v))
	}
	return s, nil
}

// asText is how AWS passes a JSON value to a string parameter (Payload, MessageBody, Input,
// Detail): strings as they are, anything else as its JSON text.
func asText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return MarshalJSON(v)
}

// serviceFailure names a failed call the way AWS does: "<Service>.<ErrorCode>" for an error
// answer, "<Service>.SdkClientException" when the service could not be reached.
func serviceFailure(service, sdkName, fallback string, err error) *Failure {
	var se *ServiceError
	if errors.As(err, &se) {
		code := se.Code
		name := service + "." + code
		if code == "" {
			name = service + "." + fallback
			code = fallback
		}
		rid := se.RequestID
		if rid == "" {
			rid = newUUID()
		}
		return &Failure{Name: name, Cause: fmt.Sprintf("%s (Service: %s; Status Code: %d; Error Code: %s; Request ID: %s; Proxy: null)", se.Message, sdkName, se.StatusCode, code, rid)}
	}
	return &Failure{Name: service + ".SdkClientException", Cause: err.Error()}
}

func (sc *stateCtx) invokeLambda(ctx context.Context, params any) (any, *Failure) {
	r := sc.st.resource
	e := sc.r.x.engine
	in := &InvokeInput{}
	if r.kind == resLambdaFunction {
		in.FunctionName = r.arn
		in.Payload = []byte(MarshalJSON(params))
	} else {
		p, isObj := params.(*Object)
		if !isObj {
			return nil, runtimeError("The Parameters of a lambda:invoke task must be an object")
		}
		var f *Failure
		if in.FunctionName, f = paramString(p, "FunctionName", true); f != nil {
			return nil, f
		}
		for key, dst := range map[string]*string{"Qualifier": &in.Qualifier, "InvocationType": &in.InvocationType, "ClientContext": &in.ClientContext, "LogType": &in.LogType} {
			if *dst, f = paramString(p, key, false); f != nil {
				return nil, f
			}
		}
		payload, has := p.Get("Payload")
		switch {
		case !has || payload == nil:
			in.Payload = []byte("{}")
		default:
			if s, isStr := payload.(string); isStr {
				// A string that is itself JSON is sent as that JSON; any other string as a JSON string.
				if _, err := ParseJSON([]byte(s)); err == nil {
					in.Payload = []byte(s)
					break
				}
			}
			in.Payload = []byte(MarshalJSON(payload))
		}
	}
	res, err := e.tasks.Invoke(ctx, in)
	if err != nil {
		if ctx.Err() != nil {
			return nil, abortedFailure
		}
		return nil, serviceFailure("Lambda", "AWSLambda", "AWSLambdaException", err)
	}
	if res.FunctionError != "" {
		name := "Lambda.Unknown"
		cause := string(res.Payload)
		if v, perr := ParseJSON(res.Payload); perr == nil {
			cause = MarshalJSON(v)
			if o, isObj := v.(*Object); isObj {
				if t, ok := o.Get("errorType"); ok {
					if s, isStr := t.(string); isStr && s != "" {
						name = s
					}
				}
			}
		}
		return nil, &Failure{Name: name, Cause: cause}
	}
	var payload any = string(res.Payload)
	if v, perr := ParseJSON(res.Payload); perr == nil {
		payload = v
	}
	if r.kind == resLambdaFunction {
		return payload, nil
	}
	status := res.StatusCode
	if status == 0 {
		status = 200
		switch in.InvocationType {
		case "Event":
			status = 202
		case "DryRun":
			status = 204
		}
	}
	version := res.ExecutedVersion
	if version == "" && (in.InvocationType == "" || in.InvocationType == "RequestResponse") {
		version = "$LATEST"
	}
	extra := []Member{}
	if version != "" {
		extra = append(extra, Member{"X-Amz-Executed-Version", version})
	}
	httpMeta, respMeta := sdkMetadata(res.RequestID, "application/json", len(res.Payload), extra...)
	httpMeta = httpMeta.With("HttpStatusCode", IntNumber(int64(status)))
	var b ObjectBuilder
	if version != "" {
		b.Set("ExecutedVersion", version)
	}
	if res.LogResult != "" {
		b.Set("LogResult", res.LogResult)
	}
	b.Set("Payload", payload)
	b.Set("SdkHttpMetadata", httpMeta)
	b.Set("SdkResponseMetadata", respMeta)
	b.Set("StatusCode", IntNumber(int64(status)))
	return b.Object(), nil
}

func (sc *stateCtx) sendMessage(ctx context.Context, params any) (any, *Failure) {
	p, isObj := params.(*Object)
	if !isObj {
		return nil, runtimeError("The Parameters of an sqs:sendMessage task must be an object")
	}
	in := &SendMessageInput{}
	var f *Failure
	if in.QueueURL, f = paramString(p, "QueueUrl", true); f != nil {
		return nil, f
	}
	body, ok := p.Get("MessageBody")
	if !ok || body == nil {
		return nil, runtimeError("The parameter 'MessageBody' is required")
	}
	in.MessageBody = asText(body)
	if in.MessageDeduplicationID, f = paramString(p, "MessageDeduplicationId", false); f != nil {
		return nil, f
	}
	if in.MessageGroupID, f = paramString(p, "MessageGroupId", false); f != nil {
		return nil, f
	}
	if v, ok := p.Get("DelaySeconds"); ok && v != nil {
		n, isNum := v.(Number)
		i, isInt := n.Int64()
		if !isNum || !isInt || i < 0 || i > 900 {
			return nil, runtimeError("The parameter 'DelaySeconds' must be an integer from 0 to 900")
		}
		d := int32(i)
		in.DelaySeconds = &d
	}
	if v, ok := p.Get("MessageAttributes"); ok && v != nil {
		attrs, isObj := v.(*Object)
		if !isObj {
			return nil, runtimeError("The parameter 'MessageAttributes' must be an object")
		}
		in.MessageAttributes = map[string]MessageAttribute{}
		for _, m := range attrs.Members() {
			ao, isObj := m.Value.(*Object)
			if !isObj {
				return nil, runtimeError("The message attribute '%s' must be an object", m.Key)
			}
			var a MessageAttribute
			if a.DataType, f = paramString(ao, "DataType", true); f != nil {
				return nil, f
			}
			if a.StringValue, f = paramString(ao, "StringValue", false); f != nil {
				return nil, f
			}
			in.MessageAttributes[m.Key] = a
		}
	}
	res, err := sc.r.x.engine.tasks.SendMessage(ctx, in)
	if err != nil {
		if ctx.Err() != nil {
			return nil, abortedFailure
		}
		return nil, serviceFailure("SQS", "AmazonSQS", "AmazonSQSException", err)
	}
	httpMeta, respMeta := sdkMetadata(res.RequestID, "text/xml", 0)
	var b ObjectBuilder
	if res.MD5OfMessageAttributes != "" {
		b.Set("MD5OfMessageAttributes", res.MD5OfMessageAttributes)
	}
	b.Set("MD5OfMessageBody", res.MD5OfMessageBody)
	b.Set("MessageId", res.MessageID)
	if res.SequenceNumber != "" {
		b.Set("SequenceNumber", res.SequenceNumber)
	}
	b.Set("SdkHttpMetadata", httpMeta)
	b.Set("SdkResponseMetadata", respMeta)
	return b.Object(), nil
}

func (sc *stateCtx) putEvents(ctx context.Context, params any) (any, *Failure) {
	p, isObj := params.(*Object)
	if !isObj {
		return nil, runtimeError("The Parameters of an events:putEvents task must be an object")
	}
	v, _ := p.Get("Entries")
	arr, isArr := v.([]any)
	if !isArr || len(arr) == 0 || len(arr) > 10 {
		return nil, runtimeError("The parameter 'Entries' must be an array of 1 to 10 entries")
	}
	entries := make([]EventEntry, 0, len(arr))
	for i, e := range arr {
		eo, isObj := e.(*Object)
		if !isObj {
			return nil, runtimeError("Entries[%d] must be an object", i)
		}
		var en EventEntry
		var f *Failure
		for key, dst := range map[string]*string{"Source": &en.Source, "DetailType": &en.DetailType, "EventBusName": &en.EventBusName, "TraceHeader": &en.TraceHeader} {
			if *dst, f = paramString(eo, key, false); f != nil {
				return nil, f
			}
		}
		if d, ok := eo.Get("Detail"); ok && d != nil {
			en.Detail = asText(d)
		}
		if rv, ok := eo.Get("Resources"); ok && rv != nil {
			ra, isArr := rv.([]any)
			if !isArr {
				return nil, runtimeError("Entries[%d].Resources must be an array of strings", i)
			}
			for _, x := range ra {
				s, isStr := x.(string)
				if !isStr {
					return nil, runtimeError("Entries[%d].Resources must be an array of strings", i)
				}
				en.Resources = append(en.Resources, s)
			}
		}
		if tv, ok := eo.Get("Time"); ok && tv != nil {
			s, isStr := tv.(string)
			t, err := time.Parse(time.RFC3339, s)
			if !isStr || err != nil {
				return nil, runtimeError("Entries[%d].Time must be an RFC 3339 timestamp", i)
			}
			en.Time = &t
		}
		entries = append(entries, en)
	}
	res, err := sc.r.x.engine.tasks.PutEvents(ctx, entries)
	if err != nil {
		if ctx.Err() != nil {
			return nil, abortedFailure
		}
		return nil, serviceFailure("EventBridge", "AmazonEventBridge", "AmazonEventBridgeException", err)
	}
	out := make([]any, len(res.Entries))
	for i, e := range res.Entries {
		var b ObjectBuilder
		if e.EventID != "" {
			b.Set("EventId", e.EventID)
		}
		if e.ErrorCode != "" {
			b.Set("ErrorCode", e.ErrorCode)
			b.Set("ErrorMessage", e.ErrorMessage)
		}
		out[i] = b.Object()
	}
	result := NewObject(Member{"Entries", out}, Member{"FailedEntryCount", IntNumber(int64(res.FailedEntryCount))})
	if res.FailedEntryCount > 0 {
		return nil, &Failure{Name: "EventBridge.FailedEntry", Cause: MarshalJSON(result)}
	}
	return result, nil
}

func (sc *stateCtx) startChild(params any) (any, *Execution, *Failure) {
	p, isObj := params.(*Object)
	if !isObj {
		return nil, nil, runtimeError("The Parameters of a states:startExecution task must be an object")
	}
	machineARN, f := paramString(p, "StateMachineArn", true)
	if f != nil {
		return nil, nil, f
	}
	name, f := paramString(p, "Name", false)
	if f != nil {
		return nil, nil, f
	}
	input := "{}"
	if v, ok := p.Get("Input"); ok && v != nil {
		input = asText(v)
	}
	e := sc.r.x.engine
	child, err := e.startExecution(machineARN, name, input, sc.r.x)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) {
			return nil, nil, &Failure{Name: "StepFunctions." + ae.Code + "Exception",
				Cause: fmt.Sprintf("%s (Service: AWSStepFunctions; Status Code: 400; Error Code: %s; Request ID: %s; Proxy: null)", ae.Message, ae.Code, newUUID())}
		}
		return nil, nil, &Failure{Name: "StepFunctions.SdkClientException", Cause: err.Error()}
	}
	info := child.info()
	body := fmt.Sprintf(`{"executionArn":%q,"startDate":%d}`, info.ARN, info.StartDate.UnixMilli())
	httpMeta, respMeta := sdkMetadata("", "application/x-amz-json-1.0", len(body))
	return NewObject(
		Member{"ExecutionArn", info.ARN},
		Member{"SdkHttpMetadata", httpMeta},
		Member{"SdkResponseMetadata", respMeta},
		Member{"StartDate", IntNumber(info.StartDate.UnixMilli())},
	), child, nil
}

// awaitChild waits for a .sync child. A failed child fails the task with States.TaskFailed and
// the child's description as the cause, as AWS does; a parent that ends stops the child.
func (sc *stateCtx) awaitChild(ctx context.Context, child *Execution, v2 bool) (any, *Failure) {
	select {
	case <-child.done:
	case <-ctx.Done():
		child.finish(StatusAborted, "", "", "The parent execution's task ended", errExecutionStopped)
		return nil, abortedFailure
	}
	info := child.info()
	var b ObjectBuilder
	b.Set("ExecutionArn", info.ARN)
	if v2 {
		in, _ := ParseJSON([]byte(info.Input))
		b.Set("Input", in)
	} else {
		b.Set("Input", info.Input)
	}
	b.Set("InputDetails", NewObject(Member{"Included", true}))
	b.Set("Name", info.Name)
	if info.Status == StatusSucceeded {
		if v2 {
			out, _ := ParseJSON([]byte(info.Output))
			b.Set("Output", out)
		} else {
			b.Set("Output", info.Output)
		}
		b.Set("OutputDetails", NewObject(Member{"Included", true}))
	}
	b.Set("RedriveCount", Number("0"))
	b.Set("StartDate", IntNumber(info.StartDate.UnixMilli()))
	b.Set("StateMachineArn", info.StateMachineARN)
	b.Set("Status", info.Status)
	b.Set("StopDate", IntNumber(info.StopDate.UnixMilli()))
	if info.Status != StatusSucceeded {
		if info.Error != "" {
			b.Set("Error", info.Error)
		}
		if info.Cause != "" {
			b.Set("Cause", info.Cause)
		}
		return nil, &Failure{Name: ErrTaskFailed, Cause: MarshalJSON(b.Object())}
	}
	return b.Object(), nil
}
