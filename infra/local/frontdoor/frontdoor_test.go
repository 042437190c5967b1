package frontdoor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// recorder is a handler that remembers what reached it and answers 400 (the SDK call then
// fails, which these tests ignore: they check routing, not responses).
type recorder struct {
	name string
	mu   sync.Mutex
	hits []string // "<method> <path> <body>"
}

func (h *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.hits = append(h.hits, r.Method+" "+r.URL.Path+" "+string(body))
	h.mu.Unlock()
	http.Error(w, "recorded by "+h.name, http.StatusBadRequest)
}

func (h *recorder) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.hits)
}

func newDoor(t *testing.T) (*Door, *recorder, string) {
	t.Helper()
	fallback := &recorder{name: "fallback"}
	d := New(fallback)
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	return d, fallback, srv.URL
}

func sdkConfig(url string) aws.Config {
	return aws.Config{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(url),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		RetryMaxAttempts: 1,
	}
}

func TestRoutesBySigningServiceAndFallsBackToKumo(t *testing.T) {
	d, fallback, url := newDoor(t)
	states, cfn, stsH := &recorder{name: "states"}, &recorder{name: "cloudformation"}, &recorder{name: "sts"}
	d.Handle("states", states)
	d.Handle("cloudformation", cfn)
	d.Handle("sts", stsH)
	cfg := sdkConfig(url)
	ctx := context.Background()

	_, _ = sfn.NewFromConfig(cfg).ListStateMachines(ctx, &sfn.ListStateMachinesInput{})
	_, _ = cloudformation.NewFromConfig(cfg).DescribeStacks(ctx, &cloudformation.DescribeStacksInput{})
	_, _ = sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	_, _ = lambda.NewFromConfig(cfg).ListFunctions(ctx, &lambda.ListFunctionsInput{})

	for _, c := range []struct {
		h    *recorder
		want int
	}{{states, 1}, {cfn, 1}, {stsH, 1}, {fallback, 1}} {
		if got := c.h.count(); got != c.want {
			t.Errorf("%s received %d requests, want %d", c.h.name, got, c.want)
		}
	}
	if !strings.Contains(cfn.hits[0], "Action=DescribeStacks") {
		t.Errorf("the CloudFormation handler must see the whole Query body after the door read its Action; got %q", cfn.hits[0])
	}
	stats := d.Stats()
	for _, c := range []Call{{"states", "ListStateMachines"}, {"cloudformation", "DescribeStacks"}, {"sts", "GetCallerIdentity"}, {"lambda", "ListFunctions"}} {
		if got := stats.Count(c.Service, c.Operation); got != 1 {
			t.Errorf("count of %s:%s = %d, want 1 (all: %v)", c.Service, c.Operation, got, stats.Snapshot())
		}
	}
	if stats.Total() != 4 {
		t.Errorf("total calls = %d, want 4", stats.Total())
	}
	stats.Reset()
	if stats.Total() != 0 {
		t.Errorf("after Reset total = %d", stats.Total())
	}
}

func TestHandleIfClaimsOnlyMatchingRequestsOfItsService(t *testing.T) {
	d, fallback, url := newDoor(t)
	esm := &recorder{name: "event source mappings"}
	d.HandleIf("lambda", func(r *http.Request) bool {
		return strings.HasPrefix(r.URL.Path, "/2015-03-31/event-source-mappings")
	}, esm)
	client := lambda.NewFromConfig(sdkConfig(url))
	ctx := context.Background()

	_, _ = client.ListEventSourceMappings(ctx, &lambda.ListEventSourceMappingsInput{})
	_, _ = client.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("f"), Payload: []byte(`{}`)})

	if esm.count() != 1 || fallback.count() != 1 {
		t.Fatalf("mappings handler got %d, fallback got %d; want 1 and 1", esm.count(), fallback.count())
	}
	if got := d.Stats().Count("lambda", "Invoke"); got != 1 {
		t.Errorf("Invoke counted %d times, want 1", got)
	}
}

func TestUnsignedRequestsRouteByTargetAndRuntimeAPIIsNotCounted(t *testing.T) {
	d, fallback, base := newDoor(t)
	states := &recorder{name: "states"}
	d.Handle("states", states)

	req, _ := http.NewRequest(http.MethodPost, base+"/", strings.NewReader(`{}`))
	req.Header.Set("X-Amz-Target", "AWSStepFunctions.StartExecution")
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	mustDo(t, req)
	req, _ = http.NewRequest(http.MethodGet, base+"/_runtime/fn/2018-06-01/runtime/invocation/next", nil)
	mustDo(t, req)

	if states.count() != 1 {
		t.Errorf("unsigned StartExecution: states handler got %d requests, want 1", states.count())
	}
	if fallback.count() != 1 {
		t.Errorf("Runtime API poll: fallback got %d requests, want 1", fallback.count())
	}
	if got := d.Stats().Snapshot(); len(got) != 1 || got[Call{"states", "StartExecution"}] != 1 {
		t.Errorf("stats = %v, want only states:StartExecution once (Runtime API polls are not AWS calls)", got)
	}
}

func mustDo(t *testing.T, req *http.Request) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
}

func TestOperationNames(t *testing.T) {
	cases := []struct {
		method, path, service, want string
	}{
		{"POST", "/2015-03-31/functions/onboard/invocations", "lambda", "Invoke"},
		{"POST", "/2015-03-31/functions", "lambda", "CreateFunction"},
		{"PUT", "/2015-03-31/event-source-mappings/abc", "lambda", "UpdateEventSourceMapping"},
		{"POST", "/schedules/s1", "scheduler", "CreateSchedule"},
		{"GET", "/schedules", "scheduler", "ListSchedules"},
		{"DELETE", "/schedule-groups/g", "scheduler", "DeleteScheduleGroup"},
		{"PUT", "/bucket/key", "s3", "PUT /bucket"},
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, c.path, nil)
		if got := Operation(r, c.service); got != c.want {
			t.Errorf("Operation(%s %s) = %q, want %q", c.method, c.path, got, c.want)
		}
	}
}

func TestSecondListenerOnBusyPortNamesThePort(t *testing.T) {
	first, err := Listen("127.0.0.1:0", http.NotFoundHandler())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	_, err = Listen(first.Addr, http.NotFoundHandler())
	if err == nil {
		t.Fatal("a second listener on a busy port must fail")
	}
	port := first.Addr[strings.LastIndex(first.Addr, ":")+1:]
	if !errors.Is(err, ErrAddrInUse) || !strings.Contains(err.Error(), "port "+port+" is already in use") {
		t.Errorf("error = %v, want ErrAddrInUse naming port %s", err, port)
	}
	// The first server is unaffected.
	resp, err := http.Get(first.URL + "/")
	if err != nil {
		t.Fatalf("first server stopped answering: %v", err)
	}
	_ = resp.Body.Close()
}

// proxied serves the door's proxy in front of a backend playing kumo; it returns the proxy
// and the front's URL.
func proxied(t *testing.T, kumo http.HandlerFunc) (http.Handler, string) {
	t.Helper()
	backend := httptest.NewServer(kumo)
	t.Cleanup(backend.Close)
	p, err := Proxy(backend.URL)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	return p, front.URL
}

func TestProxyForwardsAndRejectsBadTarget(t *testing.T) {
	_, front := proxied(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "kumo saw "+r.URL.Path)
	})
	resp, err := http.Get(front + "/x/y")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(body) != "kumo saw /x/y" {
		t.Errorf("proxied body = %q", body)
	}
	for _, bad := range []string{"", "localhost:4566", "://x"} {
		if _, err := Proxy(bad); err == nil || !strings.Contains(err.Error(), "must be an absolute http URL") {
			t.Errorf("Proxy(%q) error = %v, want the absolute-URL rule", bad, err)
		}
	}
}

// serverBody is a request body as net/http's server hands it to a handler: the server
// closes it when the answer's headers go out, and a read after that fails even at its end.
// Its read past the last byte waits for the answer to begin, as the transport's check for
// bytes beyond Content-Length sometimes does on a loaded machine.
type serverBody struct {
	data  *bytes.Reader
	began chan struct{}
}

func (b *serverBody) Read(p []byte) (int, error) {
	if b.data.Len() == 0 {
		<-b.began
		return 0, http.ErrBodyReadAfterClose
	}
	return b.data.Read(p)
}

func (b *serverBody) Close() error { return nil }

// closingWriter closes the request body when the headers go out, as the server does.
type closingWriter struct {
	*httptest.ResponseRecorder
	once  sync.Once
	began chan struct{}
}

func (w *closingWriter) WriteHeader(code int) {
	w.once.Do(func() { close(w.began) })
	w.ResponseRecorder.WriteHeader(code)
}

// A request whose body the server closed once the answer began still gets the whole
// answer: the door forwards a body of its own, so the transport's last read of it cannot
// fail and cut kumo's connection mid-answer (which the SDK saw as a 200 with a truncated
// body, "deserialization failed, unexpected EOF", and does not retry).
func TestProxyAnswerIsWholeWhenTheServerClosesTheRequestBody(t *testing.T) {
	answer := strings.Repeat("kumo's items ", 1<<19) // 6.5 MB: still being copied when the last read fails
	p, _ := proxied(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, r.ContentLength))
		_, _ = io.WriteString(w, answer)
	})
	request := `{"TableName":"byoc-state"}`
	began := make(chan struct{})
	r := httptest.NewRequest(http.MethodPost, "/", &serverBody{data: bytes.NewReader([]byte(request)), began: began})
	r.ContentLength = int64(len(request))
	w := &closingWriter{ResponseRecorder: httptest.NewRecorder(), began: began}
	p.ServeHTTP(w, r)
	if w.Code != http.StatusOK || w.Body.String() != answer {
		t.Fatalf("answer %d of %d bytes, want the whole %d", w.Code, w.Body.Len(), len(answer))
	}
}

// zeros is an endless body.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// A body larger than the door holds is refused before it reaches kumo, whatever its claimed
// length; a chunked one within the limit is forwarded with its length.
func TestProxyBodyLimitAndLength(t *testing.T) {
	var seen []string
	_, front := proxied(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		seen = append(seen, fmt.Sprintf("%d %v %d", r.ContentLength, r.TransferEncoding, len(body)))
	})
	for _, length := range []int64{maxBody + 1, -1} { // declared, and chunked
		huge, _ := http.NewRequest(http.MethodPost, front, io.LimitReader(zeros{}, maxBody+1))
		huge.ContentLength = length
		resp, err := http.DefaultClient.Do(huge)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || len(seen) != 0 {
			t.Fatalf("a body over the limit (length %d): %d, kumo saw %v; want 413 and nothing forwarded", length, resp.StatusCode, seen)
		}
	}
	chunked, _ := http.NewRequest(http.MethodPost, front, io.LimitReader(zeros{}, 5000)) // no length: sent chunked
	resp, err := http.DefaultClient.Do(chunked)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if len(seen) != 1 || seen[0] != "5000 [] 5000" {
		t.Fatalf("kumo saw %v, want the body with its length (5000 [] 5000)", seen)
	}
}

func TestCredentialScope(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20250101/eu-west-1/sqs/aws4_request, SignedHeaders=host, Signature=x")
	if k, region, svc := CredentialScope(r); k != "AKID" || region != "eu-west-1" || svc != "sqs" {
		t.Errorf("header scope = %q %q %q", k, region, svc)
	}
	r = httptest.NewRequest("GET", "/?X-Amz-Credential="+url.QueryEscape("K/20250101/us-east-1/s3/aws4_request"), nil)
	if k, _, svc := CredentialScope(r); k != "K" || svc != "s3" {
		t.Errorf("presigned scope = %q %q", k, svc)
	}
	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=broken")
	if k, _, svc := CredentialScope(r); k != "" || svc != "" {
		t.Errorf("malformed scope must read as unsigned, got %q %q", k, svc)
	}
}

func TestInternalCallsAreRoutedButNotCounted(t *testing.T) {
	d, _, url := newDoor(t)
	states := &recorder{name: "states"}
	d.Handle("states", states)
	cfg := sdkConfig(url)
	cfg.HTTPClient = InternalClient()
	_, _ = sfn.NewFromConfig(cfg).ListStateMachines(context.Background(), &sfn.ListStateMachinesInput{})
	if states.count() != 1 {
		t.Fatalf("an internal call must still reach its service; states got %d", states.count())
	}
	if total := d.Stats().Total(); total != 0 {
		t.Errorf("internal calls counted: %v", d.Stats().Snapshot())
	}
}

func TestServerErrorsAreReportedAndPassedThrough(t *testing.T) {
	var logged bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logged, nil)))
	defer slog.SetDefault(prev)
	d, _, url := newDoor(t)
	d.Handle("states", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "engine broke", http.StatusInternalServerError)
	}))
	_, err := sfn.NewFromConfig(sdkConfig(url)).ListStateMachines(context.Background(), &sfn.ListStateMachinesInput{})
	if err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("the client must see the 500: %v", err)
	}
	if !strings.Contains(logged.String(), "front door: server error") || !strings.Contains(logged.String(), "operation=ListStateMachines") {
		t.Errorf("the door must say which call got a server error; logged %q", logged.String())
	}
}

func TestLocalControlsAreServedUnsignedAndNotCounted(t *testing.T) {
	d, fallback, base := newDoor(t)
	d.HandleLocal("POST /_byoc/things/{name}/poke", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "poked "+r.PathValue("name"))
	}))
	resp, err := http.Post(base+"/_byoc/things/x/poke", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "poked x" {
		t.Errorf("local control answered %d %q", resp.StatusCode, body)
	}
	resp, err = http.Get(base + "/_byoc/unknown")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || fallback.count() != 0 {
		t.Errorf("an unknown control: %d, fallback hit %d times; want 404 and kumo untouched", resp.StatusCode, fallback.count())
	}
	if d.Stats().Total() != 0 {
		t.Errorf("local controls counted as AWS calls: %v", d.Stats().Snapshot())
	}
}
