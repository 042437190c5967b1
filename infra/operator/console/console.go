// Package console is byoc's local web console: pages for the fleet and a deployment, served
// on the operator's own machine, calling the operator API with the operator's own AWS
// credentials (the browser never holds them: the console signs each call). No second
// identity system to deploy.
//
// What the browser may call is guarded: the server listens on loopback, answers only
// requests whose Host is that loopback address (a DNS-rebinding page gets nothing), and
// forwards an API call only with the per-run token the console's own page carries in a
// header (another site's page can neither read the token nor send the header without a
// CORS preflight, which the console never grants).
package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"html/template"
	"io"
	"io/fs"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/byocloud/byoc/infra/operator/apiclient"
)

//go:embed web
var web embed.FS

// TokenHeader carries the console's per-run token on every API call its page makes.
const TokenHeader = "X-Byoc-Console"

// Server serves the console.
type Server struct {
	Client *apiclient.Client
	token  string
	hosts  []string // the Host a request may name: the listener's address, or localhost at its port
	page   *template.Template
	assets http.Handler
}

// New returns a console for the API client, answering requests to host (host:port of its
// listener).
func New(client *apiclient.Client, host string) *Server {
	var b [16]byte
	_, _ = rand.Read(b[:])
	sub, _ := fs.Sub(web, "web")
	hosts := []string{host}
	if _, port, err := net.SplitHostPort(host); err == nil {
		hosts = append(hosts, "localhost:"+port)
	}
	return &Server{Client: client, token: hex.EncodeToString(b[:]), hosts: hosts,
		page: template.Must(template.ParseFS(web, "web/index.html")), assets: http.FileServer(http.FS(sub))}
}

// Listen opens a loopback listener on addr ("127.0.0.1:0" picks a port); addresses other
// than loopback are refused: the console acts with the operator's credentials.
func Listen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, &net.AddrError{Err: "the console listens on loopback only (it acts with your AWS credentials)", Addr: addr}
	}
	return net.Listen("tcp", addr)
}

// ServeHTTP serves the page, its assets and the API calls it makes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !slices.Contains(s.hosts, r.Host) {
		http.Error(w, "wrong host", http.StatusForbidden)
		return
	}
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
	switch {
	case strings.HasPrefix(r.URL.Path, "/v1/"):
		s.proxy(w, r)
	case r.URL.Path == "/" || r.URL.Path == "/index.html":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_ = s.page.Execute(w, map[string]string{"Token": s.token, "Endpoint": s.Client.Endpoint})
	default:
		s.assets.ServeHTTP(w, r)
	}
}

// proxy signs and forwards one API call of the page.
func (s *Server) proxy(w http.ResponseWriter, r *http.Request) {
	if subtle.ConstantTimeCompare([]byte(r.Header.Get(TokenHeader)), []byte(s.token)) != 1 {
		writeJSON(w, http.StatusForbidden, map[string]any{"status": 403, "error": "the console forwards only its own page's calls"})
		return
	}
	var body any
	if r.Body != nil {
		raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"status": 400, "error": err.Error()})
			return
		}
		if len(bytes.TrimSpace(raw)) > 0 {
			body = json.RawMessage(raw)
		}
	}
	resp, err := s.Client.Do(context.WithoutCancel(r.Context()), r.Method, r.URL.RequestURI(), body, r.Header.Get("Idempotency-Key"))
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]any{"status": 502, "error": "the API could not be reached: " + err.Error()})
		return
	}
	out := map[string]any{"status": resp.Status, "requestId": resp.RequestID}
	if resp.Err() != nil {
		out["error"] = resp.Err().(*apiclient.Error).Message
	} else {
		out["result"] = resp.Result
	}
	writeJSON(w, resp.Status, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
