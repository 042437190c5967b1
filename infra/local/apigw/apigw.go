// Package apigw is the local cloud's API Gateway for HTTP APIs: it serves the routes a
// vendor stack deployed (cfnengine.HTTPAPIs) at the front door, for requests signed for
// execute-api. Like AWS's, it checks the SigV4 signature against the key's secret (a wrong
// secret, an unknown key or an expired signature is 403 before anything runs), lets through
// an AWS_IAM route only callers of the API's own account (HTTP APIs have no resource policy:
// another account's principal is refused), and proxies to the route's function with the
// payload format 2.0 event, turning the function's answer into the HTTP response.
package apigw

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/byocloud/byoc/infra/local/accounts"
	"github.com/byocloud/byoc/infra/local/cfnengine"
)

// Config wires the gateway.
type Config struct {
	Accounts      *accounts.Accounts
	VendorAccount string
	Region        string
	APIs          func() []cfnengine.HTTPAPI
	Lambda        *lambda.Client
	Logger        *slog.Logger
	// Now is the clock signatures are checked against (the wall clock: callers sign with
	// theirs, whatever the cloud's simulated clock says).
	Now func() time.Time
}

// Gateway serves HTTP APIs.
type Gateway struct{ cfg Config }

// New returns a gateway.
func New(cfg Config) *Gateway {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Gateway{cfg: cfg}
}

// IsAPIRequest recognises an unsigned request for an HTTP API (every route of byoc's is under
// /v1/): on AWS it reaches API Gateway by its host name and is refused there; locally the
// front door, which routes by signing service, sends it here for the same refusal.
func IsAPIRequest(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/v1/") }

// MaxSkew is how far a request's X-Amz-Date may be from now, as on AWS.
const MaxSkew = 15 * time.Minute

func message(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-amzn-ErrorType", http.StatusText(status))
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

// ServeHTTP serves one request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 10<<20+1))
	if err != nil || len(body) > 10<<20 {
		message(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
		return
	}
	apis := g.cfg.APIs()
	if len(apis) == 0 {
		message(w, http.StatusNotFound, "Not Found")
		return
	}
	api := apis[0] // the local cloud serves every API at its one address: the control plane's
	route, proxy, ok := match(api, r.Method, r.URL.Path)
	if !ok {
		message(w, http.StatusNotFound, "Not Found")
		return
	}
	var caller accounts.Principal
	if route.Authorization == "AWS_IAM" {
		p, status, msg := g.authenticate(r, body)
		if status != 0 {
			message(w, status, msg)
			return
		}
		if p.Account != g.cfg.VendorAccount {
			resource := fmt.Sprintf("arn:aws:execute-api:%s:%s:%s/$default/%s%s", g.cfg.Region, g.cfg.VendorAccount, api.ID, r.Method, r.URL.Path)
			message(w, http.StatusForbidden, fmt.Sprintf("User: %s is not authorized to perform: execute-api:Invoke on resource: %s", p.Arn, resource))
			return
		}
		caller = p
	}
	ev := g.event(r, api, route, proxy, body, caller)
	payload, _ := json.Marshal(ev)
	out, err := g.cfg.Lambda.Invoke(r.Context(), &lambda.InvokeInput{FunctionName: aws.String(route.FunctionArn), Payload: payload})
	if err != nil || out.FunctionError != nil {
		detail := ""
		if err != nil {
			detail = err.Error()
		} else {
			detail = string(out.Payload)
		}
		g.cfg.Logger.Warn("apigw: integration failed", "function", route.FunctionArn, "error", detail)
		message(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(out.Payload, &resp); err != nil || resp.StatusCode == 0 {
		message(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	w.Header().Set("Apigw-Requestid", ev.RequestContext.RequestID)
	respBody := []byte(resp.Body)
	if resp.IsBase64Encoded {
		respBody, _ = base64.StdEncoding.DecodeString(resp.Body)
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(respBody)
}

// match finds the route of a request: "METHOD /path" or "ANY /prefix/{proxy+}".
func match(api cfnengine.HTTPAPI, method, path string) (cfnengine.HTTPRoute, string, bool) {
	for _, rt := range api.Routes {
		m, pattern, ok := strings.Cut(rt.Key, " ")
		if !ok || (m != "ANY" && m != method) {
			continue
		}
		if prefix, greedy := strings.CutSuffix(pattern, "{proxy+}"); greedy {
			if strings.HasPrefix(path, prefix) && len(path) > len(prefix) {
				return rt, path[len(prefix):], true
			}
			continue
		}
		if pattern == path {
			return rt, "", true
		}
	}
	return cfnengine.HTTPRoute{}, "", false
}

// authenticate checks a request's SigV4 signature as API Gateway does.
func (g *Gateway) authenticate(r *http.Request, body []byte) (accounts.Principal, int, string) {
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") {
		return accounts.Principal{}, http.StatusForbidden, "Missing Authentication Token"
	}
	fields := map[string]string{}
	for _, part := range strings.Split(strings.TrimPrefix(auth, "AWS4-HMAC-SHA256 "), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[3] != "execute-api" || scope[4] != "aws4_request" || fields["Signature"] == "" || fields["SignedHeaders"] == "" {
		return accounts.Principal{}, http.StatusForbidden, "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' for execute-api."
	}
	secret, p, ok := g.cfg.Accounts.Secret(scope[0], r.Header.Get("X-Amz-Security-Token"))
	if !ok {
		return accounts.Principal{}, http.StatusForbidden, "The security token included in the request is invalid."
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return accounts.Principal{}, http.StatusForbidden, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
	}
	if d := g.cfg.Now().Sub(at); d > MaxSkew || d < -MaxSkew {
		return accounts.Principal{}, http.StatusForbidden, "Signature expired: " + r.Header.Get("X-Amz-Date") + " is now earlier or later than the allowed 15 minutes."
	}
	if scope[1] != at.Format("20060102") || scope[2] != g.cfg.Region {
		return accounts.Principal{}, http.StatusForbidden, fmt.Sprintf("Credential should be scoped to a valid region and date: %s/%s, not %s/%s", at.Format("20060102"), g.cfg.Region, scope[1], scope[2])
	}
	// The payload is hashed here, never taken from the request: a claimed hash that is not
	// the body's is refused, so a captured signature cannot carry another body.
	payloadHash := sha256Hex(body)
	if claimed := r.Header.Get("X-Amz-Content-Sha256"); claimed != "" && claimed != payloadHash {
		return accounts.Principal{}, http.StatusForbidden, "The provided 'x-amz-content-sha256' header does not match what was computed."
	}
	// Sign the same request again with the key's secret: the same canonical request (method,
	// path, query, the signed headers, the payload) gives the same signature.
	again, _ := http.NewRequestWithContext(context.Background(), r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	again.Host = r.Host
	for _, h := range strings.Split(fields["SignedHeaders"], ";") {
		if h == "host" {
			continue
		}
		for _, v := range r.Header.Values(h) {
			again.Header.Add(h, v)
		}
	}
	creds := aws.Credentials{AccessKeyID: scope[0], SecretAccessKey: secret, SessionToken: r.Header.Get("X-Amz-Security-Token")}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, payloadHash, "execute-api", scope[2], at); err != nil {
		return accounts.Principal{}, http.StatusForbidden, "The request signature we calculated does not match the signature you provided."
	}
	want := ""
	for _, part := range strings.Split(strings.TrimPrefix(again.Header.Get("Authorization"), "AWS4-HMAC-SHA256 "), ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "Signature="); ok {
			want = v
		}
	}
	if want == "" || !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		return accounts.Principal{}, http.StatusForbidden, "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
	}
	return p, 0, ""
}

// event is the payload format 2.0 event API Gateway sends an AWS_PROXY integration.
func (g *Gateway) event(r *http.Request, api cfnengine.HTTPAPI, route cfnengine.HTTPRoute, proxy string, body []byte, caller accounts.Principal) events.APIGatewayV2HTTPRequest {
	var id [16]byte
	_, _ = rand.Read(id[:])
	now := time.Now().UTC()
	headers := map[string]string{}
	for k, vs := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	query := map[string]string{}
	for k, vs := range r.URL.Query() {
		query[k] = strings.Join(vs, ",")
	}
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: route.Key, RawPath: r.URL.Path, RawQueryString: r.URL.RawQuery,
		Headers: headers, QueryStringParameters: query,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey: route.Key, AccountID: g.cfg.VendorAccount, Stage: "$default", RequestID: hex.EncodeToString(id[:]),
			APIID: api.ID, DomainName: r.Host, DomainPrefix: strings.Split(r.Host, ".")[0],
			Time: now.Format("02/Jan/2006:15:04:05 -0700"), TimeEpoch: now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: r.Method, Path: r.URL.Path, Protocol: r.Proto,
				SourceIP: strings.Split(r.RemoteAddr, ":")[0], UserAgent: r.UserAgent()},
		},
	}
	if proxy != "" {
		ev.PathParameters = map[string]string{"proxy": proxy}
	}
	if caller.Arn != "" {
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			IAM: &events.APIGatewayV2HTTPRequestContextAuthorizerIAMDescription{
				AccessKey: accessKey(r), AccountID: caller.Account, CallerID: caller.UserID, UserARN: caller.Arn, UserID: caller.UserID,
			},
		}
	}
	if len(body) > 0 {
		if utf8.Valid(body) {
			ev.Body = string(body)
		} else {
			ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
		}
	}
	return ev
}

func accessKey(r *http.Request) string {
	scope, _ := accounts.SigningScope(r)
	return scope.AccessKeyID
}
