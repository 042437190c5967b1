// Package apiclient calls the byoc operator API: SigV4-signed (service execute-api) with the
// operator's own AWS credentials, from the standard credential chain and profiles. The API's
// address is given, or read from the control-plane stack's ApiUrl output. The byoc CLI, its
// console and the end-to-end tests all call the API through it.
package apiclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"

	"github.com/byocloud/byoc/shared/contract"
)

// DefaultStack is the control-plane stack's name (cdk deploy's).
const DefaultStack = "ByocControlPlane"

// Options say where the API is and who calls it.
type Options struct {
	API     string // the API's address; "" reads the stack's ApiUrl output
	Stack   string // the control-plane stack (DefaultStack when empty)
	Profile string // an AWS profile; "" for the default chain
	Region  string // "" for the profile's or environment's
}

// Client calls the API.
type Client struct {
	Endpoint string
	cfg      aws.Config
	signer   *v4.Signer
	http     *http.Client
}

// New loads the AWS configuration (the standard chain: environment, profile, SSO, role...)
// and finds the API.
func New(ctx context.Context, o Options) (*Client, error) {
	var opts []func(*config.LoadOptions) error
	if o.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(o.Profile))
	}
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no AWS region: set --region, AWS_REGION or the profile's region")
	}
	endpoint := o.API
	if endpoint == "" {
		if endpoint, err = StackAPI(ctx, cfg, o.Stack); err != nil {
			return nil, err
		}
	}
	return WithConfig(cfg, endpoint), nil
}

// WithConfig is a client of the API at endpoint with cfg's credentials and region.
func WithConfig(cfg aws.Config, endpoint string) *Client {
	hc := &http.Client{Timeout: 60 * time.Second}
	return &Client{Endpoint: strings.TrimSuffix(endpoint, "/"), cfg: cfg, signer: v4.NewSigner(), http: hc}
}

// Config is the AWS configuration the client signs with: the operator's own credentials.
func (c *Client) Config() aws.Config { return c.cfg }

// StackAPI reads the API's address from the control-plane stack's output.
func StackAPI(ctx context.Context, cfg aws.Config, stack string) (string, error) {
	api, err := StackOutput(ctx, cfg, stack, contract.OutputApiUrl)
	if err != nil {
		return "", fmt.Errorf("find the API: %w (or pass --api)", err)
	}
	return api, nil
}

// StackOutput reads one output of the control-plane stack (DefaultStack when stack is "").
func StackOutput(ctx context.Context, cfg aws.Config, stack, key string) (string, error) {
	if stack == "" {
		stack = DefaultStack
	}
	out, err := cloudformation.NewFromConfig(cfg).DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(stack)})
	if err != nil {
		return "", fmt.Errorf("stack %s: %w", stack, err)
	}
	for _, s := range out.Stacks {
		for _, o := range s.Outputs {
			if aws.ToString(o.OutputKey) == key {
				return aws.ToString(o.OutputValue), nil
			}
		}
	}
	return "", fmt.Errorf("stack %s has no %s output (deploy the current control plane)", stack, key)
}

// Response is an API answer: the envelope's parts.
type Response struct {
	Status    int             `json:"status"`
	RequestID string          `json:"requestId"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     string          `json:"error,omitempty"`
	// Message is API Gateway's own refusal (403 of IAM, 429 throttling): {"message": ...}.
	Message string `json:"message,omitempty"`
	// Replayed: the answer of an earlier request under the same Idempotency-Key.
	Replayed bool `json:"-"`
}

// Err is a non-2xx answer as an error.
func (r *Response) Err() error {
	if r.Status >= 200 && r.Status < 300 {
		return nil
	}
	return &Error{Status: r.Status, Message: r.message(), RequestID: r.RequestID}
}

func (r *Response) message() string {
	if r.Error != "" {
		return r.Error
	}
	if r.Message != "" {
		return r.Message
	}
	return http.StatusText(r.Status)
}

// Error is the API refusing or failing a request.
type Error struct {
	Status    int
	Message   string
	RequestID string
}

func (e *Error) Error() string {
	if e.RequestID != "" {
		return fmt.Sprintf("%d %s (request %s)", e.Status, e.Message, e.RequestID)
	}
	return fmt.Sprintf("%d %s", e.Status, e.Message)
}

// Do sends a signed request. body (if not nil) is sent as JSON; key (if not "") is its
// Idempotency-Key. Any answer is returned as a Response; err is for transport failures.
func (c *Client) Do(ctx context.Context, method, path string, body any, key string) (*Response, error) {
	var payload []byte
	if body != nil {
		var err error
		if raw, ok := body.(json.RawMessage); ok {
			payload = raw
		} else if payload, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Endpoint+path, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	creds, err := c.cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("AWS credentials: %w", err)
	}
	sum := sha256.Sum256(payload)
	if err := c.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "execute-api", c.cfg.Region, time.Now()); err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	out := &Response{}
	if err := json.Unmarshal(raw, out); err != nil {
		out.Error = strings.TrimSpace(string(raw))
	}
	out.Status = resp.StatusCode
	out.Replayed = resp.Header.Get("Idempotent-Replayed") == "true"
	return out, nil
}

// Call is Do that decodes a 2xx result into out (when not nil) and returns any other answer
// as an *Error.
func (c *Client) Call(ctx context.Context, method, path string, body any, key string, out any) (*Response, error) {
	r, err := c.Do(ctx, method, path, body, key)
	if err != nil {
		return nil, err
	}
	if err := r.Err(); err != nil {
		return r, err
	}
	if out != nil && len(r.Result) > 0 {
		if err := json.Unmarshal(r.Result, out); err != nil {
			return r, fmt.Errorf("%s %s: decode the result: %w", method, path, err)
		}
	}
	return r, nil
}

// Operation is a workflow the API started (its answer to retry, delete and service actions).
type Operation struct {
	Workflow     string `json:"workflow"`
	Name         string `json:"name"`
	DeploymentID string `json:"deploymentId,omitempty"`
	Status       string `json:"status"`
	Error        string `json:"error,omitempty"`
	Cause        string `json:"cause,omitempty"`
	Started      bool   `json:"started"`
}

// Done reports whether the workflow ended.
func (o Operation) Done() bool {
	return o.Status != "" && o.Status != "RUNNING" && o.Status != "PENDING_REDRIVE"
}

// Wait follows an operation until it ends, calling progress after each look.
func (c *Client) Wait(ctx context.Context, op Operation, every time.Duration, progress func(Operation, time.Duration)) (Operation, error) {
	began := time.Now()
	for {
		var cur Operation
		if _, err := c.Call(ctx, http.MethodGet, "/v1/operations/"+op.Workflow+"/"+op.Name, nil, "", &cur); err != nil {
			return op, err
		}
		if progress != nil {
			progress(cur, time.Since(began))
		}
		if cur.Done() {
			return cur, nil
		}
		select {
		case <-ctx.Done():
			return cur, ctx.Err()
		case <-time.After(every):
		}
	}
}
