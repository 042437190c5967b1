// Package sfnservice serves the Step Functions API (AWS JSON 1.0, "AWSStepFunctions.*"
// targets) over an asl.Engine, so aws-sdk-go-v2's sfn client and the AWS CLI work against the
// local engine unchanged. It is an http.Handler: the local cloud's front door mounts it.
package sfnservice

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/byocloud/byoc/infra/local/asl"
)

// TargetPrefix is the X-Amz-Target prefix of Step Functions requests; the front door routes
// on it.
const TargetPrefix = "AWSStepFunctions."

// Service answers Step Functions API requests.
type Service struct {
	engine *asl.Engine
	log    *slog.Logger
}

// New serves engine. A nil logger discards.
func New(engine *asl.Engine, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{engine: engine, log: log}
}

// Engine returns the engine the service serves.
func (s *Service) Engine() *asl.Engine { return s.engine }

// maxRequestBytes bounds a request: a 1 MiB definition plus a 256 KiB input fit easily.
const maxRequestBytes = 4 << 20

type handler func(s *Service, body []byte) (any, error)

var operations = map[string]handler{
	"CreateStateMachine":             (*Service).createStateMachine,
	"DescribeStateMachine":           (*Service).describeStateMachine,
	"UpdateStateMachine":             (*Service).updateStateMachine,
	"DeleteStateMachine":             (*Service).deleteStateMachine,
	"ListStateMachines":              (*Service).listStateMachines,
	"ValidateStateMachineDefinition": (*Service).validateDefinition,
	"StartExecution":                 (*Service).startExecution,
	"DescribeExecution":              (*Service).describeExecution,
	"ListExecutions":                 (*Service).listExecutions,
	"StopExecution":                  (*Service).stopExecution,
	"GetExecutionHistory":            (*Service).getExecutionHistory,
	"SendTaskSuccess":                (*Service).sendTaskSuccess,
	"SendTaskFailure":                (*Service).sendTaskFailure,
	"SendTaskHeartbeat":              (*Service).sendTaskHeartbeat,
	"TagResource":                    (*Service).tagResource,
	"UntagResource":                  (*Service).untagResource,
	"ListTagsForResource":            (*Service).listTagsForResource,
}

// Operations lists the API operations the service implements.
func Operations() []string {
	return slices.Sorted(maps.Keys(operations))
}

func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	op, isSFN := strings.CutPrefix(target, TargetPrefix)
	if r.Method != http.MethodPost || !isSFN {
		writeError(w, http.StatusBadRequest, "UnknownOperationException", fmt.Sprintf("expected a POST with X-Amz-Target %s<operation>, got %s %q", TargetPrefix, r.Method, target))
		return
	}
	h, known := operations[op]
	if !known {
		writeError(w, http.StatusBadRequest, "UnknownOperationException", fmt.Sprintf("the local Step Functions does not implement %s", op))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes+1))
	if err != nil || len(body) > maxRequestBytes {
		writeError(w, http.StatusBadRequest, "SerializationException", "the request body could not be read or is too large")
		return
	}
	if len(body) == 0 {
		body = []byte("{}")
	}
	out, err := h(s, body)
	if err != nil {
		var ae *asl.APIError
		if errors.As(err, &ae) {
			s.log.Debug("sfn request refused", "operation", op, "code", ae.Code, "message", ae.Message)
			writeError(w, http.StatusBadRequest, ae.Code, ae.Message)
			return
		}
		s.log.Error("sfn request failed", "operation", op, "err", err)
		writeError(w, http.StatusInternalServerError, "InternalFailure", err.Error())
		return
	}
	data, err := json.Marshal(out)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "InternalFailure", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("x-amzn-RequestId", newRequestID())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("x-amzn-RequestId", newRequestID())
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	data, _ := json.Marshal(map[string]string{"__type": code, "message": message})
	_, _ = w.Write(data)
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// epoch is a timestamp on the wire: seconds since 1970 as a JSON number, with milliseconds.
type epoch time.Time

func (t epoch) MarshalJSON() ([]byte, error) {
	ms := time.Time(t).UnixMilli()
	return []byte(strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64)), nil
}

// decode reads an operation's input into the struct v points to, and refuses it as Step
// Functions does when a string field tagged required:"true" is missing or empty (the first
// such field in declaration order is named).
func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return &asl.APIError{Code: "SerializationException", Message: "the request body is not valid JSON for this operation: " + err.Error()}
	}
	in := reflect.ValueOf(v).Elem()
	for i := range in.NumField() {
		f := in.Type().Field(i)
		if f.Tag.Get("required") == "true" && in.Field(i).String() == "" {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			return &asl.APIError{Code: asl.CodeValidation, Message: fmt.Sprintf("1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", name)}
		}
	}
	return nil
}

// Pagination: a nextToken is the base64 of the offset into the (stable) result list.

// listPage is a list operation's answer: the items under key, and nextToken when more remain.
func listPage(key string, list any, next string) map[string]any {
	out := map[string]any{key: list}
	if next != "" {
		out["nextToken"] = next
	}
	return out
}

func checkMaxResults(maxResults int) error {
	if maxResults < 0 || maxResults > 1000 {
		return &asl.APIError{Code: asl.CodeValidation, Message: fmt.Sprintf("1 validation error detected: Value '%d' at 'maxResults' failed to satisfy constraint: Member must have value between 0 and 1000", maxResults)}
	}
	return nil
}

func page[T any](items []T, maxResults int, nextToken string) ([]T, string, error) {
	if err := checkMaxResults(maxResults); err != nil {
		return nil, "", err
	}
	if maxResults == 0 {
		maxResults = 100
	}
	start := 0
	if nextToken != "" {
		raw, err := base64.RawURLEncoding.DecodeString(nextToken)
		n, convErr := strconv.Atoi(string(raw))
		if err != nil || convErr != nil || n < 0 || n > len(items) {
			return nil, "", &asl.APIError{Code: asl.CodeInvalidToken, Message: "Invalid Token: 'the nextToken is not one this service issued'"}
		}
		start = n
	}
	end := min(start+maxResults, len(items))
	next := ""
	if end < len(items) {
		next = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end)))
	}
	return items[start:end], next, nil
}

type tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

const metaTags = "tags"
const metaLogging = "loggingConfiguration"
const metaTracing = "tracingConfiguration"

func tagsOf(m map[string]any) map[string]string {
	t, _ := m[metaTags].(map[string]string)
	return t
}

func (s *Service) createStateMachine(body []byte) (any, error) {
	var in struct {
		Name                 string          `json:"name" required:"true"`
		Definition           string          `json:"definition" required:"true"`
		RoleArn              string          `json:"roleArn" required:"true"`
		Type                 string          `json:"type"`
		LoggingConfiguration json.RawMessage `json:"loggingConfiguration"`
		TracingConfiguration json.RawMessage `json:"tracingConfiguration"`
		Tags                 []tag           `json:"tags"`
		Publish              bool            `json:"publish"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.Publish {
		return nil, &asl.APIError{Code: asl.CodeValidation, Message: "the local Step Functions does not implement state machine versions (publish)"}
	}
	meta := map[string]any{}
	if len(in.Tags) > 0 {
		tags := map[string]string{}
		for _, t := range in.Tags {
			tags[t.Key] = t.Value
		}
		meta[metaTags] = tags
	}
	if in.LoggingConfiguration != nil {
		meta[metaLogging] = in.LoggingConfiguration
	}
	if in.TracingConfiguration != nil {
		meta[metaTracing] = in.TracingConfiguration
	}
	m, err := s.engine.CreateStateMachine(asl.CreateStateMachineInput{Name: in.Name, Definition: in.Definition, RoleARN: in.RoleArn, Type: in.Type, Metadata: meta})
	if err != nil {
		return nil, err
	}
	return map[string]any{"stateMachineArn": m.ARN, "creationDate": epoch(m.CreationDate)}, nil
}

func (s *Service) describeStateMachine(body []byte) (any, error) {
	var in struct {
		StateMachineArn string `json:"stateMachineArn" required:"true"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	m, err := s.engine.DescribeStateMachine(in.StateMachineArn)
	if err != nil {
		return nil, err
	}
	out := map[string]any{
		"stateMachineArn":      m.ARN,
		"name":                 m.Name,
		"status":               "ACTIVE",
		"definition":           m.Definition.Source(),
		"roleArn":              m.RoleARN,
		"type":                 m.Type,
		"creationDate":         epoch(m.CreationDate),
		"revisionId":           m.RevisionID,
		"loggingConfiguration": json.RawMessage(`{"level":"OFF","includeExecutionData":false}`),
		"tracingConfiguration": json.RawMessage(`{"enabled":false}`),
	}
	if v, ok := m.Metadata[metaLogging].(json.RawMessage); ok {
		out["loggingConfiguration"] = v
	}
	if v, ok := m.Metadata[metaTracing].(json.RawMessage); ok {
		out["tracingConfiguration"] = v
	}
	return out, nil
}

func (s *Service) updateStateMachine(body []byte) (any, error) {
	var in struct {
		StateMachineArn      string          `json:"stateMachineArn" required:"true"`
		Definition           *string         `json:"definition"`
		RoleArn              *string         `json:"roleArn"`
		LoggingConfiguration json.RawMessage `json:"loggingConfiguration"`
		TracingConfiguration json.RawMessage `json:"tracingConfiguration"`
		Publish              bool            `json:"publish"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.Publish {
		return nil, &asl.APIError{Code: asl.CodeValidation, Message: "the local Step Functions does not implement state machine versions (publish)"}
	}
	var meta map[string]any
	if in.LoggingConfiguration != nil || in.TracingConfiguration != nil {
		meta = map[string]any{}
		if in.LoggingConfiguration != nil {
			meta[metaLogging] = in.LoggingConfiguration
		}
		if in.TracingConfiguration != nil {
			meta[metaTracing] = in.TracingConfiguration
		}
	}
	m, err := s.engine.UpdateStateMachine(in.StateMachineArn, in.Definition, in.RoleArn, meta)
	if err != nil {
		return nil, err
	}
	return map[string]any{"updateDate": epoch(m.UpdateDate), "revisionId": m.RevisionID}, nil
}

func (s *Service) deleteStateMachine(body []byte) (any, error) {
	var in struct {
		StateMachineArn string `json:"stateMachineArn" required:"true"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	return struct{}{}, s.engine.DeleteStateMachine(in.StateMachineArn)
}

func (s *Service) listStateMachines(body []byte) (any, error) {
	var in struct {
		MaxResults int    `json:"maxResults"`
		NextToken  string `json:"nextToken"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	items, next, err := page(s.engine.ListStateMachines(), in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	list := make([]map[string]any, len(items))
	for i, m := range items {
		list[i] = map[string]any{"stateMachineArn": m.ARN, "name": m.Name, "type": m.Type, "creationDate": epoch(m.CreationDate)}
	}
	return listPage("stateMachines", list, next), nil
}

func (s *Service) validateDefinition(body []byte) (any, error) {
	var in struct {
		Definition string `json:"definition" required:"true"`
		Type       string `json:"type"`
		MaxResults int    `json:"maxResults"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	diags := asl.ValidateDefinition(in.Definition)
	if in.Type == "EXPRESS" {
		diags = append(diags, asl.Diagnostic{Severity: "ERROR", Code: asl.CodeUnsupported, Message: "the local engine runs STANDARD state machines only"})
	}
	limit := in.MaxResults
	if limit <= 0 || limit > 100 {
		limit = 100
	}
	truncated := len(diags) > limit
	if truncated {
		diags = diags[:limit]
	}
	result := "OK"
	if len(diags) > 0 {
		result = "FAIL"
	}
	if diags == nil {
		diags = []asl.Diagnostic{}
	}
	return map[string]any{"result": result, "diagnostics": diags, "truncated": truncated}, nil
}

func (s *Service) startExecution(body []byte) (any, error) {
	var in struct {
		StateMachineArn string  `json:"stateMachineArn" required:"true"`
		Name            string  `json:"name"`
		Input           *string `json:"input"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	input := ""
	if in.Input != nil {
		input = *in.Input
	}
	x, err := s.engine.StartExecution(in.StateMachineArn, in.Name, input)
	if err != nil {
		return nil, err
	}
	return map[string]any{"executionArn": x.ARN, "startDate": epoch(x.StartDate)}, nil
}

func executionSummary(x asl.ExecutionInfo) map[string]any {
	out := map[string]any{
		"executionArn":    x.ARN,
		"stateMachineArn": x.StateMachineARN,
		"name":            x.Name,
		"status":          x.Status,
		"startDate":       epoch(x.StartDate),
	}
	if !x.StopDate.IsZero() {
		out["stopDate"] = epoch(x.StopDate)
	}
	return out
}

func (s *Service) describeExecution(body []byte) (any, error) {
	var in struct {
		ExecutionArn string `json:"executionArn" required:"true"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	x, err := s.engine.DescribeExecution(in.ExecutionArn)
	if err != nil {
		return nil, err
	}
	out := executionSummary(*x)
	out["input"] = x.Input
	out["inputDetails"] = map[string]bool{"included": true}
	if x.Status == asl.StatusSucceeded {
		out["output"] = x.Output
		out["outputDetails"] = map[string]bool{"included": true}
	}
	if x.Error != "" {
		out["error"] = x.Error
	}
	if x.Cause != "" {
		out["cause"] = x.Cause
	}
	return out, nil
}

var statuses = []string{asl.StatusRunning, asl.StatusSucceeded, asl.StatusFailed, asl.StatusTimedOut, asl.StatusAborted, "PENDING_REDRIVE"}

func (s *Service) listExecutions(body []byte) (any, error) {
	var in struct {
		StateMachineArn string `json:"stateMachineArn" required:"true"`
		StatusFilter    string `json:"statusFilter"`
		MaxResults      int    `json:"maxResults"`
		NextToken       string `json:"nextToken"`
		MapRunArn       string `json:"mapRunArn"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.MapRunArn != "" {
		return nil, &asl.APIError{Code: asl.CodeValidation, Message: "the local Step Functions has no map runs (Distributed Map is not implemented)"}
	}
	if err := checkMaxResults(in.MaxResults); err != nil {
		return nil, err
	}
	if in.StatusFilter != "" && !slices.Contains(statuses, in.StatusFilter) {
		return nil, &asl.APIError{Code: asl.CodeValidation, Message: fmt.Sprintf("1 validation error detected: Value '%s' at 'statusFilter' failed to satisfy constraint: Member must satisfy enum value set: %v", in.StatusFilter, statuses)}
	}
	xs, err := s.engine.ListExecutions(in.StateMachineArn, in.StatusFilter)
	if err != nil {
		return nil, err
	}
	items, next, err := page(xs, in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	list := make([]map[string]any, len(items))
	for i, x := range items {
		list[i] = executionSummary(x)
	}
	return listPage("executions", list, next), nil
}

func (s *Service) stopExecution(body []byte) (any, error) {
	var in struct {
		ExecutionArn string `json:"executionArn" required:"true"`
		Error        string `json:"error"`
		Cause        string `json:"cause"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	stop, err := s.engine.StopExecution(in.ExecutionArn, in.Error, in.Cause)
	if err != nil {
		return nil, err
	}
	return map[string]any{"stopDate": epoch(stop)}, nil
}

// wireEvent is a history event with its timestamp in wire form.
type wireEvent struct {
	Timestamp epoch `json:"timestamp"`
	*asl.HistoryEvent
}

func (s *Service) getExecutionHistory(body []byte) (any, error) {
	var in struct {
		ExecutionArn         string `json:"executionArn" required:"true"`
		MaxResults           int    `json:"maxResults"`
		NextToken            string `json:"nextToken"`
		ReverseOrder         bool   `json:"reverseOrder"`
		IncludeExecutionData *bool  `json:"includeExecutionData"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := checkMaxResults(in.MaxResults); err != nil {
		return nil, err
	}
	events, err := s.engine.History(in.ExecutionArn)
	if err != nil {
		return nil, err
	}
	if in.ReverseOrder {
		slices.Reverse(events)
	}
	items, next, err := page(events, in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	list := make([]wireEvent, len(items))
	for i := range items {
		ev := items[i]
		if in.IncludeExecutionData != nil && !*in.IncludeExecutionData {
			ev = withoutData(ev)
		}
		list[i] = wireEvent{Timestamp: epoch(ev.Timestamp), HistoryEvent: &ev}
	}
	return listPage("events", list, next), nil
}

// withoutData drops inputs and outputs, as includeExecutionData=false asks.
func withoutData(ev asl.HistoryEvent) asl.HistoryEvent {
	if d := ev.ExecutionStartedEventDetails; d != nil {
		c := *d
		c.Input, c.InputDetails = "", nil
		ev.ExecutionStartedEventDetails = &c
	}
	if d := ev.ExecutionSucceededEventDetails; d != nil {
		ev.ExecutionSucceededEventDetails = &asl.OutputEventDetails{}
	}
	if d := ev.StateEnteredEventDetails; d != nil {
		ev.StateEnteredEventDetails = &asl.StateEnteredEventDetails{Name: d.Name}
	}
	if d := ev.StateExitedEventDetails; d != nil {
		ev.StateExitedEventDetails = &asl.StateExitedEventDetails{Name: d.Name}
	}
	if d := ev.TaskScheduledEventDetails; d != nil {
		c := *d
		c.Parameters = ""
		ev.TaskScheduledEventDetails = &c
	}
	for _, p := range []**asl.TaskEventDetails{&ev.TaskSubmittedEventDetails, &ev.TaskSucceededEventDetails} {
		if *p != nil {
			c := **p
			c.Output, c.OutputDetails = "", nil
			*p = &c
		}
	}
	if d := ev.LambdaFunctionScheduledEventDetails; d != nil {
		c := *d
		c.Input, c.InputDetails = "", nil
		ev.LambdaFunctionScheduledEventDetails = &c
	}
	if d := ev.LambdaFunctionSucceededEventDetails; d != nil {
		ev.LambdaFunctionSucceededEventDetails = &asl.OutputEventDetails{}
	}
	return ev
}

func (s *Service) sendTaskSuccess(body []byte) (any, error) {
	var in struct {
		TaskToken string `json:"taskToken" required:"true"`
		Output    string `json:"output" required:"true"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	return struct{}{}, s.engine.SendTaskSuccess(in.TaskToken, in.Output)
}

func (s *Service) sendTaskFailure(body []byte) (any, error) {
	var in struct {
		TaskToken string `json:"taskToken" required:"true"`
		Error     string `json:"error"`
		Cause     string `json:"cause"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	return struct{}{}, s.engine.SendTaskFailure(in.TaskToken, in.Error, in.Cause)
}

func (s *Service) sendTaskHeartbeat(body []byte) (any, error) {
	var in struct {
		TaskToken string `json:"taskToken" required:"true"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	return struct{}{}, s.engine.SendTaskHeartbeat(in.TaskToken)
}

// Tags live on state machines only; executions and activities have none here.

func (s *Service) tagResource(body []byte) (any, error) {
	var in struct {
		ResourceArn string `json:"resourceArn" required:"true"`
		Tags        []tag  `json:"tags"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	err := s.engine.UpdateMetadata(in.ResourceArn, func(m map[string]any) {
		tags := maps.Clone(tagsOf(m))
		if tags == nil {
			tags = map[string]string{}
		}
		for _, t := range in.Tags {
			tags[t.Key] = t.Value
		}
		m[metaTags] = tags
	})
	return struct{}{}, resourceErr(err)
}

func (s *Service) untagResource(body []byte) (any, error) {
	var in struct {
		ResourceArn string   `json:"resourceArn" required:"true"`
		TagKeys     []string `json:"tagKeys"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	err := s.engine.UpdateMetadata(in.ResourceArn, func(m map[string]any) {
		tags := maps.Clone(tagsOf(m))
		for _, k := range in.TagKeys {
			delete(tags, k)
		}
		m[metaTags] = tags
	})
	return struct{}{}, resourceErr(err)
}

func (s *Service) listTagsForResource(body []byte) (any, error) {
	var in struct {
		ResourceArn string `json:"resourceArn" required:"true"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	m, err := s.engine.DescribeStateMachine(in.ResourceArn)
	if err != nil {
		return nil, resourceErr(err)
	}
	tags := tagsOf(m.Metadata)
	list := []tag{}
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		list = append(list, tag{k, tags[k]})
	}
	return map[string]any{"tags": list}, nil
}

// resourceErr answers the tagging calls as AWS does for an unknown resource.
func resourceErr(err error) error {
	var ae *asl.APIError
	if errors.As(err, &ae) && (ae.Code == asl.CodeStateMachineDoesNotExist || ae.Code == asl.CodeInvalidArn) {
		return &asl.APIError{Code: "ResourceNotFound", Message: "Resource not found: " + ae.Message}
	}
	return err
}
