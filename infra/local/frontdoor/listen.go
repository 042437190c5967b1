package frontdoor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"syscall"
	"time"
)

// DefaultAddr is where the local cloud listens: the address kumo's internal calls use
// (localhost:4566) and the one LocalStack users already point their tools at.
const DefaultAddr = "127.0.0.1:4566"

// Server is a running door.
type Server struct {
	URL  string // http://host:port
	Addr string // host:port actually bound
	srv  *http.Server
	done chan struct{}
}

// ErrAddrInUse is wrapped by Listen's error when another process holds the port.
var ErrAddrInUse = errors.New("address already in use")

// Listen serves h on addr. A busy port is an error that names it: the usual cause is a
// second local cloud, and the user must know which port to free or which --addr to pass.
func Listen(addr string, h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			_, port, _ := net.SplitHostPort(addr)
			return nil, fmt.Errorf("front door: port %s is already in use (%s): is another local cloud running? Stop it, or choose another address with --addr: %w", port, addr, ErrAddrInUse)
		}
		return nil, fmt.Errorf("front door: listen on %s: %w", addr, err)
	}
	s := &Server{
		URL:  "http://" + ln.Addr().String(),
		Addr: ln.Addr().String(),
		srv:  &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// Close stops accepting requests and waits (briefly) for those in flight; Runtime API long
// polls would otherwise hold it open.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.srv.Close()
	}
	<-s.done
	return err
}

// Proxy returns a reverse proxy to target (kumo's URL). It keeps many idle connections: the
// whole local cloud talks through it.
func Proxy(target string) (http.Handler, error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("front door: proxy target %q must be an absolute http URL", target)
	}
	p := httputil.NewSingleHostReverseProxy(u)
	p.Transport = &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	}
	// FlushInterval stays 0 (flush when the answer is complete; ReverseProxy still streams
	// answers of unknown length at once). With -1 (flush after every write) the headers went
	// out sooner, which made the closed-body race bufferBody removes far more frequent (about
	// one call in ten thousand under CPU load, BenchmarkSend in package sqsgate). The Runtime
	// API's long polls answer whole responses, so they need no flushing either (lambdahost's
	// relay keeps 0 too).
	p.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		if r.Context().Err() != nil {
			return // the client went away (a long poll ended): nothing to answer
		}
		slog.Warn("front door: the backend did not answer", "method", r.Method, "path", r.URL.Path, "target", r.Header.Get("X-Amz-Target"), "error", err)
		http.Error(w, "front door: "+err.Error(), http.StatusBadGateway)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := bufferBody(w, r); err != nil {
			status := http.StatusBadRequest
			if errors.As(err, new(*http.MaxBytesError)) {
				status = http.StatusRequestEntityTooLarge
			}
			http.Error(w, "front door: read the request body: "+err.Error(), status)
			return
		}
		p.ServeHTTP(w, r)
	}), nil
}

// maxBody bounds a request body the door holds in memory: more than any AWS API the local
// cloud serves accepts in one request.
const maxBody = 64 << 20

// bufferBody reads the request body into memory before it is forwarded. The server closes
// a request's body when the answer's headers go out (net/http discards what is left so the
// connection can be reused), and the transport forwarding the body reads it once more after
// its Content-Length bytes, to check there is nothing beyond them. When that last read came
// after kumo's answer was under way (a loaded machine), it failed on the closed body, the
// transport closed kumo's connection mid-answer, and the caller got a 200 with a truncated
// body ("deserialization failed, unexpected EOF": the SDK does not retry it). A body of
// our own is never closed under the transport. A body beyond maxBody is refused (413), so a
// claimed Content-Length cannot make the door allocate more.
func bufferBody(w http.ResponseWriter, r *http.Request) error {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	var body []byte
	switch {
	case r.ContentLength > maxBody:
		return &http.MaxBytesError{Limit: maxBody}
	case r.ContentLength > 0:
		// Exactly the declared bytes: the server's body ends there.
		body = make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return err
		}
	default: // chunked: read to its end, within the limit
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, maxBody)); err != nil {
			return err
		}
		body = buf.Bytes()
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil // forwarded with its length, not chunked
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return nil
}
