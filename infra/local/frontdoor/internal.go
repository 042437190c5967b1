package frontdoor

import (
	"net/http"
	"time"
)

// InternalHeader marks a request the local cloud makes on its own behalf: EventBridge
// delivering to a target, the SQS poller of an event source mapping, the stack engine
// creating resources. Such requests are routed like any other but not counted, so the
// counters measure what the control plane and the user do, not the emulator's plumbing.
const InternalHeader = "X-Byoc-Local-Internal"

// InternalClient returns an HTTP client whose requests carry InternalHeader. Give it to the
// SDK (aws.Config.HTTPClient) of the local cloud's own components. Every such client shares
// one connection pool: a pool per client kept its idle connections open for good, and a
// long chaos run (a client per check) ran out of file descriptors.
// Any extra headers are set to "1" too (a Step Functions task call says it is one).
func InternalClient(extra ...string) *http.Client {
	return &http.Client{Transport: internalTransport{base: SharedTransport, headers: append([]string{InternalHeader}, extra...)}}
}

// SharedTransport is the connection pool of the clients the local cloud and its tests make
// for themselves.
var SharedTransport = &http.Transport{
	MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second,
}

type internalTransport struct {
	base    http.RoundTripper
	headers []string
}

func (t internalTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for _, h := range t.headers {
		r.Header.Set(h, "1")
	}
	return t.base.RoundTrip(r)
}
