package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/smithy-go"

	"github.com/byocloud/byoc/shared/servicestate"
)

// fakeLambda records the payloads forwarded to the operator functions and answers as told.
type fakeLambda struct {
	calls  []map[string]any
	fnErr  string // errorType to answer with, "" for success
	errMsg string
}

func (f *fakeLambda) Invoke(_ context.Context, in *lambda.InvokeInput, _ ...func(*lambda.Options)) (*lambda.InvokeOutput, error) {
	var p map[string]any
	_ = json.Unmarshal(in.Payload, &p)
	p["_function"] = aws.ToString(in.FunctionName)
	f.calls = append(f.calls, p)
	if f.fnErr != "" {
		body, _ := json.Marshal(map[string]string{"errorType": f.fnErr, "errorMessage": f.errMsg})
		return &lambda.InvokeOutput{FunctionError: aws.String("Unhandled"), Payload: body}, nil
	}
	return &lambda.InvokeOutput{Payload: []byte(`{"ok":true}`)}, nil
}

func handler(l *fakeLambda) *Handler {
	return NewHandler(&Handler{
		Config: Config{Functions: map[string]string{targetInvite: "invite-fn", targetMaintenance: "maintenance-fn", targetReleases: "releases-fn", targetPeering: "peering-fn"}},
		Lambda: l, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
}

func request(method, path, body string) events.APIGatewayV2HTTPRequest {
	return events.APIGatewayV2HTTPRequest{Version: "2.0", RawPath: path, Body: body,
		RequestContext: events.APIGatewayV2HTTPRequestContext{RequestID: "req-1", HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method},
			Authorizer: &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{IAM: &events.APIGatewayV2HTTPRequestContextAuthorizerIAMDescription{UserARN: "arn:aws:iam::111122223333:user/ops"}}}}
}

func serve(t *testing.T, h *Handler, method, path, body string) (int, map[string]any) {
	t.Helper()
	resp, err := h.Handle(context.Background(), request(method, path, body))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &doc); err != nil {
		t.Fatalf("answer is not JSON: %q", resp.Body)
	}
	if doc["requestId"] != "req-1" || doc["status"] != float64(resp.StatusCode) {
		t.Fatalf("envelope %v lacks the status or request id", doc)
	}
	return resp.StatusCode, doc
}

// A forwarded action carries only the body's accepted fields, the path's ids, the action and
// the caller: the body cannot choose the action, the deployment or the actor, nor pass what
// the functions take from schedules and events (a firing's purpose, an event's envelope).
func TestForwardPassesOnlyAcceptedFields(t *testing.T) {
	l := &fakeLambda{}
	h := handler(l)
	status, doc := serve(t, h, http.MethodPatch, "/v1/deployments/abc123/maintenance", `{"channel":"fast","canary":true}`)
	if status != http.StatusOK || doc["result"].(map[string]any)["ok"] != true {
		t.Fatalf("forward: %d %v", status, doc)
	}
	got := l.calls[0]
	want := map[string]any{"_function": "maintenance-fn", "action": "set", "deploymentId": "abc123", "channel": "fast", "canary": true, "actor": "arn:aws:iam::111122223333:user/ops"}
	if len(got) != len(want) {
		t.Fatalf("payload %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("payload %v, want %v", got, want)
		}
	}
	for _, body := range []string{`{"action":"defer"}`, `{"deploymentId":"other"}`, `{"actor":"someone"}`, `{"purpose":"open","scheduledTime":"2026-01-01T00:00:00Z"}`, `{"detail-type":"x"}`} {
		status, doc := serve(t, h, http.MethodPatch, "/v1/deployments/abc123/maintenance", body)
		if status != http.StatusBadRequest || !strings.Contains(doc["error"].(string), "not a field of this request (accepted: window, channel, canary)") {
			t.Errorf("body %s: %d %v, want 400 naming the field", body, status, doc)
		}
	}
	if len(l.calls) != 1 {
		t.Fatalf("refused bodies reached the function: %v", l.calls[1:])
	}
}

// The functions' errorTypes become the API's statuses; anything else is the function failing.
func TestFunctionErrorsBecomeStatuses(t *testing.T) {
	for errorType, want := range map[string]int{
		"ValidationError": 400, "InvalidRequest": 400, "NotFound": 404, "Refused": 409, "Conflict": 409, "DeploymentExists": 409,
		"Runtime.ExitError": 502, "TransientError": 502,
	} {
		h := handler(&fakeLambda{fnErr: errorType, errMsg: "the reason"})
		status, doc := serve(t, h, http.MethodGet, "/v1/releases", "")
		if status != want || !strings.Contains(doc["error"].(string), "the reason") {
			t.Errorf("%s: %d %v, want %d with the function's message", errorType, status, doc, want)
		}
	}
}

// The API's own AWS calls: throttled beyond the SDK's retries is 503 (retry shortly), a
// defect is 500; both say what failed.
func TestThrottledReadsAre503(t *testing.T) {
	h := handler(&fakeLambda{})
	c := &call{Request: httptest.NewRequest(http.MethodGet, "/v1/deployments", nil)}
	for err, want := range map[error]int{
		fmt.Errorf("read: %w", servicestate.ErrUnprocessed):                                              503,
		fmt.Errorf("query: %w", &smithy.GenericAPIError{Code: "ProvisionedThroughputExceededException"}): 503,
		errors.New("decode: a defect"):                                                                   500,
	} {
		status, doc := h.run(c, route{run: func(*Handler, *call) (any, error) { return nil, err }})
		if ae, ok := doc.(*apiError); status != want || !ok || !strings.Contains(ae.Message, err.Error()) {
			t.Errorf("%v: %d %+v, want %d naming the error", err, status, doc, want)
		}
	}
}

func TestMalformedBodiesAndUnknownRoutes(t *testing.T) {
	h := handler(&fakeLambda{})
	for _, c := range []struct {
		method, path, body string
		status             int
		says               string
	}{
		{"POST", "/v1/invitations", `{"customerId":`, 400, "body: not a JSON object"},
		{"POST", "/v1/invitations", `{"customerId":"a"} {"x":1}`, 400, "one JSON object"},
		{"POST", "/v1/invitations", `[1]`, 400, "body"},
		{"GET", "/v1/nowhere", "", 404, "no resource GET /v1/nowhere"},
		{"PUT", "/v1/deployments", "", 404, "no resource PUT /v1/deployments"},
		{"POST", "/v1/invitations", strings.Repeat(" ", MaxBody+1), 413, "at most"},
	} {
		status, doc := serve(t, h, c.method, c.path, c.body)
		if status != c.status || !strings.Contains(doc["error"].(string), c.says) {
			t.Errorf("%s %s %.20q: %d %v, want %d %q", c.method, c.path, c.body, status, doc, c.status, c.says)
		}
	}
}

// Every route of the table is a valid pattern with a summary (the docs and the CLI list them).
func TestRouteTable(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Routes() {
		method, path, ok := strings.Cut(r[0], " ")
		if !ok || !strings.HasPrefix(path, "/v1/") || r[1] == "" || seen[r[0]] {
			t.Errorf("route %q %q", r[0], r[1])
		}
		if !slices.Contains([]string{"GET", "POST", "PUT", "PATCH", "DELETE"}, method) {
			t.Errorf("route %q: method %s", r[0], method)
		}
		seen[r[0]] = true
	}
}
