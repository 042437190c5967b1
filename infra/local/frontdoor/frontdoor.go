// Package frontdoor is the local cloud's single AWS endpoint. Every SDK client, the AWS CLI
// and kumo's own service-to-service calls (which always go to localhost:4566) reach one
// address; the door sends each request to the component that serves it: byoc's engines for
// Step Functions, CloudFormation and STS, kumo for the rest. One AWS_ENDPOINT_URL is then
// enough for every client, as one regional endpoint set is on AWS.
//
// Requests are routed by the service name in their SigV4 credential scope, the same key
// AWS's front ends use. Unsigned requests (kumo's internal calls, Lambda Runtime API
// pollers) are routed by their X-Amz-Target prefix, or go to the fallback (kumo).
package frontdoor

import (
	"log/slog"
	"net/http"
	"strings"
	"sync"
)

// Route sends the requests of one service that satisfy Match to Handler.
type Route struct {
	Service string                   // SigV4 signing name: "states", "cloudformation", "lambda", ...
	Match   func(*http.Request) bool // nil matches every request of the service
	Handler http.Handler
}

// Door routes AWS requests. Routes are tried in the order they were added; the first whose
// service and matcher accept the request serves it. Safe for concurrent use, and routes may
// be added while it serves (engines are mounted as the local cloud starts them).
type Door struct {
	mu       sync.RWMutex
	routes   []Route
	fallback http.Handler
	stats    *Stats
	local    *http.ServeMux // LocalPrefix: the local cloud's own controls
}

// LocalPrefix is the path of the local cloud's own controls (fire a schedule now, deliver an
// event again): plain HTTP, no AWS signature, not counted as AWS calls.
const LocalPrefix = "/_byoc/"

// New returns a door that sends every request no route claims to fallback.
func New(fallback http.Handler) *Door {
	return &Door{fallback: fallback, stats: NewStats(), local: http.NewServeMux()}
}

// HandleLocal serves a control of the local cloud; pattern is an http.ServeMux pattern under
// LocalPrefix ("POST /_byoc/schedules/{group}/{name}/fire").
func (d *Door) HandleLocal(pattern string, h http.Handler) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.local.Handle(pattern, h)
}

// Handle sends every request of service to h.
func (d *Door) Handle(service string, h http.Handler) {
	d.HandleIf(service, nil, h)
}

// HandleIf sends the requests of service that satisfy match to h.
func (d *Door) HandleIf(service string, match func(*http.Request) bool, h http.Handler) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.routes = append(d.routes, Route{Service: service, Match: match, Handler: h})
}

// Stats returns the door's call counters.
func (d *Door) Stats() *Stats { return d.stats }

// ServeHTTP routes one request.
func (d *Door) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, LocalPrefix) {
		d.mu.RLock()
		local := d.local
		d.mu.RUnlock()
		local.ServeHTTP(w, r)
		return
	}
	if isKumoNative(r.URL.Path) {
		// Runtime API long polls and kumo's debug endpoints: not AWS calls, not counted.
		d.fallback.ServeHTTP(w, r)
		return
	}
	service := ServiceOf(r)
	op := Operation(r, service)
	if r.Header.Get(InternalHeader) == "" {
		d.stats.record(service, op)
	}
	sw := &statusWriter{ResponseWriter: w}
	d.handlerFor(service, r).ServeHTTP(sw, r)
	if sw.status >= 500 {
		// SDKs retry 5xx answers, and a retried create is a duplicate: say which call got one.
		slog.Warn("front door: server error", "service", service, "operation", op, "status", sw.status)
	}
}

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// Flush lets streamed answers (Runtime API long polls go around the door, but a handler may
// flush) through the wrapper.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the underlying writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (d *Door) handlerFor(service string, r *http.Request) http.Handler {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, rt := range d.routes {
		if rt.Service == service && (rt.Match == nil || rt.Match(r)) {
			return rt.Handler
		}
	}
	return d.fallback
}

// kumo's own namespaces: the Lambda Runtime API and its debug endpoints.
func isKumoNative(path string) bool {
	return strings.HasPrefix(path, "/_runtime/") || strings.HasPrefix(path, "/kumo/")
}

// targetPrefixes maps the X-Amz-Target prefix of JSON-protocol services to their signing
// name, for requests that arrive unsigned (kumo signs only some of its internal calls).
var targetPrefixes = map[string]string{
	"AWSStepFunctions":                 "states",
	"AWSEvents":                        "events",
	"AmazonSQS":                        "sqs",
	"DynamoDB_20120810":                "dynamodb",
	"Logs_20140328":                    "logs",
	"AWSSecurityTokenServiceV20110615": "sts",
}

// ServiceOf returns the service a request is for: its SigV4 signing name, else the service
// its X-Amz-Target names, else "".
func ServiceOf(r *http.Request) string {
	if s := signingService(r); s != "" {
		return s
	}
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		prefix, _, _ := strings.Cut(target, ".")
		return targetPrefixes[prefix]
	}
	return ""
}

// signingService reads the service from the credential scope
// <key>/<date>/<region>/<service>/aws4_request, in the Authorization header or a presigned URL.
func signingService(r *http.Request) string {
	_, _, service := CredentialScope(r)
	return service
}

// CredentialScope returns the access key, region and service of a SigV4-signed request
// ("" for an unsigned one).
func CredentialScope(r *http.Request) (accessKey, region, service string) {
	cred := ""
	if auth := r.Header.Get("Authorization"); strings.HasPrefix(auth, "AWS4-HMAC-SHA256") {
		for part := range strings.SplitSeq(strings.TrimPrefix(auth, "AWS4-HMAC-SHA256"), ",") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(part), "Credential="); ok {
				cred = v
				break
			}
		}
	} else {
		cred = r.URL.Query().Get("X-Amz-Credential")
	}
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" {
		return "", "", ""
	}
	return parts[0], parts[2], parts[3]
}
