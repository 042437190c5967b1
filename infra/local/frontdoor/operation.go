package frontdoor

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// maxQueryBody bounds how much of a Query-protocol body the door reads to find the Action.
// CloudFormation template bodies can be large (51,200 bytes inline on AWS); bodies beyond
// this limit are still forwarded whole, only their action is reported as unknown.
const maxQueryBody = 1 << 20

// Operation names the API operation of a request, for counting and for the timeline:
// the X-Amz-Target operation (JSON protocols), the Action parameter (Query protocol), or the
// REST operation of Lambda and Scheduler. A Query-protocol body is read and restored, so the
// handler still sees it whole.
func Operation(r *http.Request, service string) string {
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		if _, op, ok := strings.Cut(target, "."); ok {
			return op
		}
		return target
	}
	if action := r.URL.Query().Get("Action"); action != "" {
		return action
	}
	if r.Method == http.MethodPost && isFormEncoded(r) {
		if action := formAction(r); action != "" {
			return action
		}
	}
	switch service {
	case "lambda":
		return lambdaOperation(r.Method, r.URL.Path)
	case "scheduler":
		return schedulerOperation(r.Method, r.URL.Path)
	}
	return r.Method + " " + firstSegment(r.URL.Path)
}

func isFormEncoded(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/x-www-form-urlencoded"
}

// formAction reads the body to find Action=..., then puts the body back.
func formAction(r *http.Request) string {
	if r.Body == nil {
		return ""
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxQueryBody+1))
	rest := r.Body
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), rest), rest}
	if err != nil || len(body) > maxQueryBody {
		return ""
	}
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return ""
	}
	return values.Get("Action")
}

// lambdaOperation names the REST operations of the Lambda API that the local cloud uses.
func lambdaOperation(method, path string) string {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if len(segs) < 2 {
		return method + " " + path
	}
	resource := segs[1]
	switch {
	case resource == "functions" && len(segs) == 2:
		return map[string]string{"POST": "CreateFunction", "GET": "ListFunctions"}[method]
	case resource == "functions" && len(segs) == 3:
		return map[string]string{"GET": "GetFunction", "DELETE": "DeleteFunction"}[method]
	case resource == "functions" && len(segs) >= 4:
		switch segs[3] {
		case "invocations":
			return "Invoke"
		case "configuration":
			return map[string]string{"GET": "GetFunctionConfiguration", "PUT": "UpdateFunctionConfiguration"}[method]
		case "code":
			return "UpdateFunctionCode"
		case "policy":
			return map[string]string{"GET": "GetPolicy", "POST": "AddPermission", "DELETE": "RemovePermission"}[method]
		}
	case resource == "event-source-mappings" && len(segs) == 2:
		return map[string]string{"POST": "CreateEventSourceMapping", "GET": "ListEventSourceMappings"}[method]
	case resource == "event-source-mappings":
		return map[string]string{"GET": "GetEventSourceMapping", "PUT": "UpdateEventSourceMapping", "DELETE": "DeleteEventSourceMapping"}[method]
	case resource == "tags":
		return map[string]string{"GET": "ListTags", "POST": "TagResource", "DELETE": "UntagResource"}[method]
	}
	return method + " " + firstSegment(path)
}

func schedulerOperation(method, path string) string {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	noun := map[string]string{"schedules": "Schedule", "schedule-groups": "ScheduleGroup"}[segs[0]]
	if noun == "" {
		return method + " " + firstSegment(path)
	}
	if len(segs) == 1 {
		return "List" + noun + "s"
	}
	verb := map[string]string{"POST": "Create", "GET": "Get", "PUT": "Update", "DELETE": "Delete"}[method]
	return verb + noun
}

func firstSegment(path string) string {
	seg, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return "/" + seg
}
