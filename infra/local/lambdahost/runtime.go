package lambdahost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/byocloud/byoc/infra/local/chaos"
)

// Invocation is one invocation a function process served, as seen on the Runtime API.
type Invocation struct {
	Function  string
	RequestID string
	Payload   []byte
	Response  []byte // the handler's response, or its error document when Failed
	Failed    bool
	Started   time.Time
	Duration  time.Duration
}

// relay sits between the processes and kumo's Runtime API. It is what makes Start return
// only once the function can be invoked (kumo refuses an invocation, 502 "no runtime
// handler", until a process has polled), and it sees every invocation, which the local
// cloud's timeline and counters need and kumo does not publish.
type relay struct {
	upstream *url.URL
	proxy    *httputil.ReverseProxy
	observe  func(Invocation)
	srv      *http.Server
	addr     string
	chaos    *chaos.Injector
	kill     func(fn string) bool

	mu       sync.Mutex
	polled   map[string]chan struct{} // closed once a poll of that function reached kumo
	inflight map[string]Invocation    // request id -> invocation being served
	count    int64
}

func newRelay(upstream string, observe func(Invocation)) (*relay, error) {
	u, err := url.Parse("http://" + upstream)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("RuntimeAPI %q: must be host:port", upstream)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("runtime relay: %w", err)
	}
	r := &relay{upstream: u, observe: observe, addr: ln.Addr().String(),
		polled: map[string]chan struct{}{}, inflight: map[string]Invocation{}}
	r.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		Transport: &http.Transport{
			MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second,
			// Long polls last as long as there is no work: no response header timeout.
		},
		ModifyResponse: r.onResponse,
		// FlushInterval stays 0, as in the front door (see frontdoor.Proxy): flushing after
		// every write lost answers under load there, and the Runtime API's answers are whole.
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			if req.Context().Err() != nil {
				return // the process went away mid-poll (stopped, crashed): nothing to answer
			}
			http.Error(w, "runtime relay: "+err.Error(), http.StatusBadGateway)
		},
	}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *relay) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := r.srv.Shutdown(ctx); err != nil {
		_ = r.srv.Close()
	}
}

// pollSignal returns the channel closed when the function's first poll reaches kumo.
func (r *relay) pollSignal(fn string) chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch, ok := r.polled[fn]
	if !ok {
		ch = make(chan struct{})
		r.polled[fn] = ch
	}
	return ch
}

// forget drops the readiness of a function whose process stopped: a replacement must poll
// again before it counts as ready.
func (r *relay) forget(fn string) {
	r.mu.Lock()
	delete(r.polled, fn)
	r.mu.Unlock()
}

// runtimePath splits /_runtime/<fn>/2018-06-01/runtime/<rest>.
func runtimePath(p string) (fn, rest string, ok bool) {
	tail, ok := strings.CutPrefix(p, "/_runtime/")
	if !ok {
		return "", "", false
	}
	fn, rest, ok = strings.Cut(tail, "/2018-06-01/runtime/")
	return fn, rest, ok && fn != ""
}

func (r *relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	fn, rest, ok := runtimePath(req.URL.Path)
	if !ok {
		http.Error(w, "not a Runtime API path", http.StatusNotFound)
		return
	}
	switch {
	case req.Method == http.MethodGet && rest == "invocation/next":
		r.markReady(req.Context(), fn)
		r.poll(w, req, fn)
		return
	case req.Method == http.MethodPost && strings.HasPrefix(rest, "invocation/"):
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		id, kind, _ := strings.Cut(strings.TrimPrefix(rest, "invocation/"), "/")
		if kind == "response" && r.faultAnswer(fn, id) {
			return // the process is being killed: its answer never reaches Lambda
		}
		r.finish(id, body, kind == "error")
	}
	r.proxy.ServeHTTP(w, req)
}

// markReady makes kumo route invocations of fn to the Runtime API, then signals that the
// function is ready, before the process's first poll is forwarded. kumo treats a function
// as backed by a Runtime API handler once its broker has an entry for it, which any
// Runtime API call creates; a poll creates it only when kumo gets round to reading it (a
// signal sent when the poll was merely written raced that, and lost under load). A result
// for a request id that was never issued creates it synchronously and does nothing else,
// so when that answer is back the function is invocable.
func (r *relay) markReady(ctx context.Context, fn string) {
	signal := r.pollSignal(fn)
	select {
	case <-signal:
		return // ready already: later polls need no probe
	default:
	}
	u := *r.upstream
	u.Path = "/_runtime/" + fn + "/2018-06-01/runtime/invocation/" + readyProbeID + "/response"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), http.NoBody)
	if err != nil {
		return
	}
	resp, err := r.proxy.Transport.RoundTrip(req)
	if err != nil {
		return // the poll that follows fails the same way; Start reports the missing readiness
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return
	}
	r.mu.Lock()
	select {
	case <-signal:
	default:
		close(signal)
	}
	r.mu.Unlock()
}

// handed is what a poll was handed, recorded by onResponse.
type handed struct{ id string }

type handedKey struct{}

// poll relays a process's wait for its next invocation. A process that dies while it waits
// may still be handed an invocation (kumo answers a poll whose client has gone): nobody will
// answer it, and the invoker would wait out the function's timeout. It fails at once
// instead, as Lambda fails an invocation whose sandbox died.
func (r *relay) poll(w http.ResponseWriter, req *http.Request, fn string) {
	h := &handed{}
	req = req.WithContext(context.WithValue(req.Context(), handedKey{}, h))
	r.proxy.ServeHTTP(w, req)
	if req.Context().Err() == nil || h.id == "" {
		return
	}
	// (kumo may also pick a cancelled poll's turn with nothing handed yet; an invocation it
	// hands while the relay's request to it is being cancelled never reaches onResponse and
	// still waits out the function's timeout.)
	r.fail(fn, h.id, "Runtime.ExitError", fmt.Sprintf("RequestId: %s Error: Runtime exited before it took the invocation", h.id))
}

// readyProbeID is the request id of markReady's result, one kumo never issues (its ids are
// UUIDs).
const readyProbeID = "byoc-ready-probe"

// onResponse records an invocation handed to a process.
func (r *relay) onResponse(resp *http.Response) error {
	fn, rest, _ := runtimePath(resp.Request.URL.Path)
	if resp.Request.Method != http.MethodGet || rest != "invocation/next" || resp.StatusCode != http.StatusOK {
		return nil
	}
	payload, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(payload))
	id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
	if h, ok := resp.Request.Context().Value(handedKey{}).(*handed); ok {
		h.id = id
	}
	r.mu.Lock()
	r.inflight[id] = Invocation{Function: fn, RequestID: id, Payload: payload, Started: time.Now()}
	r.count++
	r.mu.Unlock()
	if r.chaos.Invocation(fn, chaos.Received) == chaos.KillBefore {
		r.kill(fn)
		// Not handed over: the process dies before its handler runs, and abandon fails
		// the invocation with Runtime.ExitError once it has exited.
		return errors.New("chaos: the process was killed before its handler ran")
	}
	return nil
}

// faultAnswer injects a fault as a process answers an invocation: the process killed
// before its answer is delivered (abandon then fails the invocation with Runtime.ExitError),
// or the invocation timed out after its side effects, as Lambda reports a timeout, and the
// sandbox recycled. It reports whether the answer is to be dropped.
func (r *relay) faultAnswer(fn, id string) bool {
	switch r.chaos.Invocation(fn, chaos.Answering) {
	case chaos.KillAfter:
		r.kill(fn)
		return true
	case chaos.Timeout:
		r.fail(fn, id, "Sandbox.Timedout", fmt.Sprintf("RequestId: %s Error: Task timed out", id))
		r.kill(fn)
		return true
	}
	return false
}

// finish ends an invocation in flight and reports whether it was (an invocation ends once,
// whoever of the process, a fault, poll and abandon gets to it first).
func (r *relay) finish(id string, body []byte, failed bool) bool {
	r.mu.Lock()
	inv, ok := r.inflight[id]
	delete(r.inflight, id)
	r.mu.Unlock()
	if ok && r.observe != nil {
		inv.Response, inv.Failed, inv.Duration = body, failed, time.Since(inv.Started)
		r.observe(inv)
	}
	return ok
}

// abandon fails the invocations a function's process held when it exited, with the error
// Lambda reports for a runtime that exits mid-invocation, instead of leaving the caller to
// wait out the function's timeout.
func (r *relay) abandon(fn string, exit error) {
	r.mu.Lock()
	var ids []string
	for id, inv := range r.inflight {
		if inv.Function == fn {
			ids = append(ids, id)
		}
	}
	r.mu.Unlock()
	for _, id := range ids {
		r.fail(fn, id, "Runtime.ExitError", fmt.Sprintf("RequestId: %s Error: Runtime exited with error: %v", id, exit))
	}
}

// fail ends an invocation with an error Lambda itself reports (the process did not).
func (r *relay) fail(fn, id, errorType, message string) {
	doc, _ := json.Marshal(map[string]string{"errorType": errorType, "errorMessage": message})
	if !r.finish(id, doc, true) {
		return // ended already: Lambda takes one answer per invocation
	}
	u := *r.upstream
	u.Path = "/_runtime/" + fn + "/2018-06-01/runtime/invocation/" + id + "/error"
	req, err := http.NewRequest(http.MethodPost, u.String(), bytes.NewReader(doc))
	if err != nil {
		return
	}
	req.Header.Set("Lambda-Runtime-Function-Error-Type", errorType)
	if resp, err := r.proxy.Transport.RoundTrip(req); err == nil {
		_ = resp.Body.Close()
	}
}

func (r *relay) invocations() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}
