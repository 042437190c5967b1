package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/byocloud/byoc/infra/local/frontdoor"
)

// DoorConfig tells the door's faults who is calling.
type DoorConfig struct {
	// Caller reports whether a request is one the faults may hit, and the origin of its
	// session: the system's own callers (function and workload sessions, Step Functions'
	// tasks) are; the people driving a scenario (root users: the operator, the customer
	// applying the bootstrap) and the cloud's plumbing are not.
	Caller func(*http.Request) (eligible bool, origin string)
	// Kill kills the function process whose session name is origin and reports whether there
	// was one (a pod's session is not a function).
	Kill func(origin string) bool
	// IsFunction reports whether origin is a running function.
	IsFunction func(origin string) bool
}

// Door wraps the front door: it injects the front-door faults into eligible requests and
// counts the SDK retries that reach it.
func (in *Injector) Door(next http.Handler, cfg DoorConfig) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !in.Armed() || strings.HasPrefix(r.URL.Path, "/_") || strings.HasPrefix(r.URL.Path, "/kumo/") {
			next.ServeHTTP(w, r)
			return
		}
		eligible, origin := cfg.Caller(r)
		if !eligible {
			next.ServeHTTP(w, r)
			return
		}
		if sdkAttempt(r) > 1 {
			in.mu.Lock()
			in.retries++
			in.mu.Unlock()
		}
		service := frontdoor.ServiceOf(r)
		op := frontdoor.Operation(r, service)
		point := service + " " + op
		if origin != "" {
			point += " by " + origin
		}
		switch {
		case in.decide(Throttle, point, "throttled"):
			writeError(w, service, throttleError(service, op))
		case in.decide(ServerError, point, "server error"):
			writeError(w, service, serverError(service, in.coin(point)))
		case in.decide(LostAnswer, point, "applied, answer lost"):
			next.ServeHTTP(discard(), r)
			drop(w)
		case cfg.IsFunction(origin) && in.decide(KillDuring, point, "applied, then its process was killed"):
			next.ServeHTTP(discard(), r)
			cfg.Kill(origin)
			drop(w)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// sdkAttempt reads the attempt number the AWS SDKs send ("amz-sdk-request: attempt=2; max=5").
func sdkAttempt(r *http.Request) int {
	for part := range strings.SplitSeq(r.Header.Get("amz-sdk-request"), ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "attempt="); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// drop closes the client's connection without an answer, with a reset, as a load balancer
// or a dying host does. The SDK sees "connection reset" and retries the request.
func drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // not hijackable: aborting the handler also drops it
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// apiError is an error answer: HTTP status and error code.
type apiError struct {
	status int
	code   string
	msg    string
}

// fault is whose fault the error is, as the query protocols say it.
func (e apiError) fault() string {
	if e.status >= 500 {
		return "Receiver"
	}
	return "Sender"
}

// throttleError is the throttling answer each service gives.
// https://docs.aws.amazon.com/general/latest/gr/api-retries.html and each API reference.
func throttleError(service, op string) apiError {
	switch service {
	case "dynamodb":
		switch op {
		case "GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem", "BatchWriteItem", "TransactWriteItems", "TransactGetItems":
			return apiError{400, "ProvisionedThroughputExceededException", "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API."}
		}
		return apiError{400, "ThrottlingException", "Rate of requests exceeds the allowed throughput."}
	case "sqs":
		return apiError{403, "RequestThrottled", "Request is throttled."}
	case "lambda":
		return apiError{429, "TooManyRequestsException", "Rate Exceeded."}
	case "s3":
		return apiError{503, "SlowDown", "Please reduce your request rate."}
	case "cloudformation", "sts":
		return apiError{400, "Throttling", "Rate exceeded"}
	case "scheduler":
		return apiError{429, "ThrottlingException", "Rate exceeded."}
	case "ec2":
		return apiError{503, "RequestLimitExceeded", "Request limit exceeded."}
	}
	return apiError{400, "ThrottlingException", "Rate exceeded"}
}

// serverError is the service's 500 answer, or (unavailable) its 503. Lambda's API answers
// service failures with 500 ServiceException only (its reference lists no 503), which is
// what Step Functions' Lambda.ServiceException retries match.
func serverError(service string, unavailable bool) apiError {
	if unavailable && service != "lambda" {
		return apiError{503, "ServiceUnavailable", "Service is unavailable. Please try again later."}
	}
	switch service {
	case "dynamodb":
		return apiError{500, "InternalServerError", "Internal server error"}
	case "scheduler":
		return apiError{500, "InternalServerException", "Unexpected error during processing of request."}
	case "lambda":
		return apiError{500, "ServiceException", "An internal error occurred."}
	case "s3", "sqs":
		return apiError{500, "InternalError", "We encountered an internal error. Please try again."}
	case "ec2":
		return apiError{500, "InternalError", "An internal error has occurred."}
	}
	return apiError{500, "InternalFailure", "The request processing has failed because of an unknown error, exception or failure."}
}

// writeError answers e in the service's protocol: awsJson (X-Amz-Target), restJson (Lambda,
// Scheduler), query XML (CloudFormation, STS), EC2's own query XML, or S3's REST XML.
func writeError(w http.ResponseWriter, service string, e apiError) {
	h := w.Header()
	requestID := "chaos-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	h.Set("x-amzn-RequestId", requestID)
	switch {
	case service == "s3":
		h.Set("Content-Type", "application/xml")
		h.Set("x-amz-request-id", requestID)
		w.WriteHeader(e.status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message><RequestId>%s</RequestId></Error>`, e.code, e.msg, requestID)
	case service == "cloudformation" || service == "sts":
		h.Set("Content-Type", "text/xml")
		w.WriteHeader(e.status)
		fmt.Fprintf(w, `<ErrorResponse><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`, e.fault(), e.code, e.msg, requestID)
	case service == "ec2":
		h.Set("Content-Type", "text/xml;charset=UTF-8")
		w.WriteHeader(e.status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>%s</RequestID></Response>`, e.code, e.msg, requestID)
	case service == "lambda" || service == "scheduler":
		h.Set("Content-Type", "application/json")
		h.Set("x-amzn-ErrorType", e.code)
		w.WriteHeader(e.status)
		body := map[string]string{"message": e.msg}
		if service == "lambda" {
			body["Type"] = "User"
			if e.status >= 500 {
				body["Type"] = "Service"
			}
		}
		_ = json.NewEncoder(w).Encode(body)
	default:
		version := "1.1" // EventBridge, CloudWatch Logs
		switch service {
		case "dynamodb", "sqs", "states":
			version = "1.0"
		}
		h.Set("Content-Type", "application/x-amz-json-"+version)
		if service == "sqs" {
			h.Set("x-amzn-query-error", e.code+";"+e.fault())
		}
		w.WriteHeader(e.status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": namespace(service) + "#" + e.code, "message": e.msg})
	}
}

// namespace is the shape namespace awsJson errors carry before '#'.
func namespace(service string) string {
	switch service {
	case "dynamodb":
		return "com.amazonaws.dynamodb.v20120810"
	case "sqs":
		return "com.amazonaws.sqs"
	case "states":
		return "com.amazonaws.stepfunctions"
	case "events":
		return "com.amazonaws.eventbridge"
	}
	return "com.amazonaws." + service
}

// discard is a response writer that keeps nothing: the answer that is about to be lost.
func discard() http.ResponseWriter { return &sink{header: http.Header{}} }

type sink struct {
	header http.Header
	body   bytes.Buffer
}

func (s *sink) Header() http.Header         { return s.header }
func (s *sink) Write(b []byte) (int, error) { return s.body.Write(b) }
func (s *sink) WriteHeader(int)             {}
