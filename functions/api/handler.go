package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/store"
)

// Config is what the control-plane stack tells the function through its environment.
type Config struct {
	Table string
	// Functions are the operator functions the API forwards to, by target.
	Functions map[string]string
	// Machines are the workflows the API starts or reports on, by name.
	Machines map[string]string
}

// Forwarding targets and workflow names.
const (
	targetInvite      = "invite"
	targetMaintenance = "maintenance"
	targetReleases    = "releases"
	targetPeering     = "peering"

	workflowProvision = "provision"
	workflowCommand   = "command"
	workflowTeardown  = "teardown"
	workflowPeering   = "peering"
)

// ConfigFromEnv reads the configuration, refusing what is missing at cold start.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	v, err := cloud.Require(getenv, contract.EnvTableName,
		contract.EnvInviteFunction, contract.EnvMaintenanceFunction, contract.EnvReleasesFunction, contract.EnvPeeringFunction,
		contract.EnvProvisionMachineArn, contract.EnvCommandMachineArn, contract.EnvTeardownMachineArn, contract.EnvPeeringMachineArn)
	if err != nil {
		return Config{}, err
	}
	return Config{
		Table: v[contract.EnvTableName],
		Functions: map[string]string{
			targetInvite: v[contract.EnvInviteFunction], targetMaintenance: v[contract.EnvMaintenanceFunction],
			targetReleases: v[contract.EnvReleasesFunction], targetPeering: v[contract.EnvPeeringFunction],
		},
		Machines: map[string]string{
			workflowProvision: v[contract.EnvProvisionMachineArn], workflowCommand: v[contract.EnvCommandMachineArn],
			workflowTeardown: v[contract.EnvTeardownMachineArn], workflowPeering: v[contract.EnvPeeringMachineArn],
		},
	}, nil
}

// Handler serves the API.
type Handler struct {
	Config   Config
	Store    *store.Store
	Services *servicestate.Repo
	Lambda   interface {
		Invoke(context.Context, *lambda.InvokeInput, ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
	}
	Workflows interface {
		StartExecution(context.Context, *sfn.StartExecutionInput, ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error)
		DescribeExecution(context.Context, *sfn.DescribeExecutionInput, ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error)
	}
	Log *slog.Logger
	// Lease is how long a claimed idempotency key is held for its request before another
	// copy may take it over (the function's timeout, with margin).
	Lease time.Duration

	mux *http.ServeMux
}

// New wires a handler to AWS.
func New(awsCfg aws.Config, c Config, log *slog.Logger) *Handler {
	db := cloud.NewDynamoDB(awsCfg)
	return NewHandler(&Handler{
		Config: c, Store: store.New(db, c.Table), Services: servicestate.New(db, c.Table),
		Lambda: lambda.NewFromConfig(awsCfg), Workflows: sfn.NewFromConfig(awsCfg), Log: log,
	})
}

// NewHandler finishes a handler: its routes, from the one table (routes.go).
func NewHandler(h *Handler) *Handler {
	if h.Lease == 0 {
		h.Lease = time.Minute // the function's timeout is 29 s: a live run never outlasts it
	}
	h.mux = http.NewServeMux()
	for _, r := range routes {
		h.mux.Handle(r.pattern, h.serve(r))
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		writeError(w, req, http.StatusNotFound, fmt.Sprintf("no resource %s %s (the API's resources are under %s; see docs/api.md)", req.Method, req.URL.Path, contract.APIPathPrefix))
	})
	return h
}

// MaxBody bounds a request's body: every accepted body is a few kilobytes.
const MaxBody = 256 << 10

// Handle serves one request as API Gateway delivers it (payload format 2.0).
func (h *Handler) Handle(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(ev.Body)
		if err != nil {
			return envelopeResponse(ev.RequestContext.RequestID, http.StatusBadRequest, "body: not valid base64"), nil
		}
		body = b
	}
	target := ev.RawPath
	if ev.RawQueryString != "" {
		target += "?" + ev.RawQueryString
	}
	req, err := http.NewRequestWithContext(ctx, ev.RequestContext.HTTP.Method, target, bytes.NewReader(body))
	if err != nil {
		return envelopeResponse(ev.RequestContext.RequestID, http.StatusBadRequest, "request: "+err.Error()), nil
	}
	for k, v := range ev.Headers {
		req.Header.Set(k, v)
	}
	caller := ""
	if a := ev.RequestContext.Authorizer; a != nil && a.IAM != nil {
		caller = a.IAM.UserARN
	}
	req = req.WithContext(context.WithValue(ctx, callKey{}, callInfo{requestID: ev.RequestContext.RequestID, caller: caller}))
	rec := httptest.NewRecorder()
	h.mux.ServeHTTP(rec, req)
	headers := map[string]string{}
	for k := range rec.Header() {
		headers[k] = rec.Header().Get(k)
	}
	return events.APIGatewayV2HTTPResponse{StatusCode: rec.Code, Headers: headers, Body: rec.Body.String()}, nil
}

type callKey struct{}

// callInfo is what API Gateway tells about a request: its id, and the IAM principal that
// signed it (the IAM authorizer let only principals allowed execute-api:Invoke through).
type callInfo struct{ requestID, caller string }

func callOf(ctx context.Context) callInfo {
	c, _ := ctx.Value(callKey{}).(callInfo)
	return c
}

// apiError is an answer other than 200: its status and a message naming the field and rule.
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string { return e.Message }

func badRequest(format string, a ...any) error {
	return &apiError{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, a...)}
}
func notFound(format string, a ...any) error {
	return &apiError{Status: http.StatusNotFound, Message: fmt.Sprintf(format, a...)}
}
func conflict(format string, a ...any) error {
	return &apiError{Status: http.StatusConflict, Message: fmt.Sprintf(format, a...)}
}

// call is one request as a route sees it.
type call struct {
	*http.Request
	body   []byte
	caller string
	key    string // the request's Idempotency-Key, if any: names the workflow it starts
}

// decode reads the body into v, refusing unknown fields and trailing data; an empty body is
// an empty object.
func (c *call) decode(v any) error {
	if len(bytes.TrimSpace(c.body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(c.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &typeErr) && typeErr.Field == "":
			return badRequest("body: must be a JSON object, got %s", typeErr.Value)
		case errors.As(err, &typeErr):
			return badRequest("%s: must be %s, got %s", typeErr.Field, typeErr.Type, typeErr.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return badRequest("%s: not a field of this request", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return badRequest("body: not a JSON object: %v", err)
	}
	if dec.More() {
		return badRequest("body: one JSON object, nothing after it")
	}
	return nil
}

// idempotencyKeyPattern is what an Idempotency-Key may be: a UUID or any token of that kind.
var idempotencyKeyPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// serve runs a route: the body read, the idempotency key honoured, the answer enveloped.
func (h *Handler) serve(r route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		info := callOf(req.Context())
		body, err := io.ReadAll(io.LimitReader(req.Body, MaxBody+1))
		if err != nil || len(body) > MaxBody {
			writeError(w, req, http.StatusRequestEntityTooLarge, fmt.Sprintf("body: at most %d bytes", MaxBody))
			return
		}
		c := &call{Request: req, body: body, caller: info.caller}
		key := req.Header.Get("Idempotency-Key")
		if key == "" || req.Method == http.MethodGet {
			status, out := h.run(c, r)
			writeEnvelope(w, req, status, out)
			return
		}
		if !idempotencyKeyPattern.MatchString(key) {
			writeError(w, req, http.StatusBadRequest, "Idempotency-Key: 1 to 128 characters of letters, digits and . _ : -")
			return
		}
		hash := store.RequestHash(req.Method, req.URL.Path, body)
		prior, err := h.Store.ClaimKey(req.Context(), info.caller, key, hash, h.Lease)
		switch {
		case errors.Is(err, store.ErrKeyReused):
			writeError(w, req, http.StatusUnprocessableEntity, "Idempotency-Key: already used for another request (another method, path or body); use a new key")
			return
		case errors.Is(err, store.ErrInProgress):
			writeError(w, req, http.StatusConflict, "Idempotency-Key: the first request under this key is still running; retry later")
			return
		case err != nil:
			h.Log.ErrorContext(req.Context(), "idempotency claim failed", "error", err.Error())
			writeError(w, req, http.StatusServiceUnavailable, "the request could not be recorded; retry")
			return
		case prior != nil:
			w.Header().Set("Idempotent-Replayed", "true")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(prior.Status)
			_, _ = w.Write(prior.Body)
			return
		}
		c.key = key
		status, out := h.run(c, r)
		answer := envelope(info.requestID, status, out)
		// Only a change that was made is replayed. A refusal (400, 404, 409: services still
		// running, say) changed nothing: the same request again is judged again, so a caller
		// who fixed the cause may retry under the same key; a 5xx may not have happened.
		if status >= 300 {
			if err := h.Store.ReleaseKey(req.Context(), info.caller, key, hash); err != nil {
				h.Log.ErrorContext(req.Context(), "idempotency release failed", "error", err.Error())
			}
		} else if err := h.Store.FinishKey(req.Context(), info.caller, key, hash, store.Answer{Status: status, Body: answer}); err != nil {
			// The work is done; only the replay is lost. Say so in the log, answer anyway.
			h.Log.ErrorContext(req.Context(), "idempotency answer not stored", "error", err.Error())
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(answer)
	})
}

// run calls a route and turns its error into a status and a message.
func (h *Handler) run(c *call, r route) (int, any) {
	out, err := r.run(h, c)
	if err == nil {
		return http.StatusOK, out
	}
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status, ae
	}
	h.Log.ErrorContext(c.Context(), "api request failed", "method", c.Method, "path", c.URL.Path, "error", err.Error())
	// Throttled, or AWS unavailable, after the SDK's own retries (a 5xx, a dropped connection,
	// keys left unprocessed): the caller may try again shortly.
	if cloud.IsTransient(err) || errors.Is(err, servicestate.ErrUnprocessed) {
		return http.StatusServiceUnavailable, &apiError{Status: http.StatusServiceUnavailable, Message: "unavailable, retry shortly: " + err.Error()}
	}
	return http.StatusInternalServerError, &apiError{Status: http.StatusInternalServerError, Message: "internal error: " + err.Error()}
}

// The answers, in ClickHouse Cloud's API shape.
type successBody struct {
	Status    int    `json:"status"`
	RequestID string `json:"requestId"`
	Result    any    `json:"result"`
}

type errorBody struct {
	Status    int    `json:"status"`
	Error     string `json:"error"`
	RequestID string `json:"requestId"`
}

func envelope(requestID string, status int, out any) []byte {
	var v any = successBody{Status: status, RequestID: requestID, Result: out}
	if ae, ok := out.(*apiError); ok {
		v = errorBody{Status: status, Error: ae.Message, RequestID: requestID}
	}
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(errorBody{Status: http.StatusInternalServerError, Error: "encode the answer: " + err.Error(), RequestID: requestID})
	}
	return b
}

func writeEnvelope(w http.ResponseWriter, req *http.Request, status int, out any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(envelope(callOf(req.Context()).requestID, status, out))
}

func writeError(w http.ResponseWriter, req *http.Request, status int, msg string) {
	writeEnvelope(w, req, status, &apiError{Status: status, Message: msg})
}

func envelopeResponse(requestID string, status int, msg string) events.APIGatewayV2HTTPResponse {
	return events.APIGatewayV2HTTPResponse{StatusCode: status, Headers: map[string]string{"Content-Type": "application/json"},
		Body: string(envelope(requestID, status, &apiError{Status: status, Message: msg}))}
}
