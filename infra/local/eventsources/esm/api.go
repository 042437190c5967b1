// Package esm is the local cloud's Lambda event source mappings for SQS: it serves the
// mapping API (Create, Get, List, Update, Delete) and polls each enabled mapping's queue
// with Lambda's semantics: BatchSize and MaximumBatchingWindowInSeconds, the exact SQS
// event, ReportBatchItemFailures (only the succeeded messages are deleted), and on a
// function error nothing deleted, so the messages return after their visibility timeout
// and SQS's redrive policy moves them to the dead-letter queue after maxReceiveCount.
//
// kumo stores mappings but never polls them, and drops FunctionResponseTypes, which decide
// what a partial failure deletes; so the front door sends the mapping API here instead.
package esm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/uuid"

	"github.com/byocloud/byoc/infra/local/eventpattern"
)

const mappingsPath = "/2015-03-31/event-source-mappings"

// IsMappingRequest reports whether a Lambda API request is about event source mappings.
func IsMappingRequest(r *http.Request) bool {
	return r.URL.Path == mappingsPath || r.URL.Path == mappingsPath+"/" || strings.HasPrefix(r.URL.Path, mappingsPath+"/")
}

// Configuration is the API's EventSourceMappingConfiguration, as the Lambda API returns it.
type Configuration struct {
	UUID                           string         `json:"UUID"`
	EventSourceMappingArn          string         `json:"EventSourceMappingArn"`
	EventSourceArn                 string         `json:"EventSourceArn"`
	FunctionArn                    string         `json:"FunctionArn"`
	BatchSize                      int            `json:"BatchSize"`
	MaximumBatchingWindowInSeconds int            `json:"MaximumBatchingWindowInSeconds"`
	FunctionResponseTypes          []string       `json:"FunctionResponseTypes"`
	FilterCriteria                 *FilterSet     `json:"FilterCriteria,omitempty"`
	ScalingConfig                  *ScalingConfig `json:"ScalingConfig,omitempty"`
	State                          string         `json:"State"`
	StateTransitionReason          string         `json:"StateTransitionReason"`
	LastModified                   float64        `json:"LastModified"` // epoch seconds
	LastProcessingResult           string         `json:"LastProcessingResult"`
}

// FilterSet is FilterCriteria: event patterns a record must match to reach the function.
type FilterSet struct {
	Filters []struct {
		Pattern string `json:"Pattern"`
	} `json:"Filters"`
}

// ScalingConfig bounds the concurrent invocations of an SQS mapping.
type ScalingConfig struct {
	MaximumConcurrency *int `json:"MaximumConcurrency,omitempty"`
}

type request struct {
	FunctionName                   *string
	EventSourceArn                 *string
	BatchSize                      *int
	MaximumBatchingWindowInSeconds *int
	Enabled                        *bool
	FunctionResponseTypes          *[]string
	FilterCriteria                 *FilterSet
	ScalingConfig                  *ScalingConfig
}

// apiError is a Lambda API error.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func invalid(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "InvalidParameterValueException", fmt.Sprintf(format, args...)}
}

func notFound(msg string) *apiError {
	return &apiError{http.StatusNotFound, "ResourceNotFoundException", msg}
}

// ServeHTTP answers the event source mapping operations of the Lambda REST API.
func (m *Mappings) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := strings.Trim(strings.TrimPrefix(r.URL.Path, mappingsPath), "/")
	var (
		status = http.StatusOK
		out    any
		err    error
	)
	switch {
	case id == "" && r.Method == http.MethodPost:
		var req request
		if err = decode(r, &req); err == nil {
			out, err = m.Create(r.Context(), req)
			status = http.StatusAccepted
		}
	case id == "" && r.Method == http.MethodGet:
		out, err = m.list(r)
	case r.Method == http.MethodGet:
		out, err = m.Get(id)
	case r.Method == http.MethodPut:
		var req request
		if err = decode(r, &req); err == nil {
			out, err = m.Update(r.Context(), id, req)
			status = http.StatusAccepted
		}
	case r.Method == http.MethodDelete:
		out, err = m.Delete(id)
		status = http.StatusAccepted
	default:
		err = &apiError{http.StatusMethodNotAllowed, "InvalidRequestContentException", r.Method + " is not an event source mapping operation"}
	}
	w.Header().Set("Content-Type", "application/json")
	var ae *apiError
	if errors.As(err, &ae) {
		w.Header().Set("X-Amzn-Errortype", ae.code)
		w.WriteHeader(ae.status)
		_ = json.NewEncoder(w).Encode(map[string]string{"Type": "User", "message": ae.msg})
		return
	}
	if err != nil {
		w.Header().Set("X-Amzn-Errortype", "ServiceException")
		w.WriteHeader(http.StatusInternalServerError)
		_ = json.NewEncoder(w).Encode(map[string]string{"Type": "Service", "message": err.Error()})
		return
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(out)
}

func decode(r *http.Request, into *request) error {
	if err := json.NewDecoder(r.Body).Decode(into); err != nil {
		return &apiError{http.StatusBadRequest, "InvalidRequestContentException", "Could not parse request body into json: " + err.Error()}
	}
	return nil
}

// Create validates a mapping as Lambda does and, when enabled, starts polling its queue.
func (m *Mappings) Create(ctx context.Context, req request) (Configuration, error) {
	if req.FunctionName == nil || *req.FunctionName == "" {
		return Configuration{}, invalid("FunctionName is required.")
	}
	if req.EventSourceArn == nil || *req.EventSourceArn == "" {
		return Configuration{}, invalid("EventSourceArn is required: the local cloud maps SQS queues only.")
	}
	c := Configuration{
		UUID: uuid.NewString(), EventSourceArn: *req.EventSourceArn, BatchSize: 10,
		FunctionResponseTypes: []string{}, State: "Creating", StateTransitionReason: "USER_INITIATED",
		LastProcessingResult: "No records processed",
	}
	c.EventSourceMappingArn = fmt.Sprintf("arn:aws:lambda:%s:%s:event-source-mapping:%s", m.cfg.Region, m.cfg.Account, c.UUID)
	enabled := req.Enabled == nil || *req.Enabled
	if err := m.apply(ctx, &c, req, *req.FunctionName); err != nil {
		return Configuration{}, err
	}
	m.mu.Lock()
	for _, other := range m.byID {
		if other.cfg.FunctionArn == c.FunctionArn && other.cfg.EventSourceArn == c.EventSourceArn {
			m.mu.Unlock()
			return Configuration{}, &apiError{http.StatusConflict, "ResourceConflictException", fmt.Sprintf(
				"An event source mapping with SQS arn (\" %s \") and function (\" %s \") already exists. Please update or delete the existing mapping with UUID %s",
				c.EventSourceArn, functionName(c.FunctionArn), other.cfg.UUID)}
		}
	}
	mp := &mapping{cfg: c, enabled: enabled}
	m.byID[c.UUID] = mp
	m.mu.Unlock()
	out := c
	m.settle(mp)
	return out, nil
}

// apply validates and applies the settable fields to c. functionName is the new function
// ("" keeps c's).
func (m *Mappings) apply(ctx context.Context, c *Configuration, req request, function string) error {
	if function != "" {
		fn, err := m.lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(function)})
		var nf *ltypes.ResourceNotFoundException
		if errors.As(err, &nf) {
			return notFound("Function does not exist: " + function)
		}
		if err != nil {
			return err
		}
		c.FunctionArn = aws.ToString(fn.Configuration.FunctionArn)
		m.timeouts.Store(c.FunctionArn, time.Duration(aws.ToInt32(fn.Configuration.Timeout))*time.Second)
	}
	queueURL, visibility, fifo, err := m.queue(ctx, c.EventSourceArn)
	if err != nil {
		return err
	}
	if req.BatchSize != nil {
		c.BatchSize = *req.BatchSize
	}
	if req.MaximumBatchingWindowInSeconds != nil {
		c.MaximumBatchingWindowInSeconds = *req.MaximumBatchingWindowInSeconds
	}
	maxBatch := 10000
	if fifo {
		maxBatch = 10
	}
	switch {
	case c.BatchSize < 1 || c.BatchSize > maxBatch:
		return invalid("BatchSize %d: must be between 1 and %d for this queue.", c.BatchSize, maxBatch)
	case c.MaximumBatchingWindowInSeconds < 0 || c.MaximumBatchingWindowInSeconds > 300:
		return invalid("MaximumBatchingWindowInSeconds %d: must be between 0 and 300.", c.MaximumBatchingWindowInSeconds)
	case c.BatchSize > 10 && c.MaximumBatchingWindowInSeconds < 1:
		return invalid("Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10")
	}
	if req.FunctionResponseTypes != nil {
		for _, t := range *req.FunctionResponseTypes {
			if t != "ReportBatchItemFailures" {
				return invalid("FunctionResponseTypes %q: the only value is ReportBatchItemFailures.", t)
			}
		}
		c.FunctionResponseTypes = slices.Clone(*req.FunctionResponseTypes)
	}
	if req.FilterCriteria != nil {
		if len(req.FilterCriteria.Filters) > 5 {
			return invalid("FilterCriteria: at most 5 filters.")
		}
		for i, f := range req.FilterCriteria.Filters {
			if _, err := eventpattern.Compile([]byte(f.Pattern)); err != nil {
				return invalid("FilterCriteria.Filters[%d].Pattern: %v", i, err)
			}
		}
		c.FilterCriteria = req.FilterCriteria
	}
	if req.ScalingConfig != nil {
		if mc := req.ScalingConfig.MaximumConcurrency; mc != nil && (*mc < 2 || *mc > 1000) {
			return invalid("ScalingConfig.MaximumConcurrency %d: must be between 2 and 1000.", *mc)
		}
		c.ScalingConfig = req.ScalingConfig
	}
	timeout, _ := m.timeouts.Load(c.FunctionArn)
	if t, _ := timeout.(time.Duration); t > visibility {
		return invalid("Queue visibility timeout: %d seconds is less than Function timeout: %d seconds", int(visibility.Seconds()), int(t.Seconds()))
	}
	m.urls.Store(c.EventSourceArn, queueURL)
	return nil
}

// queue checks that an SQS ARN names an existing queue and reads what the mapping needs.
func (m *Mappings) queue(ctx context.Context, arn string) (url string, visibility time.Duration, fifo bool, err error) {
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sqs" {
		return "", 0, false, invalid("EventSourceArn %q: the local cloud maps SQS queues only (arn:aws:sqs:<region>:<account>:<queue>).", arn)
	}
	out, err := m.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(parts[5]), QueueOwnerAWSAccountId: aws.String(parts[4])})
	if err != nil {
		var missing *sqstypes.QueueDoesNotExist
		if errors.As(err, &missing) || strings.Contains(err.Error(), "NonExistentQueue") {
			return "", 0, false, invalid("Error occurred while ReceiveMessage. SQS Error Code: AWS.SimpleQueueService.NonExistentQueue. SQS Error Message: The specified queue does not exist: %s", arn)
		}
		return "", 0, false, err
	}
	attrs, err := m.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: out.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameVisibilityTimeout},
	})
	if err != nil {
		return "", 0, false, err
	}
	secs, _ := strconv.Atoi(attrs.Attributes[string(sqstypes.QueueAttributeNameVisibilityTimeout)])
	return aws.ToString(out.QueueUrl), time.Duration(secs) * time.Second, strings.HasSuffix(parts[5], ".fifo"), nil
}

// Get returns a mapping.
func (m *Mappings) Get(id string) (Configuration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mp, ok := m.byID[id]
	if !ok {
		return Configuration{}, notFound("The resource you requested does not exist.")
	}
	return mp.snapshot(), nil
}

func (m *Mappings) list(r *http.Request) (any, error) {
	q := r.URL.Query()
	source, function := q.Get("EventSourceArn"), q.Get("FunctionName")
	m.mu.Lock()
	var out []Configuration
	for _, mp := range m.byID {
		c := mp.snapshot()
		if source != "" && c.EventSourceArn != source {
			continue
		}
		if function != "" && c.FunctionArn != function && functionName(c.FunctionArn) != function {
			continue
		}
		out = append(out, c)
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].UUID < out[j].UUID })
	if out == nil {
		out = []Configuration{}
	}
	return map[string]any{"EventSourceMappings": out}, nil
}

// Update changes a mapping; polling restarts with the new settings.
func (m *Mappings) Update(ctx context.Context, id string, req request) (Configuration, error) {
	m.mu.Lock()
	mp, ok := m.byID[id]
	var c Configuration
	if ok {
		c = mp.snapshot()
	}
	m.mu.Unlock()
	if !ok {
		return Configuration{}, notFound("The resource you requested does not exist.")
	}
	if err := m.apply(ctx, &c, req, aws.ToString(req.FunctionName)); err != nil {
		return Configuration{}, err
	}
	m.mu.Lock()
	if _, still := m.byID[id]; !still {
		m.mu.Unlock()
		return Configuration{}, notFound("The resource you requested does not exist.")
	}
	mp.stop()
	c.State = "Updating"
	mp.cfg = c
	if req.Enabled != nil {
		mp.enabled = *req.Enabled
	}
	m.mu.Unlock()
	out := c
	m.settle(mp)
	return out, nil
}

// Delete stops polling and forgets the mapping.
func (m *Mappings) Delete(id string) (Configuration, error) {
	m.mu.Lock()
	mp, ok := m.byID[id]
	delete(m.byID, id)
	m.mu.Unlock()
	if !ok {
		return Configuration{}, notFound("The resource you requested does not exist.")
	}
	mp.stop()
	c := mp.snapshot()
	c.State = "Deleting"
	return c, nil
}

func functionName(arn string) string {
	parts := strings.Split(arn, ":")
	if len(parts) >= 7 {
		return parts[6]
	}
	return arn
}
