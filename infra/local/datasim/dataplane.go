// Package dataplane simulates the in-cluster side of byoc deployments for the local cloud:
// for each deployment, an agent that consumes the commands the control plane puts on the
// deployment's channel (package channel) and a State Exporter that sends a state message
// (package statemsg) per service to the state queue, acknowledging the commands it applied.
//
// Faults can be injected per deployment, to exercise what the control plane must survive:
// a service turning unhealthy after a change, an exporter falling silent, messages sent
// twice, and messages delivered out of order.
//
// The local cloud drives it: Add a deployment once it is provisioned, then call Step on a
// timer (or Run). Each deployment's components call SQS as the real ones do: the exporter
// with a session of the deployment's exporter role ("state-exporter"), the agent with a
// session of its agent role ("agent"), both issued as EKS Pod Identity issues them
// (Config.Credentials; in the local cloud accounts.WorkloadCredentials). The simulator
// claims no identity of its own: the local cloud's front door stamps each message with its
// sender and enforces the queues' policies, so a deployment is only heard when its exporter
// role was admitted, and a forged sender is simulated by giving a deployment another
// deployment's exporter role.
package datasim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/statemsg"
)

// Session names of the simulated components' role sessions: they appear in the SenderId
// of the exporter's messages ("<exporter role id>:state-exporter").
const (
	ExporterSession = "state-exporter"
	AgentSession    = "agent"
)

// Fault is a misbehaviour injected into a deployment's data plane.
type Fault string

const (
	// Unhealthy: after the next change (a command applied, or the deployment's first report
	// when injected at Add), the changed services report unhealthy with no ready replica.
	// Clearing the fault repairs them.
	Unhealthy Fault = "unhealthy"
	// Silence: the exporter sends nothing (the agent still applies commands; their
	// acknowledgements wait until the exporter speaks again).
	Silence Fault = "silence"
	// Duplicate: every message is sent twice.
	Duplicate Fault = "duplicate"
	// OutOfOrder: each service's messages are sent in swapped pairs, so the older one of
	// a pair arrives after the newer one.
	OutOfOrder Fault = "out-of-order"
)

// Faults lists every fault.
var Faults = []Fault{Unhealthy, Silence, Duplicate, OutOfOrder}

// ParseFault reads a fault name (the local cloud's --fault flag).
func ParseFault(s string) (Fault, error) {
	f := Fault(s)
	if !slices.Contains(Faults, f) {
		return "", fmt.Errorf("unknown fault %q: must be one of %v", s, Faults)
	}
	return f, nil
}

// Service is a simulated ClickHouse service.
type Service struct {
	ID       string
	Hostname string // defaults to <id>.<deployment>.byoc.local
	Versions statemsg.Versions
	Replicas int // desired and ready replicas; defaults to 3
}

// Deployment is a simulated data plane.
type Deployment struct {
	ID string
	// ExporterRoleARN is the role the State Exporter sends as (the infrastructure stack's
	// StateExporterRoleArn output). Another deployment's exporter role here simulates a
	// forged sender.
	ExporterRoleARN string
	// AgentRoleARN is the role the agent reads the command channel as (the
	// AgentRoleArn output; a pod session, as EKS Pod Identity gives it).
	AgentRoleARN string
	// Region is the deployment's region: the private load balancer the agent reports is
	// there (us-east-1 when empty).
	Region   string
	Services []Service
	Faults   []Fault
}

// DefaultVersions are the versions a service starts with when none are given.
var DefaultVersions = statemsg.Versions{ClickHouse: "24.8.1.2684", Operator: "0.25.3", Kubernetes: "1.30"}

// Config configures a simulator.
type Config struct {
	// AWS is where the data planes call SQS (endpoint and region); its credentials are not
	// used: each component calls with its role's session.
	AWS aws.Config
	// Credentials issues a session of a role to a pod (EKS Pod Identity); required.
	Credentials func(roleArn, session string) (aws.Credentials, error)
	// StateQueueURL is the vendor's state queue (the control plane's StateQueueUrl output).
	StateQueueURL string
	// VendorAccount owns the command channels: the agent looks its queue up there
	// (GetQueueUrl with QueueOwnerAWSAccountId).
	VendorAccount string
	Now           func() time.Time // the exporters' clock; time.Now when nil
	Log           *slog.Logger     // slog.Default() when nil
}

// Simulator runs the data planes of any number of deployments. Safe for concurrent use.
type Simulator struct {
	cfg Config
	mu  sync.Mutex
	dps map[string]*plane
}

// New returns a simulator with no deployment.
func New(cfg Config) *Simulator {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Simulator{cfg: cfg, dps: map[string]*plane{}}
}

type service struct {
	Service
	status    statemsg.Status
	ready     int
	held      *sqs.SendMessageInput // OutOfOrder: the message waiting for its successor
	broken    bool                  // turned unhealthy by the Unhealthy fault
	breakNext bool                  // changed while the Unhealthy fault is on: the next report breaks it
	acks      []statemsg.CommandAck
	lastStart int // desired replicas before a stop, restored by start
}

type plane struct {
	d        Deployment
	exporter *sqs.Client // as the exporter role's session
	agent    *sqs.Client // as the agent role's session
	epoch    int64
	seq      int64
	services map[string]*service
	order    []string
	faults   map[Fault]bool
	reported bool
	queueURL string
	handled  map[string]bool // command ids applied: agents are idempotent by id
	ledger   Ledger
}

// Ledger is what a simulated data plane did, from its own side: the ground truth chaos
// runs check the control plane's records against.
type Ledger struct {
	// Applied are the commands the agent applied, in order, each id once.
	Applied []channel.Command
	// LastSent is, per service, the order key (statemsg.OrderKey) of the last report SQS
	// accepted: the report the control plane must end up holding.
	LastSent map[string]string
}

// Ledger returns a deployment's ledger (empty when it is not simulated).
func (s *Simulator) Ledger(deploymentID string) Ledger {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.dps[deploymentID]
	if p == nil {
		return Ledger{}
	}
	return Ledger{Applied: slices.Clone(p.ledger.Applied), LastSent: maps.Clone(p.ledger.LastSent)}
}

// Add starts simulating a deployment. Adding a deployment already simulated replaces it
// (a new exporter life: a new epoch, sequence from 1).
func (s *Simulator) Add(d Deployment) error {
	if !settings.ValidDeploymentID(d.ID) {
		return fmt.Errorf("simulate deployment %q: id must be %s", d.ID, settings.DeploymentIDRule)
	}
	exporter, err := s.client(d.ExporterRoleARN, ExporterSession)
	if err != nil {
		return fmt.Errorf("simulate deployment %s: exporterRoleArn: %w", d.ID, err)
	}
	agent, err := s.client(d.AgentRoleARN, AgentSession)
	if err != nil {
		return fmt.Errorf("simulate deployment %s: agentRoleArn: %w", d.ID, err)
	}
	p := &plane{d: d, exporter: exporter, agent: agent, epoch: s.cfg.Now().UnixMilli(),
		services: map[string]*service{}, faults: map[Fault]bool{}, handled: map[string]bool{},
		ledger: Ledger{LastSent: map[string]string{}}}
	for _, f := range d.Faults {
		if _, err := ParseFault(string(f)); err != nil {
			return fmt.Errorf("simulate deployment %s: %w", d.ID, err)
		}
		p.faults[f] = true
	}
	for _, svc := range d.Services {
		if !statemsg.ValidID(svc.ID) {
			return fmt.Errorf("simulate deployment %s: service id %q %s", d.ID, svc.ID, statemsg.IDRule)
		}
		// Injected at Add, the Unhealthy fault takes provisioning as the change: the first
		// report is healthy, the next one is not.
		p.addService(svc).breakNext = p.faults[Unhealthy]
	}
	s.mu.Lock()
	s.dps[d.ID] = p
	s.mu.Unlock()
	return nil
}

func (p *plane) addService(svc Service) *service {
	if svc.Hostname == "" {
		svc.Hostname = svc.ID + "." + p.d.ID + ".byoc.local"
	}
	if svc.Versions == (statemsg.Versions{}) {
		svc.Versions = DefaultVersions
	}
	if svc.Replicas <= 0 {
		svc.Replicas = 3
	}
	s := &service{Service: svc, status: statemsg.StatusHealthy, ready: svc.Replicas}
	p.services[svc.ID] = s
	p.order = append(p.order, svc.ID)
	return s
}

// Remove stops simulating a deployment (its teardown).
func (s *Simulator) Remove(deploymentID string) {
	s.mu.Lock()
	delete(s.dps, deploymentID)
	s.mu.Unlock()
}

// Inject turns a fault on for a deployment.
func (s *Simulator) Inject(deploymentID string, f Fault) error {
	return s.setFault(deploymentID, f, true)
}

// Clear turns a fault off; clearing Unhealthy repairs the services it broke.
func (s *Simulator) Clear(deploymentID string, f Fault) error {
	return s.setFault(deploymentID, f, false)
}

func (s *Simulator) setFault(deploymentID string, f Fault, on bool) error {
	if _, err := ParseFault(string(f)); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.dps[deploymentID]
	if !ok {
		return fmt.Errorf("deployment %s is not simulated", deploymentID)
	}
	p.faults[f] = on
	if f == Unhealthy && !on {
		for _, svc := range p.services {
			svc.broken, svc.breakNext = false, false
		}
	}
	return nil
}

// StepReport says what one step did, per deployment.
type StepReport struct {
	Commands int // commands handled (applied, or refused with a failed acknowledgement)
	Sent     int // state messages sent (duplicates count twice)
}

// Step runs one round for every deployment: the agent applies the commands waiting on the
// channel, then the exporter reports every service once. Errors of one deployment do not
// stop the others; they are returned together.
func (s *Simulator) Step(ctx context.Context) (map[string]StepReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	reports := map[string]StepReport{}
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(s.dps)) {
		r, err := s.step(ctx, s.dps[id])
		reports[id] = r
		if err != nil {
			errs = append(errs, fmt.Errorf("deployment %s: %w", id, err))
		}
	}
	return reports, errors.Join(errs...)
}

// Run steps every interval until ctx ends, logging errors.
func (s *Simulator) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.Step(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Log.Warn("data-plane simulator step failed", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// client returns an SQS client acting as a pod's session of roleArn, renewed before it
// expires. A role that cannot have a session is refused here, at Add.
func (s *Simulator) client(roleArn, session string) (*sqs.Client, error) {
	if _, ok := servicestate.RoleARNAccount(roleArn); !ok {
		return nil, fmt.Errorf("must be an IAM role ARN, got %q", roleArn)
	}
	if s.cfg.Credentials == nil {
		return nil, errors.New("the simulator has no Config.Credentials to issue role sessions")
	}
	if _, err := s.cfg.Credentials(roleArn, session); err != nil {
		return nil, fmt.Errorf("session %s of %s: %w", session, roleArn, err)
	}
	cfg := s.cfg.AWS.Copy()
	cfg.Credentials = aws.NewCredentialsCache(aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return s.cfg.Credentials(roleArn, session)
	}))
	return sqs.NewFromConfig(cfg), nil
}

func (s *Simulator) step(ctx context.Context, p *plane) (StepReport, error) {
	var r StepReport
	n, err := s.applyCommands(ctx, p)
	r.Commands = n
	if err != nil {
		return r, err
	}
	if p.faults[Silence] {
		return r, nil
	}
	if s.cfg.StateQueueURL == "" {
		return r, errors.New("no state queue to report to (Config.StateQueueURL): is the control plane deployed?")
	}
	for _, id := range p.order {
		sent, err := s.report(ctx, p, p.services[id])
		r.Sent += sent
		if err != nil {
			return r, err
		}
	}
	p.reported = true
	return r, nil
}

// applyCommands receives what waits on the deployment's channel and applies it.
func (s *Simulator) applyCommands(ctx context.Context, p *plane) (int, error) {
	client := p.agent
	if p.queueURL == "" {
		name, err := channel.QueueName(p.d.ID)
		if err != nil {
			return 0, err
		}
		in := &sqs.GetQueueUrlInput{QueueName: aws.String(name)}
		if s.cfg.VendorAccount != "" {
			in.QueueOwnerAWSAccountId = aws.String(s.cfg.VendorAccount)
		}
		out, err := client.GetQueueUrl(ctx, in)
		if channel.QueueMissing(err) {
			return 0, nil // no channel (yet): nothing to apply
		}
		if err != nil {
			return 0, fmt.Errorf("find the command channel %s: %w", name, err)
		}
		p.queueURL = aws.ToString(out.QueueUrl)
	}
	applied := 0
	for {
		good, bad, err := channel.Receive(ctx, client, p.queueURL, 10, 0)
		if err != nil {
			return applied, err
		}
		for _, handle := range bad {
			if err := channel.Delete(ctx, client, p.queueURL, handle); err != nil {
				return applied, err
			}
		}
		if len(good) == 0 && len(bad) == 0 {
			return applied, nil
		}
		for _, d := range good {
			if !p.handled[d.Command.ID] {
				p.apply(d.Command, s.cfg.Log)
				p.handled[d.Command.ID] = true
				p.ledger.Applied = append(p.ledger.Applied, d.Command)
				applied++
			}
			if err := channel.Delete(ctx, client, p.queueURL, d.ReceiptHandle); err != nil {
				return applied, err
			}
		}
	}
}

// apply changes the simulated services as the agent would, and queues the acknowledgement
// on the service whose next report carries it.
func (p *plane) apply(c channel.Command, log *slog.Logger) {
	ack := func(svc *service, status statemsg.AckStatus, detail string) {
		svc.acks = append(svc.acks, statemsg.CommandAck{ID: c.ID, Status: status, Detail: detail})
	}
	targets := []*service{p.services[c.ServiceID]}
	if c.ServiceID == "" {
		targets = nil
		for _, id := range p.order {
			targets = append(targets, p.services[id])
		}
	}
	if (c.Kind == channel.PrivateLoadBalancer || c.Kind == channel.PublicLoadBalancer) && len(p.order) > 0 {
		// Load balancers belong to the ingress, not to a service; the ack travels with the
		// first service's report.
		ack(p.services[p.order[0]], statemsg.AckSucceeded, p.loadBalancer(c))
		log.Info("simulated agent applied a command", "deploymentId", p.d.ID, "commandId", c.ID, "kind", c.Kind, "params", c.Params)
		return
	}
	if targets[0] == nil {
		if c.Kind != channel.ApplyRelease {
			// The ack needs a service to travel with: the first one, if any.
			if len(p.order) > 0 {
				ack(p.services[p.order[0]], statemsg.AckFailed, "no service "+c.ServiceID)
			}
			return
		}
		// Applying a release to a service that does not exist creates it.
		targets[0] = p.addService(Service{ID: c.ServiceID})
	}
	for _, svc := range targets {
		switch c.Kind {
		case channel.ApplyRelease:
			if v := c.Params["clickhouseVersion"]; v != "" {
				svc.Versions.ClickHouse = v
			}
			if v := c.Params["operatorVersion"]; v != "" {
				svc.Versions.Operator = v
			}
		case channel.Start:
			if svc.status == statemsg.StatusStopped || svc.status == statemsg.StatusIdle {
				svc.Replicas = max(svc.lastStart, 1)
			}
			svc.status, svc.ready = statemsg.StatusHealthy, svc.Replicas
		case channel.Stop:
			svc.lastStart = svc.Replicas
			svc.status, svc.ready, svc.Replicas = statemsg.StatusStopped, 0, 0
		case channel.Idle:
			svc.lastStart = svc.Replicas
			svc.status, svc.ready, svc.Replicas = statemsg.StatusIdle, 0, 0
		case channel.Terminate:
			svc.status, svc.ready, svc.Replicas = statemsg.StatusTerminated, 0, 0
		case channel.Scale:
			n, _ := strconv.Atoi(c.Params["replicas"]) // validated by channel.ParseCommand
			svc.Replicas, svc.ready = n, n
		case channel.Backup, channel.Restore, channel.AccessList:
		}
		svc.breakNext = p.faults[Unhealthy]
		log.Info("simulated agent applied a command", "deploymentId", p.d.ID, "serviceId", svc.ID, "commandId", c.ID, "kind", c.Kind)
	}
	// One acknowledgement per command: on its service, or on the first for a
	// deployment-wide command.
	ack(targets[0], statemsg.AckSucceeded, "")
}

// loadBalancer applies a load balancer command and returns the acknowledgement's detail:
// for private-lb, the load balancer as connectivity.LoadBalancer's JSON (the ingress
// controller's NLB, named k8s-istioing-... as on ClickHouse's clusters).
func (p *plane) loadBalancer(c channel.Command) string {
	if c.Kind != channel.PrivateLoadBalancer {
		return ""
	}
	region := p.d.Region
	if region == "" {
		region = "us-east-1"
	}
	account := strings.Split(p.d.AgentRoleARN, ":")[4]
	sum := sha256.Sum256([]byte(p.d.ID))
	h := hex.EncodeToString(sum[:])
	detail, _ := json.Marshal(map[string]string{
		"dnsName":         "k8s-istioing-private-" + h[:10] + ".elb." + region + ".amazonaws.com",
		"securityGroupId": c.Params["securityGroupId"], // the group byoc asked the agent to attach
		"arn":             "arn:aws:elasticloadbalancing:" + region + ":" + account + ":loadbalancer/net/k8s-istioing-private/" + h[27:43],
	})
	return string(detail)
}

// report sends one state message for svc, with the faults applied, and returns how many
// messages went out.
func (s *Simulator) report(ctx context.Context, p *plane, svc *service) (int, error) {
	if svc.breakNext && p.reported && p.faults[Unhealthy] {
		svc.broken, svc.breakNext = true, false
	}
	p.seq++
	m := statemsg.Message{
		SchemaVersion: statemsg.Version1, DeploymentID: p.d.ID, ServiceID: svc.ID, Hostname: svc.Hostname,
		ObservedAt: s.cfg.Now().UTC(), ExporterEpoch: p.epoch, Sequence: p.seq,
		Status: svc.status, Versions: svc.Versions,
		Replicas:     statemsg.Replicas{Ready: svc.ready, Desired: svc.Replicas},
		StorageBytes: 1 << 30, Commands: svc.acks,
	}
	if svc.broken && svc.status != statemsg.StatusStopped {
		m.Status, m.Replicas.Ready, m.Errors = statemsg.StatusUnhealthy, 0, 1
	}
	body, err := statemsg.Encode(m, s.cfg.Now())
	if err != nil {
		return 0, fmt.Errorf("encode report of %s: %w", svc.ID, err)
	}
	in := &sqs.SendMessageInput{QueueUrl: aws.String(s.cfg.StateQueueURL), MessageBody: aws.String(string(body))}
	// Acknowledgements ride on this message; a send that fails puts them back.
	svc.acks = nil

	var batch []*sqs.SendMessageInput
	switch {
	case p.faults[OutOfOrder] && svc.held == nil:
		svc.held = in
		return 0, nil
	case p.faults[OutOfOrder]:
		batch = []*sqs.SendMessageInput{in, svc.held}
		svc.held = nil
	case svc.held != nil: // the fault was cleared: release the held message, in order
		batch = []*sqs.SendMessageInput{svc.held, in}
		svc.held = nil
	default:
		batch = []*sqs.SendMessageInput{in}
	}
	sent := 0
	for _, msg := range batch {
		copies := 1
		if p.faults[Duplicate] {
			copies = 2
		}
		for range copies {
			if _, err := p.exporter.SendMessage(ctx, msg); err != nil {
				if msg == in {
					// Not sent (as far as the exporter knows): its acknowledgements go
					// with the next report, as a real agent repeats an unconfirmed ack.
					svc.acks = append(m.Commands, svc.acks...)
				}
				return sent, fmt.Errorf("send state of %s: %w", svc.ID, err)
			}
			sent++
			if msg == in {
				p.ledger.LastSent[svc.ID] = m.OrderKey()
			}
		}
	}
	return sent, nil
}
