package console

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/byocloud/byoc/infra/operator/apiclient"
)

// console serves a console in front of a fake API that counts the calls it gets.
func console(t *testing.T) (*Server, *httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIDOPERATOR/") {
			t.Errorf("the API got an unsigned call: %v", r.Header)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":200,"requestId":"r1","result":{"deployments":[]}}`)
	}))
	t.Cleanup(api.Close)
	client := apiclient.WithConfig(aws.Config{Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDOPERATOR", "secret", "")}, api.URL)
	s := New(client, "127.0.0.1:8765")
	front := httptest.NewServer(s)
	t.Cleanup(front.Close)
	return s, front, &calls
}

func do(t *testing.T, front *httptest.Server, host, path, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, front.URL+path, nil)
	req.Host = host
	if token != "" {
		req.Header.Set(TokenHeader, token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The page carries the run's token; an API call with it is signed and forwarded.
func TestConsoleForwardsItsOwnPagesCallsSigned(t *testing.T) {
	s, front, calls := console(t)
	status, page := do(t, front, "127.0.0.1:8765", "/", "")
	if status != http.StatusOK || !strings.Contains(page, `content="`+s.token+`"`) {
		t.Fatalf("page: %d, want it to carry the token", status)
	}
	if status, body := do(t, front, "127.0.0.1:8765", "/v1/deployments", s.token); status != http.StatusOK || !strings.Contains(body, `"deployments"`) || calls.Load() != 1 {
		t.Fatalf("forwarded call: %d %s (%d API calls)", status, body, calls.Load())
	}
	// The same listener reached as localhost (byoc console --addr localhost:8765).
	if status, _ := do(t, front, "localhost:8765", "/v1/deployments", s.token); status != http.StatusOK {
		t.Fatalf("localhost at the console's port: %d", status)
	}
}

// An attacker's page cannot use the console to act with the operator's credentials: a call
// without the token (another site's page cannot read it) and a request naming another host (a
// DNS-rebinding page) are refused, and nothing reaches the API.
func TestConsoleRefusesCallsNotFromItsPage(t *testing.T) {
	s, front, calls := console(t)
	for _, c := range []struct{ host, token string }{
		{"127.0.0.1:8765", ""},
		{"127.0.0.1:8765", "guessed"},
		{"evil.example:8765", s.token}, // even with the token: a DNS-rebinding page's host
	} {
		if status, _ := do(t, front, c.host, "/v1/deployments", c.token); status != http.StatusForbidden {
			t.Errorf("host %s token %q: %d, want 403", c.host, c.token, status)
		}
	}
	if status, _ := do(t, front, "evil.example:8765", "/", ""); status != http.StatusForbidden {
		t.Errorf("the page under another host name: %d, want 403", status)
	}
	if calls.Load() != 0 {
		t.Fatalf("%d refused calls reached the API", calls.Load())
	}
}

func TestConsoleListensOnLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "192.0.2.1:0", ":0"} {
		if ln, err := Listen(addr); err == nil {
			ln.Close()
			t.Errorf("Listen(%s) accepted a non-loopback address", addr)
		}
	}
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}
