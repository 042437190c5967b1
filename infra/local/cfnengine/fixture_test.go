package cfnengine

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/byocloud/byoc/infra/local/accounts"
)

const (
	customer      = "111111111111"
	otherCustomer = "222222222222"
	vendorBusArn  = "arn:aws:events:us-east-1:000000000000:event-bus/byoc"
	controlPlane  = "arn:aws:iam::000000000000:role/ByocControlPlane-Provisioner-ABC"
	externalID    = "ext-0123456789abcdef0123456789abcdef"
)

// fixture serves the engine, STS and bus permissions on one endpoint, routed by SigV4
// service as the front door does, and records what the engine emits and forwards.
type fixture struct {
	t        *testing.T
	engine   *Engine
	accounts *accounts.Accounts
	url      string

	mu        sync.Mutex
	observed  []StackEvent
	forwarded []forwardedEvent
}

type forwardedEvent struct {
	busArn string
	body   map[string]any
	raw    []byte
}

func newFixture(t *testing.T, configure ...func(*Config)) *fixture {
	t.Helper()
	f := &fixture{t: t, accounts: accounts.New()}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	f.accounts.SetLogger(quiet)
	cfg := Config{
		Accounts: f.accounts,
		Logger:   quiet,
		Observer: func(ev StackEvent) {
			f.mu.Lock()
			f.observed = append(f.observed, ev)
			f.mu.Unlock()
		},
		DeliverEvent: func(_ context.Context, busArn string, event []byte) error {
			var body map[string]any
			if err := json.Unmarshal(event, &body); err != nil {
				t.Errorf("forwarded event is not JSON: %v", err)
			}
			f.mu.Lock()
			f.forwarded = append(f.forwarded, forwardedEvent{busArn: busArn, body: body, raw: event})
			f.mu.Unlock()
			return nil
		},
	}
	for _, c := range configure {
		c(&cfg)
	}
	f.engine = New(cfg)
	mux := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scope, _ := accounts.SigningScope(r)
		switch {
		case scope.Service == "sts":
			f.accounts.ServeHTTP(w, r)
		case scope.Service == "ec2":
			f.engine.EC2().ServeHTTP(w, r)
		case IsBusPermissionRequest(r):
			f.engine.BusPermissions().ServeHTTP(w, r)
		default:
			f.engine.ServeHTTP(w, r)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		f.engine.Wait()
		srv.Close()
	})
	f.url = srv.URL
	return f
}

func (f *fixture) cfn(creds aws.Credentials) *cloudformation.Client {
	return cloudformation.New(cloudformation.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(f.url), Credentials: credentials.StaticCredentialsProvider{Value: creds},
	})
}

func (f *fixture) customerCFN() *cloudformation.Client {
	return f.cfn(accounts.AdminCredentials(customer))
}

func (f *fixture) sts(creds aws.Credentials) *sts.Client {
	return sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(f.url), Credentials: credentials.StaticCredentialsProvider{Value: creds}})
}

func (f *fixture) events() *eventbridge.Client {
	return eventbridge.New(eventbridge.Options{Region: "us-east-1", BaseEndpoint: aws.String(f.url),
		Credentials: credentials.StaticCredentialsProvider{Value: aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}}})
}

// admit lets an account put events on the vendor bus, as the invite function does.
func (f *fixture) admit(account string) {
	f.t.Helper()
	_, err := f.events().PutPermission(context.Background(), &eventbridge.PutPermissionInput{
		EventBusName: aws.String("byoc"), Action: aws.String("events:PutEvents"), Principal: aws.String(account),
		StatementId: aws.String("customer-" + account),
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) forwardedEvents() []forwardedEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]forwardedEvent(nil), f.forwarded...)
}

func (f *fixture) observedEvents() []StackEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]StackEvent(nil), f.observed...)
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func params(kv ...string) []cfntypes.Parameter {
	var out []cfntypes.Parameter
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, cfntypes.Parameter{ParameterKey: aws.String(kv[i]), ParameterValue: aws.String(kv[i+1])})
	}
	return out
}

func bootstrapParams() []cfntypes.Parameter {
	return params("ExternalId", externalID, "ControlPlaneRoleArn", controlPlane, "VendorEventBusArn", vendorBusArn)
}

// createBootstrap applies the bootstrap stack in the customer account and waits for it.
func (f *fixture) createBootstrap(t *testing.T) string {
	t.Helper()
	out, err := f.customerCFN().CreateStack(context.Background(), &cloudformation.CreateStackInput{
		StackName: aws.String("clickhouse-byoc-bootstrap"), TemplateBody: aws.String(readFile(t, "testdata/bootstrap.json")),
		Parameters: bootstrapParams(), Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityNamedIam},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	return aws.ToString(out.StackId)
}

func (f *fixture) describe(t *testing.T, client *cloudformation.Client, name string) cfntypes.Stack {
	t.Helper()
	out, err := client.DescribeStacks(context.Background(), &cloudformation.DescribeStacksInput{StackName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Stacks) != 1 {
		t.Fatalf("DescribeStacks(%s) returned %d stacks", name, len(out.Stacks))
	}
	return out.Stacks[0]
}

// statuses returns the stack-level statuses of a stack's events, oldest first.
func (f *fixture) statuses(t *testing.T, client *cloudformation.Client, name string) []string {
	t.Helper()
	var out []string
	p := cloudformation.NewDescribeStackEventsPaginator(client, &cloudformation.DescribeStackEventsInput{StackName: aws.String(name)})
	var all []cfntypes.StackEvent
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.StackEvents...)
	}
	for i := len(all) - 1; i >= 0; i-- {
		if aws.ToString(all[i].ResourceType) == "AWS::CloudFormation::Stack" {
			out = append(out, string(all[i].ResourceStatus))
		}
	}
	return out
}

func outputsOf(s cfntypes.Stack) map[string]string {
	out := map[string]string{}
	for _, o := range s.Outputs {
		out[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	return out
}

// manualClock fires delays only when released, so a test can look at a stack while its
// operation is in progress.
type manualClock struct {
	mu      sync.Mutex
	waiting []chan time.Time
	armed   chan struct{}
}

func newManualClock() *manualClock { return &manualClock{armed: make(chan struct{}, 100)} }

func (c *manualClock) Now() time.Time { return time.Now() }

func (c *manualClock) After(time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	c.waiting = append(c.waiting, ch)
	c.mu.Unlock()
	c.armed <- struct{}{}
	return ch
}

// awaitDelay blocks until an operation is waiting on the clock.
func (c *manualClock) awaitDelay(t *testing.T) {
	t.Helper()
	select {
	case <-c.armed:
	case <-time.After(30 * time.Second):
		t.Fatal("no operation started its delay")
	}
}

func (c *manualClock) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range c.waiting {
		ch <- time.Now()
	}
	c.waiting = nil
}
