package frontdoor

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// TokenWindow is how long DynamoDB remembers a TransactWriteItems ClientRequestToken.
const TokenWindow = 10 * time.Minute

// maxTransactBody bounds the request body read to find the token (DynamoDB's own request
// limit is 4 MB for a transaction).
const maxTransactBody = 4 << 20

// IsTransactWrite matches DynamoDB's TransactWriteItems.
func IsTransactWrite(r *http.Request) bool {
	return r.Header.Get("X-Amz-Target") == "DynamoDB_20120810.TransactWriteItems"
}

// TransactTokens gives TransactWriteItems the idempotency DynamoDB documents and kumo lacks:
// a call repeating the ClientRequestToken of a call that succeeded within TokenWindow
// succeeds again without writing; the same token with other parameters is refused with
// IdempotentParameterMismatchException. It matters because the SDK fills the token itself
// and keeps it across retries: when the answer of an applied transaction is lost (a
// connection cut under load), AWS's retry is harmless, but kumo would run the transaction
// twice and its conditions would fail the retry (a create reporting "already exists"). A
// repeat that arrives while the first call is still running waits for its outcome. Failed
// calls are not remembered: their retry runs again, as a transaction that did not apply.
func TransactTokens(next http.Handler) http.Handler {
	return &transactTokens{next: next, byToken: map[string]*tokenCall{}, now: time.Now}
}

type transactTokens struct {
	next    http.Handler
	now     func() time.Time
	mu      sync.Mutex
	byToken map[string]*tokenCall
	pruned  time.Time
}

// tokenCall is the first call with a token: done closes once its answer is recorded.
type tokenCall struct {
	done    chan struct{}
	digest  [sha256.Size]byte
	at      time.Time
	ok      bool
	status  int
	header  http.Header
	payload []byte
}

func (t *transactTokens) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxTransactBody+1))
	_ = r.Body.Close()
	if err != nil || len(body) > maxTransactBody {
		r.Body = io.NopCloser(bytes.NewReader(body))
		t.next.ServeHTTP(w, r)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var in struct{ ClientRequestToken string }
	if json.Unmarshal(body, &in) != nil || in.ClientRequestToken == "" {
		t.next.ServeHTTP(w, r)
		return
	}
	digest := sha256.Sum256(body)
	for {
		call, first := t.claim(in.ClientRequestToken, digest)
		if first {
			t.run(w, r, in.ClientRequestToken, call)
			return
		}
		<-call.done
		switch {
		case call.digest != digest:
			writeDynamoError(w, http.StatusBadRequest, "IdempotentParameterMismatchException",
				fmt.Sprintf("ClientRequestToken %s was used within the last %s with other parameters", in.ClientRequestToken, TokenWindow))
			return
		case call.ok:
			replay(w, call)
			return
		}
		// The first call failed and was forgotten: nothing was written, so this one runs anew.
	}
}

// run forwards the first call with a token and records its answer for the repeats.
func (t *transactTokens) run(w http.ResponseWriter, r *http.Request, token string, call *tokenCall) {
	rec := &answerRecorder{header: http.Header{}, status: http.StatusOK}
	t.next.ServeHTTP(rec, r)
	call.status, call.header, call.payload = rec.status, rec.header, rec.buf.Bytes()
	call.ok = rec.status == http.StatusOK
	if !call.ok {
		t.forget(token, call) // before done closes, so a waiting repeat claims the token anew
	}
	close(call.done)
	replay(w, call)
}

// claim returns the call holding token, and whether it is this request's (the first).
func (t *transactTokens) claim(token string, digest [sha256.Size]byte) (*tokenCall, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.prune(now)
	if c, ok := t.byToken[token]; ok && now.Sub(c.at) < TokenWindow {
		return c, false
	}
	c := &tokenCall{done: make(chan struct{}), digest: digest, at: now}
	t.byToken[token] = c
	return c, true
}

func (t *transactTokens) forget(token string, call *tokenCall) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byToken[token] == call {
		delete(t.byToken, token)
	}
}

// prune drops tokens older than the window, at most once a minute.
func (t *transactTokens) prune(now time.Time) {
	if now.Sub(t.pruned) < time.Minute {
		return
	}
	t.pruned = now
	for token, c := range t.byToken {
		if now.Sub(c.at) >= TokenWindow {
			delete(t.byToken, token)
		}
	}
}

func replay(w http.ResponseWriter, c *tokenCall) {
	for k, v := range c.header {
		w.Header()[k] = v
	}
	w.WriteHeader(c.status)
	_, _ = w.Write(c.payload)
}

// writeDynamoError answers as DynamoDB's JSON protocol does.
func writeDynamoError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.dynamodb.v20120810#" + code, "message": message})
}

// answerRecorder keeps an answer so it can be replayed.
type answerRecorder struct {
	header http.Header
	status int
	wrote  bool
	buf    bytes.Buffer
}

func (r *answerRecorder) Header() http.Header { return r.header }
func (r *answerRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
}
func (r *answerRecorder) Write(p []byte) (int, error) {
	r.wrote = true
	return r.buf.Write(p)
}
