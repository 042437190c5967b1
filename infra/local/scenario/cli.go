package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/byocloud/byoc/infra/local/accounts"
	"github.com/byocloud/byoc/infra/local/datasim"
	"github.com/byocloud/byoc/infra/local/frontdoor"
	"github.com/byocloud/byoc/infra/local/localcloud"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/servicestate"
)

// Exit codes of byoc-local.
const (
	ExitOK       = 0
	ExitFailed   = 1 // the scenario's outcome is wrong, or the cloud could not run it
	ExitUsage    = 2
	maxEventSize = 256 * 1024
)

type flags struct {
	scenario, failResource, failReason, addr, templates, bin, logs, customer string
	stackDelay, timeout                                                      time.Duration
	speed                                                                    float64
	serve, dataPlane                                                         bool
	fault                                                                    string
	// invoke
	function, event, dataPlanes string
}

func newFlagSet(name string, out io.Writer, f *flags) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&f.addr, "addr", frontdoor.DefaultAddr, "address of the local cloud's AWS endpoint")
	fs.StringVar(&f.templates, "templates", "cdk.out", "directory of the synthesized templates (make synth)")
	fs.StringVar(&f.bin, "bin", filepath.Join("build", "local"), "directory of the functions built for this machine (make build)")
	fs.StringVar(&f.logs, "logs", filepath.Join("build", "local", "functions.log"), `where the functions' logs go ("-": standard error)`)
	fs.DurationVar(&f.timeout, "timeout", 2*time.Minute, "how long the scenario may take")
	return fs
}

// Main is byoc-local: it parses args, runs the local cloud and the chosen scenario, and
// returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "invoke" {
		return invokeMain(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "chaos" {
		return chaosMain(ctx, args[1:], stdout, stderr)
	}
	var f flags
	fs := newFlagSet("byoc-local", stderr, &f)
	fs.StringVar(&f.scenario, "scenario", Onboard, "what to run: "+strings.Join(Names, ", ")+`; "none" with --serve`)
	fs.DurationVar(&f.stackDelay, "stack-delay", 500*time.Millisecond, "how long a customer stack operation stays *_IN_PROGRESS")
	fs.Float64Var(&f.speed, "speed", 1, "how much faster than real time the cloud's clock runs (schedules, stack delays)")
	fs.StringVar(&f.failResource, "fail-resource", DefaultFailResource, "infra-fails, rollback-retry: logical id of the infrastructure resource that fails")
	fs.StringVar(&f.failReason, "fail-reason", DefaultFailReason, "infra-fails, rollback-retry: the reason CloudFormation reports")
	fs.StringVar(&f.customer, "customer", "", "the customer's 12-digit account id (random when empty)")
	fs.BoolVar(&f.serve, "serve", false, "keep the cloud, and the scenario's simulated data plane, running afterwards and print how to use them with the AWS CLI")
	fs.BoolVar(&f.dataPlane, "data-plane", true, "once the deployment is ready ("+strings.Join(ReadyScenarios, ", ")+"), run its simulated data plane until the control plane reports it healthy")
	fs.StringVar(&f.fault, "fault", "", "a fault of the simulated data plane: "+faultList()+`; "silence" runs the cloud's clock at --speed `+fmt.Sprint(SilenceSpeed)+" unless --speed is given")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `byoc-local runs the byoc control plane on this machine, with no AWS account, and
onboards a customer end to end: invite, bootstrap stack, forwarded event, provision
workflow, infrastructure stack, ready deployment. Then the deployment's simulated data
plane (an agent and a State Exporter) reports its services until the control plane judges
the deployment healthy; the health alerts on the vendor bus show on the timeline.

usage: byoc-local [flags]
       byoc-local invoke --function <name> --event <file.json>
       byoc-local chaos [flags]     (every scenario under injected AWS faults; chaos --help)

scenarios:
  onboard            invite, bootstrap, provision: the deployment is ready
  infra-fails        every attempt of the infrastructure stack fails: deployment failed, reason recorded
  rollback-retry     the first attempt rolls back: the stack is deleted, recreated and completes
  wrong-external-id  the customer applies the bootstrap with another ExternalId: onboarding fails, nothing created
  duplicate-event    the bootstrap's completion is delivered twice: one workflow
  malformed-event    a malformed stack event reaches the vendor bus: refused, nothing changed
  upgrade            a Kubernetes minor and a ClickHouse version upgraded inside the maintenance window
  security-fix       a security release upgraded off-cycle, after its notice, before its deadline
  upgrade-halts      a canary's upgrade fails: the service goes back, the release halts
  peering            a second account's VPC peers (accepter role), public LB removed and restored, peering deleted, PrivateLink
  peering-manual     the customer accepts a peering by hand after the workflow waited; one rejected, one expired

data-plane faults (--fault, with onboard, rollback-retry, duplicate-event):
  unhealthy          after their first report the services turn unhealthy: a critical alert (the expected outcome, exit 0)
  silence            after the deployment is healthy the exporter falls silent: the sweep marks it stale
  duplicate          every state message is sent twice: dropped as duplicates, stored state unchanged
  out-of-order       messages arrive in swapped pairs: the older one is dropped, stored state never goes back

flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := parseArgs(fs, args, stderr); !ok {
		return code
	}
	if f.scenario != "none" && !contains(Names, f.scenario) || f.scenario == "none" && !f.serve {
		fmt.Fprintf(stderr, "byoc-local: --scenario %q: must be one of %s (or none with --serve)\n", f.scenario, strings.Join(Names, ", "))
		return ExitUsage
	}
	if f.speed <= 0 {
		fmt.Fprintf(stderr, "byoc-local: --speed %g: must be positive\n", f.speed)
		return ExitUsage
	}
	if f.stackDelay < 0 {
		fmt.Fprintf(stderr, "byoc-local: --stack-delay %s: must not be negative\n", f.stackDelay)
		return ExitUsage
	}
	if f.customer != "" && !isAccount(f.customer) {
		fmt.Fprintf(stderr, "byoc-local: --customer %q: must be a 12-digit account id\n", f.customer)
		return ExitUsage
	}
	fault, speedNote, usage := dataPlaneFlags(fs, &f)
	if usage != "" {
		fmt.Fprintf(stderr, "byoc-local: %s\n", usage)
		return ExitUsage
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	tl := NewTimeline(stdout)
	runner := &Runner{Progress: tl.Observe, Ingest: &IngestLog{}, KeepDataPlane: f.serve}
	if speedNote != "" {
		tl.Printf("%s\n", speedNote)
	}
	env, err := start(ctx, f, tl, stderr, runner)
	if err != nil {
		fmt.Fprintf(stderr, "byoc-local: %v\n", err)
		return ExitFailed
	}
	defer env.close()
	code, followed := ExitOK, false
	var live *livePlane
	if f.scenario != "none" {
		if f.customer == "" {
			f.customer = RandomAccount()
		}
		tl.Printf("\nscenario %s: customer account %s\n", f.scenario, f.customer)
		res, err := runner.Run(ctx, Options{Scenario: f.scenario, Customer: f.customer, FailResource: f.failResource, FailReason: f.failReason, Timeout: f.timeout,
			DataPlane: f.dataPlane && slices.Contains(ReadyScenarios, f.scenario), Fault: fault})
		report(tl, res)
		followed = res.Health != nil
		if followed && res.Health.live != nil {
			live = &livePlane{sim: res.Health.live, id: res.Deployment.ID, fault: fault}
		}
		if err != nil {
			tl.Printf("\n%v\n", err)
			code = ExitFailed
		} else {
			tl.Printf("\nscenario %s%s: ok in %.1fs%s\n", f.scenario, faultFlag(fault), res.Elapsed.Seconds(), expectedNote(fault, res.Health))
		}
		if !f.serve {
			tl.Printf("\nRun `make local ARGS=--serve` to keep the cloud up and operate it with the byoc CLI and console.\n")
		}
	}
	if f.serve {
		if live != nil {
			defer live.sim.Remove(live.id)
		}
		serve(ctx, tl, env, live)
	}
	return code
}

// parseArgs parses a command's flags: --help exits 0, a bad flag or a stray argument
// exits ExitUsage (the flag set has printed why).
func parseArgs(fs *flag.FlagSet, args []string, stderr io.Writer) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK, false
		}
		return ExitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q (see --help)\n", fs.Name(), fs.Arg(0))
		return ExitUsage, false
	}
	return 0, true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func isAccount(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// environment is a started cloud with the control plane deployed.
type environment struct {
	cloud *localcloud.Cloud
	cp    ControlPlane
	logs  io.Closer
}

func (e *environment) close() {
	_ = e.cloud.Close()
	if e.logs != nil {
		_ = e.logs.Close()
	}
}

// start runs the cloud and deploys the control plane, narrating on the timeline.
func start(ctx context.Context, f flags, tl *Timeline, stderr io.Writer, runner *Runner) (*environment, error) {
	var logs io.Writer = stderr
	var closer io.Closer
	if f.logs != "-" {
		if err := os.MkdirAll(filepath.Dir(f.logs), 0o755); err != nil {
			return nil, err
		}
		file, err := os.Create(f.logs)
		if err != nil {
			return nil, fmt.Errorf("--logs: %w", err)
		}
		logs, closer = file, file
	}
	for _, need := range []string{filepath.Join(f.templates, ControlPlaneTemplate), filepath.Join(f.templates, BootstrapTemplate)} {
		if _, err := os.Stat(need); err != nil {
			return nil, fmt.Errorf("%s is missing: run `make synth` (or `make local`, which builds and synthesizes first)", need)
		}
	}
	if runner.Ingest != nil {
		logs = io.MultiWriter(logs, runner.Ingest)
	}
	c, err := localcloud.Start(ctx, localcloud.Options{
		Addr: f.addr, BinDir: f.bin, StackDelay: f.stackDelay, Speed: f.speed, Output: logs,
		Observer: func(e localcloud.Event) { tl.Observe(e); runner.Observe(e) },
	})
	if err != nil {
		if closer != nil {
			_ = closer.Close()
		}
		return nil, err
	}
	tl.Printf("local cloud at %s (started in %.2fs; function logs: %s)\n", c.URL, c.Uptime().Seconds(), f.logs)
	tl.Printf("deploying %s into the vendor account %s\n", filepath.Join(f.templates, ControlPlaneTemplate), localcloud.VendorAccount)
	cp, err := Deploy(ctx, c, f.templates)
	if err != nil {
		_ = c.Close()
		if closer != nil {
			_ = closer.Close()
		}
		return nil, err
	}
	for _, w := range cp.Warnings {
		tl.Printf("  warning: %s\n", w)
	}
	tl.Printf("control plane ready at %.2fs\n", tl.Since().Seconds())
	runner.Cloud, runner.ControlPlane = c, cp
	return &environment{cloud: c, cp: cp, logs: closer}, nil
}

// report prints the final deployment record and the counts.
func report(tl *Timeline, res Result) {
	if res.Deployment.ID != "" {
		record, _ := json.MarshalIndent(res.Deployment, "", "  ")
		tl.Printf("\ndeployment record:\n%s\n", record)
	}
	if len(res.CustomerStacks) > 0 {
		tl.Printf("stacks in customer account %s:\n", res.Customer)
		for name, status := range res.CustomerStacks {
			tl.Printf("  %-60s %s\n", name, status)
		}
	}
	tl.Printf("provision executions: %d; AWS calls: %d; Lambda invocations: %d; state transitions: %d\n",
		res.Executions, res.Counters.AWSCalls, res.Counters.LambdaInvocations, res.Counters.StateTransitions)
	if h := res.Health; h != nil {
		reportHealth(tl, res.Deployment.ID, h)
	}
	if t := res.Teardown; t != nil {
		tl.Printf("teardown: first delete refused (%s); terminated %s through the API; %s %s\n", t.Refusal, strings.Join(t.Terminated, ", "), t.Operation.Name, t.Operation.Status)
		tl.Printf("  customer account: byoc stacks left %d; bucket %s kept with the data; vendor side left: %d\n", len(t.CustomerStacks), t.RetainedBucket, len(t.Leftovers))
	}
	if m := res.Maintenance; m != nil {
		tl.Printf("maintenance: published %s; upgrade %s %s; notices %s\n", strings.Join(m.Releases, ", "), m.Execution, m.Status, strings.Join(m.Notices, ", "))
		if m.Window != (localcloud.Counters{}) {
			tl.Printf("  the window cost %d state transitions, %d Lambda invocations, %d AWS calls\n", m.Window.StateTransitions, m.Window.LambdaInvocations, m.Window.AWSCalls)
		}
		keys := slices.Sorted(maps.Keys(m.Versions))
		for _, k := range keys {
			if m.Versions[k] != "" {
				tl.Printf("  stack %-28s %s\n", k, m.Versions[k])
			}
		}
		for _, id := range slices.Sorted(maps.Keys(m.Services)) {
			tl.Printf("  service %-26s ClickHouse %s\n", id, m.Services[id])
		}
	}
}

// serve keeps the cloud up until interrupted, and the scenario's simulated data plane
// reporting and taking commands when there is one.
func serve(ctx context.Context, tl *Timeline, env *environment, live *livePlane) {
	c := env.cloud
	if live != nil {
		go live.run(ctx, tl, LiveStepInterval)
	}
	tl.Printf(`
The local cloud keeps running. Point the AWS CLI at it:

  export AWS_ENDPOINT_URL=%[1]s AWS_DEFAULT_REGION=%[2]s AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
  aws cloudformation describe-stacks --stack-name %[3]s
  aws stepfunctions list-executions --state-machine-arn %[4]s
  aws dynamodb scan --table-name %[5]s
  aws lambda invoke --function-name %[6]s --payload fileb://events/invite/valid.json out.json

An access key that is a 12-digit account id acts as that account's root user (a customer):

  AWS_ACCESS_KEY_ID=111122223333 aws cloudformation describe-stacks

The cloud's own controls (plain HTTP):

  curl -X POST %[1]s/_byoc/schedules/<group>/<name>/fire      # fire a schedule now
  curl -X POST %[1]s/_byoc/events/<event id>/redeliver        # deliver a vendor-bus event again
`, c.URL, c.Region, ControlPlaneStack, env.cp.Outputs[outProvisionMachine], env.cp.Outputs[outTable], env.cp.Outputs[functionOutput(contract.FunctionInvite)])
	if live != nil {
		tl.Printf(`
The simulated data plane of %[1]s keeps running%[4]s: every %[3]s its agent takes
commands and its exporter reports. Command it through the control plane's command workflow:

  aws stepfunctions start-execution --state-machine-arn %[2]s \
    --input '{"deploymentId":"%[1]s","serviceId":"%[5]s","kind":"scale","params":{"replicas":"5"}}'
`, live.id, env.cp.Outputs[OutputCommandMachine], LiveStepInterval, faultFlag(live.fault), DataPlaneServices[0])
	}
	tl.Printf("%s", byocHint(c.URL, c.Region))
	tl.Printf("\nPress Ctrl-C to stop.\n")
	<-ctx.Done()
	tl.Printf("stopping\n")
}

// byocHint is how to drive the local cloud with the byoc CLI and console: the operator API
// at the cloud's address, signed with the vendor account's root credentials (the API checks
// signatures: test/test is refused).
func byocHint(url, region string) string {
	return fmt.Sprintf(`
Operate it with the byoc CLI and console, as on AWS (the operator API checks SigV4 signatures):

  export AWS_ENDPOINT_URL=%[1]s AWS_REGION=%[2]s AWS_ACCESS_KEY_ID=%[3]s AWS_SECRET_ACCESS_KEY=%[4]s
  go run ./infra/cmd/byoc deployments list
  go run ./infra/cmd/byoc deployments get <id>
  go run ./infra/cmd/byoc services list <id>
  go run ./infra/cmd/byoc services stop <id> <service> --wait
  go run ./infra/cmd/byoc prometheus-config <id> <service>
  go run ./infra/cmd/byoc deployments delete <id> --force --wait
  go run ./infra/cmd/byoc console        # the web console on http://127.0.0.1:8765/
`, url, region, localcloud.VendorAccount, accounts.AdminSecret)
}

// invokeMain is `byoc-local invoke`: run one function on one sample event against a
// freshly deployed local control plane, as `make invoke` does.
func invokeMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var f flags
	fs := newFlagSet("byoc-local invoke", stderr, &f)
	fs.StringVar(&f.function, "function", "", "the function: "+strings.Join(contract.Functions, ", "))
	fs.StringVar(&f.event, "event", "", "a JSON file with the event (events/<function>/*.json)")
	fs.StringVar(&f.dataPlanes, "data-planes", "", "a JSON file of data planes to register first, with their command channels, as provisioning would ("+SampleDataPlanes+
		" holds the ones the service-state samples speak for; make invoke passes it for the service-state functions)")
	if code, ok := parseArgs(fs, args, stderr); !ok {
		return code
	}
	if f.function == "" || f.event == "" {
		fmt.Fprintln(stderr, "byoc-local invoke: --function and --event are required")
		return ExitUsage
	}
	payload, err := os.ReadFile(f.event)
	if err != nil {
		fmt.Fprintf(stderr, "byoc-local invoke: --event: %v\n", err)
		return ExitUsage
	}
	if len(payload) > maxEventSize || !json.Valid(payload) {
		fmt.Fprintf(stderr, "byoc-local invoke: --event %s: must be a JSON document of at most %d bytes\n", f.event, maxEventSize)
		return ExitUsage
	}
	var planes []servicestate.DataPlane
	if f.dataPlanes != "" {
		if planes, err = LoadDataPlanes(f.dataPlanes); err != nil {
			fmt.Fprintf(stderr, "byoc-local invoke: --data-planes %s: %v\n", f.dataPlanes, err)
			return ExitUsage
		}
	}
	tl := NewTimeline(stderr)
	env, err := start(ctx, f, tl, stderr, &Runner{})
	if err != nil {
		fmt.Fprintf(stderr, "byoc-local invoke: %v\n", err)
		return ExitFailed
	}
	defer env.close()
	if err := registerDataPlanes(ctx, env.cloud, env.cp, planes, tl); err != nil {
		fmt.Fprintf(stderr, "byoc-local invoke: %v\n", err)
		return ExitFailed
	}
	out, err := Invoke(ctx, env.cloud, env.cp, f.function, payload)
	if len(out) > 0 {
		fmt.Fprintf(stdout, "%s\n", out)
	}
	if err != nil {
		fmt.Fprintf(stderr, "byoc-local invoke: %v\n", err)
		return ExitFailed
	}
	return ExitOK
}

// SilenceSpeed is the cloud's clock speed --fault silence uses when --speed is not given:
// the default STATE_STALE_AFTER (5 minutes) and the sweep's one-minute schedule then pass in
// seconds.
const SilenceSpeed = 60

func faultList() string {
	names := make([]string, len(datasim.Faults))
	for i, f := range datasim.Faults {
		names[i] = string(f)
	}
	return strings.Join(names, ", ")
}

// dataPlaneFlags checks --fault and --data-plane against the scenario and sets the speed
// --fault silence needs. It returns the fault, a note about the speed it chose, and a
// usage error (empty when the flags are good).
func dataPlaneFlags(fs *flag.FlagSet, f *flags) (fault datasim.Fault, note, usage string) {
	if f.fault == "" {
		return "", "", ""
	}
	fault, err := datasim.ParseFault(f.fault)
	if err != nil {
		return "", "", fmt.Sprintf("--fault %q: must be one of %s", f.fault, faultList())
	}
	if !slices.Contains(ReadyScenarios, f.scenario) {
		return "", "", fmt.Sprintf("--fault %s: the %s scenario's deployment does not become ready, so it has no data plane (use one of %s)",
			f.fault, f.scenario, strings.Join(ReadyScenarios, ", "))
	}
	if !f.dataPlane {
		return "", "", fmt.Sprintf("--fault %s: needs the data plane (--data-plane=false turns it off)", f.fault)
	}
	speedSet := false
	fs.Visit(func(fl *flag.Flag) { speedSet = speedSet || fl.Name == "speed" })
	if fault == datasim.Silence && !speedSet {
		f.speed = SilenceSpeed
		note = fmt.Sprintf("--fault silence: the cloud's clock runs %dx (--speed %d) so that minutes of silence and the sweep's one-minute schedule pass in seconds; --speed overrides",
			SilenceSpeed, SilenceSpeed)
	}
	return fault, note, ""
}

func faultFlag(f datasim.Fault) string {
	if f == "" {
		return ""
	}
	return " --fault " + string(f)
}

// expectedNote says why a run whose data plane was faulted still succeeded.
func expectedNote(f datasim.Fault, h *HealthResult) string {
	switch f {
	case datasim.Unhealthy:
		return " (the critical alert is the expected outcome of --fault unhealthy)"
	case datasim.Silence:
		return " (the stale alerts are the expected outcome of --fault silence)"
	case datasim.Duplicate, datasim.OutOfOrder:
		dropped := ""
		if h != nil && h.Ingest != nil {
			n := h.Ingest.Duplicate
			if f == datasim.OutOfOrder {
				n = h.Ingest.OutOfOrder
			}
			dropped = fmt.Sprintf(": stateingest dropped %d, no alert, the stored state never went back", n)
		}
		return fmt.Sprintf(" (the %s messages changed nothing%s)", f, dropped)
	}
	return ""
}

// reportHealth prints what the data-plane follow-up saw.
func reportHealth(tl *Timeline, id string, h *HealthResult) {
	tl.Printf("\ndata plane of %s: %d steps, %d state messages sent in %.1fs; stored health %s\n",
		id, h.Steps, h.Sent, h.Elapsed.Seconds(), orUnknown(string(h.Final)))
	for _, s := range h.Services {
		tl.Printf("  %-14s %-10s report %s  %s\n", s.ServiceID, s.Health, s.OrderKey, s.HealthReason)
	}
	tl.Printf("health alerts on the vendor bus: %d", len(h.Transitions))
	if h.Redelivered > 0 {
		tl.Printf(" (+%d redelivered, same alert id)", h.Redelivered)
	}
	tl.Printf("\n")
	if h.Ingest != nil {
		tl.Printf("stateingest: %s\n", h.Ingest)
	}
	if c := h.Command; c != nil {
		tl.Printf("command workflow %s: apply-release %s to %s %s in %.1fs (command %s)\n",
			c.Execution, c.Release, c.ServiceID, orUnknown(c.Status), c.Elapsed.Seconds(), orUnknown(c.CommandID))
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
