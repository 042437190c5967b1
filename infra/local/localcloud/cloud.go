// Package cloud assembles the local cloud: kumo in process, the front door on one address,
// the accounts and STS, the stack engine, the Step Functions engine, the event sources
// (vendor-bus delivery, SQS event source mappings, Scheduler schedules) and the function
// processes. Start gives a running cloud; everything then talks to it through its URL as it
// would talk to AWS.
package localcloud

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/sivchari/kumo"

	"github.com/byocloud/byoc/infra/local/accounts"
	"github.com/byocloud/byoc/infra/local/apigw"
	"github.com/byocloud/byoc/infra/local/cfnengine"
	"github.com/byocloud/byoc/infra/local/chaos"
	"github.com/byocloud/byoc/infra/local/eventsources/clock"
	"github.com/byocloud/byoc/infra/local/eventsources/esm"
	"github.com/byocloud/byoc/infra/local/eventsources/eventbus"
	"github.com/byocloud/byoc/infra/local/eventsources/schedules"
	"github.com/byocloud/byoc/infra/local/frontdoor"
	"github.com/byocloud/byoc/infra/local/lambdahost"
	"github.com/byocloud/byoc/infra/local/sqsgate"
)

// Options configure a local cloud. Zero values take the defaults.
type Options struct {
	// Addr is the front door's address; default 127.0.0.1:4566. "127.0.0.1:0" picks a free
	// port (a second cloud in one process, as the start-time benchmark runs).
	Addr string
	// Region is the cloud's one region; default us-east-1. Requests signed for another
	// region are served too, but kumo's resources all live in one region.
	Region string
	// BinDir holds the functions built for this machine: <BinDir>/<function>/bootstrap;
	// default build/local.
	BinDir string
	// StackDelay is how long a customer-account stack operation stays *_IN_PROGRESS.
	StackDelay time.Duration
	// Speed runs the cloud's clock faster than real time (schedules, stack delays); 0 or 1
	// is real time. Clock, when set, replaces it.
	Speed float64
	Clock clock.Clock
	// Output receives the function processes' logs, prefixed "[name]"; default os.Stderr.
	// io.Discard silences them.
	Output io.Writer
	// Logger receives the cloud's own warnings; default a text logger on Output at Warn.
	Logger *slog.Logger
	// Observer is told of every event of the timeline, from any goroutine.
	Observer func(Event)
}

// Cloud is a running local cloud.
type Cloud struct {
	URL      string // the front door: AWS_ENDPOINT_URL for every client
	Region   string
	Accounts *accounts.Accounts
	Stacks   *cfnengine.Engine
	Bus      *eventbus.Bus
	Mappings *esm.Mappings
	Firer    *schedules.Firer
	Host     *lambdahost.Host
	Door     *frontdoor.Door
	SQS      *sqsgate.Gate // stamps senders, enforces queue policies
	Clock    clock.Clock
	States   *States
	// Chaos injects AWS's faults once armed (Chaos.Arm); off until then.
	Chaos *chaos.Injector

	opts     Options
	kumo     *kumo.Server
	server   *frontdoor.Server
	started  time.Time
	logger   *slog.Logger
	observer func(Event)

	mu        sync.Mutex
	functions map[string]string // byoc name -> Lambda function name
	byName    map[string]string // Lambda function name -> byoc name
	assets    map[string]string // byoc name -> bundle directory

	transitions atomic.Int64
}

// VendorAccount is the account the control plane runs in.
const VendorAccount = accounts.VendorAccount

// Start starts a local cloud. A busy front-door port is an error naming the port, returned
// before anything else starts.
func Start(ctx context.Context, o Options) (*Cloud, error) {
	if o.Addr == "" {
		o.Addr = frontdoor.DefaultAddr
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.BinDir == "" {
		o.BinDir = filepath.Join("build", "local")
	}
	if o.Output == nil {
		o.Output = os.Stderr
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(o.Output, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if o.Clock == nil {
		// Accelerated even at speed 1: it can jump (a scenario reaching a maintenance window).
		o.Clock = clock.NewAccelerated(o.Speed)
	}
	c := &Cloud{
		Region: o.Region, Clock: o.Clock, opts: o, started: time.Now(), logger: o.Logger, observer: o.Observer,
		functions: map[string]string{}, byName: map[string]string{}, assets: map[string]string{},
	}
	// The door's address first: a second local cloud must fail at once, naming the port.
	lazy := &lazyHandler{}
	server, err := frontdoor.Listen(o.Addr, lazy)
	if err != nil {
		return nil, err
	}
	c.server, c.URL = server, server.URL
	if err := c.assemble(lazy); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// lazyHandler lets the door listen before the components behind it exist.
type lazyHandler struct{ h atomic.Pointer[http.Handler] }

func (l *lazyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := l.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	http.Error(w, "the local cloud is starting", http.StatusServiceUnavailable)
}

func (c *Cloud) assemble(lazy *lazyHandler) error {
	o := c.opts
	c.kumo = kumo.NewServer()
	proxy, err := frontdoor.Proxy(c.kumo.URL)
	if err != nil {
		return err
	}
	c.Door = frontdoor.New(proxy)
	internal := c.internalConfig()

	c.Accounts = accounts.New()
	c.Accounts.SetLogger(c.logger)
	c.Chaos = chaos.New(c.onFault)

	fnClock, err := functionClock(o.Clock)
	if err != nil {
		return err
	}
	c.Host, err = lambdahost.New(lambdahost.Config{
		BinDir: o.BinDir, RuntimeAPI: strings.TrimPrefix(c.kumo.URL, "http://"), Endpoint: c.URL, Region: o.Region,
		Credentials: func(roleArn, session string) (aws.Credentials, error) {
			return c.Accounts.FunctionCredentials(roleArn, session, 0)
		},
		Output: o.Output, Observer: c.onInvocation, Chaos: c.Chaos, Env: fnClock,
	})
	if err != nil {
		return err
	}
	c.Bus = eventbus.New(eventbus.Config{
		AWS: internal, Account: VendorAccount, Region: o.Region, CallerAccount: c.Accounts.CallerAccount,
		Observer: c.onDelivery, Logger: c.logger, Chaos: c.Chaos,
		// Cross-account PutEvents is admitted by the bus policy, which the stack engine keeps.
		Admits: func(busArn, account, source string) bool { return c.Stacks.BusAdmits(busArn, account, source) },
	})
	c.Stacks = cfnengine.New(cfnengine.Config{
		Accounts: c.Accounts, VendorAccount: VendorAccount, Region: o.Region, AWS: internal,
		Delay: o.StackDelay, Functions: hostAdapter{c}, Clock: o.Clock, Observer: c.onStackEvent,
		DeliverEvent: c.Bus.Deliver, Logger: c.logger,
	})
	c.Mappings = esm.New(esm.Config{AWS: internal, Account: VendorAccount, Region: o.Region, Observer: c.onBatch, Logger: c.logger, Chaos: c.Chaos})
	c.Firer = schedules.New(schedules.Config{AWS: internal, Account: VendorAccount, Clock: o.Clock, Observer: c.onFiring, Logger: c.logger})
	c.States, err = newStates(c, internal)
	if err != nil {
		return err
	}

	// The SQS gate reads queue policies straight from kumo (not counted, not gated).
	kumoCfg := internal
	kumoCfg.BaseEndpoint = aws.String(c.kumo.URL)
	c.SQS = sqsgate.New(sqsgate.Config{Accounts: c.Accounts, Next: proxy, AWS: kumoCfg, VendorAccount: VendorAccount, Logger: c.logger})

	d := c.Door
	d.HandleIf("sqs", sqsgate.IsRequest, c.SQS)
	d.Handle("cloudformation", c.Stacks)
	d.Handle("sts", c.Accounts)
	// Customer accounts' networks exist only in the stack engine (kumo keeps its own EC2 apart).
	d.Handle("ec2", c.Stacks.EC2())
	// kumo ignores TransactWriteItems' ClientRequestToken; AWS honours it, and the store's
	// writes are transactions whose SDK retries must not apply twice.
	d.HandleIf("dynamodb", frontdoor.IsTransactWrite, frontdoor.TransactTokens(proxy))
	d.Handle("states", c.States.Handler())
	d.HandleIf("events", cfnengine.IsBusPermissionRequest, c.Stacks.BusPermissions())
	d.HandleIf("events", eventbus.IsPutEvents, c.Bus)
	d.HandleIf("lambda", esm.IsMappingRequest, c.Mappings)
	d.HandleIf("scheduler", schedules.IsScheduleWrite, schedules.OwnAccount(schedules.Validate(proxy), VendorAccount))
	d.Handle("scheduler", schedules.OwnAccount(proxy, VendorAccount))
	// The control plane's HTTP API (the operator API), with API Gateway's SigV4 check.
	gateway := apigw.New(apigw.Config{Accounts: c.Accounts, VendorAccount: VendorAccount, Region: o.Region,
		APIs: c.Stacks.HTTPAPIs, Lambda: lambda.NewFromConfig(internal), Logger: c.logger})
	d.Handle("execute-api", gateway)
	d.HandleIf("", apigw.IsAPIRequest, gateway) // unsigned: refused there, as on AWS
	c.controls()
	h := c.Chaos.Door(d, chaos.DoorConfig{Caller: c.faultable, Kill: c.Host.Kill, IsFunction: c.Host.Runs})
	lazy.h.Store(&h)
	c.Firer.Start()
	return nil
}

// faultable says whether chaos may hit a request: the calls of the system's own sessions
// (functions, the simulated data plane's pods, and what they assume) and Step Functions'
// task calls; not the people driving the cloud (root users) nor the cloud's own plumbing.
func (c *Cloud) faultable(r *http.Request) (bool, string) {
	if r.Header.Get(stepFunctionsTaskHeader) != "" {
		return true, "states"
	}
	if r.Header.Get(frontdoor.InternalHeader) != "" {
		return false, ""
	}
	p := c.Accounts.Caller(r)
	return !p.IsRoot(), p.Origin
}

// Close stops everything the cloud started. kumo's state lives on in the process (kumo
// keeps one state per process), so a later cloud in the same process sees those resources.
func (c *Cloud) Close() error {
	var errs []error
	if c.Firer != nil {
		c.Firer.Close()
	}
	if c.Mappings != nil {
		c.Mappings.Close()
	}
	if c.Stacks != nil {
		c.Stacks.Wait()
	}
	if c.States != nil {
		c.States.Close()
	}
	if c.Host != nil {
		errs = append(errs, c.Host.Close())
	}
	if c.server != nil {
		errs = append(errs, c.server.Close())
	}
	if c.kumo != nil {
		c.kumo.Close()
	}
	return errors.Join(errs...)
}

// Config is an SDK configuration for the vendor account's root user at the front door,
// what the AWS CLI gets from AWS_ENDPOINT_URL and any static keys.
func (c *Cloud) Config() aws.Config {
	return c.configWith(credentials.NewStaticCredentialsProvider("AKIDLOCALVENDOR", "local", ""), nil)
}

// ConfigAs is an SDK configuration acting as the root user of account (a customer
// applying the bootstrap stack with admin rights in its own account).
func (c *Cloud) ConfigAs(account string) aws.Config {
	creds := accounts.AdminCredentials(account)
	return c.configWith(credentials.StaticCredentialsProvider{Value: creds}, nil)
}

// WatchConfig is a vendor configuration whose calls are not counted: for a scenario or a
// test that reads the cloud's state to follow it, which the control plane does not do.
func (c *Cloud) WatchConfig() aws.Config { return c.internalConfig() }

// WatchConfigAs is WatchConfig acting in account.
func (c *Cloud) WatchConfigAs(account string) aws.Config {
	return c.configWith(credentials.StaticCredentialsProvider{Value: accounts.AdminCredentials(account)}, frontdoor.InternalClient())
}

// OperatorConfig is the configuration of an operator of account (its root credentials: the
// access key is the account id, the secret accounts.AdminSecret), whose calls are counted as
// AWS calls: what the byoc CLI and console use against the local cloud.
func (c *Cloud) OperatorConfig(account string) aws.Config {
	return c.configWith(credentials.StaticCredentialsProvider{Value: accounts.AdminCredentials(account)}, nil)
}

// internalConfig is the vendor configuration of the cloud's own components: their calls
// are routed by the door but not counted.
func (c *Cloud) internalConfig() aws.Config {
	return c.configWith(credentials.NewStaticCredentialsProvider("AKIDLOCALINTERNAL", "local", ""), frontdoor.InternalClient())
}

func (c *Cloud) configWith(creds aws.CredentialsProvider, client *http.Client) aws.Config {
	cfg := aws.Config{
		Region: c.Region, BaseEndpoint: aws.String(c.URL), Credentials: creds,
		RetryMaxAttempts: 3,
	}
	if client == nil {
		// One pool for every client of the scenarios and the simulated data plane (a pool
		// per client would hold its idle connections open for good).
		client = &http.Client{Transport: frontdoor.SharedTransport}
	}
	cfg.HTTPClient = client
	return cfg
}

// FunctionName returns the Lambda function name of a control-plane function (its
// byoc:function tag, e.g. "invite"), once the stack engine has started it.
func (c *Cloud) FunctionName(byocName string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.functions[byocName]
	return n, ok
}

// Counters are what the benchmarks report.
type Counters struct {
	AWSCalls          int64 // requests the control plane and its users made at the front door
	LambdaInvocations int64 // invocations the function processes served
	StateTransitions  int64 // states entered by workflow executions
}

// Counters returns the counts so far.
func (c *Cloud) Counters() Counters {
	return Counters{
		AWSCalls:          c.Door.Stats().Total(),
		LambdaInvocations: c.Host.Invocations(),
		StateTransitions:  c.transitions.Load(),
	}
}

// Uptime is how long ago Start began.
func (c *Cloud) Uptime() time.Duration { return time.Since(c.started) }

// hostAdapter runs the stack engine's functions on the host.
type hostAdapter struct{ c *Cloud }

func (a hostAdapter) StartFunction(ctx context.Context, spec cfnengine.FunctionSpec) error {
	a.c.mu.Lock()
	asset := a.c.assets[spec.ByocName]
	a.c.mu.Unlock()
	err := a.c.Host.Start(ctx, lambdahost.Spec{
		Name: spec.Name, ByocName: spec.ByocName, Env: spec.Env, Timeout: spec.Timeout, MemoryMB: spec.MemoryMB,
		RoleArn: spec.RoleArn, Credentials: spec.Credentials, AssetDir: asset,
	})
	if err != nil {
		return err
	}
	a.c.mu.Lock()
	a.c.functions[spec.ByocName] = spec.Name
	a.c.byName[spec.Name] = spec.ByocName
	a.c.mu.Unlock()
	return nil
}

func (a hostAdapter) StopFunction(name string) error {
	a.c.mu.Lock()
	if byoc, ok := a.c.byName[name]; ok {
		delete(a.c.functions, byoc)
		delete(a.c.byName, name)
	}
	a.c.mu.Unlock()
	return a.c.Host.Stop(name)
}

func (c *Cloud) byocName(function string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := strings.LastIndex(function, ":function:"); i >= 0 {
		function = function[i+len(":function:"):]
	}
	if n, ok := c.byName[function]; ok {
		return n
	}
	return function
}
