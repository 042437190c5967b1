package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/byocloud/byoc/infra/local/frontdoor"
	"github.com/byocloud/byoc/infra/local/localcloud"
	"github.com/byocloud/byoc/infra/local/scenario"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/servicestate"
)

// Without the forwarding rule of the bootstrap template, CloudFormation's events stay in the
// customer's account: nothing reaches the vendor, and onboarding waits, as it would on AWS.
func TestWithoutTheForwardingRuleOnboardingStalls(t *testing.T) {
	rec := shared.record(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body, err := os.ReadFile(filepath.Join(templatesDir, scenario.BootstrapTemplate))
	if err != nil {
		t.Fatal(err)
	}
	var tmpl map[string]any
	if err := json.Unmarshal(body, &tmpl); err != nil {
		t.Fatal(err)
	}
	resources := tmpl["Resources"].(map[string]any)
	removed := 0
	for id, r := range resources {
		if r.(map[string]any)["Type"] == "AWS::Events::Rule" {
			delete(resources, id)
			removed++
		}
	}
	if removed != 1 {
		t.Fatalf("the bootstrap template has %d event rules, want its one forwarding rule", removed)
	}
	edited, _ := json.Marshal(tmpl)

	customer := scenario.RandomAccount()
	inv, err := shared.runner.Invite(ctx, customer)
	if err != nil {
		t.Fatal(err)
	}
	if err := shared.runner.ApplyBootstrap(ctx, customer, inv, inv.Parameters, edited); err != nil {
		t.Fatal(err)
	}
	cfn := cloudformation.NewFromConfig(shared.cloud.ConfigAs(customer))
	for {
		out, err := cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(inv.StackName)})
		if err == nil && out.Stacks[0].StackStatus == "CREATE_COMPLETE" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the bootstrap stack did not complete: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // what would have arrived has had ample time
	for _, e := range rec.all() {
		if e.Kind == localcloud.KindEvent && e.Account == customer {
			t.Errorf("an event reached the vendor bus without a forwarding rule: %s", e)
		}
	}
	res := shared.runner.Result(ctx, customer, inv.DeploymentID)
	if res.Deployment.Status != lifecycle.Invited || res.Executions != 0 {
		t.Errorf("deployment is %q with %d executions: onboarding must wait for the event", res.Deployment.Status, res.Executions)
	}
}

func TestSecondCloudOnABusyPortFailsNamingIt(t *testing.T) {
	addr := strings.TrimPrefix(shared.cloud.URL, "http://")
	_, port, _ := net.SplitHostPort(addr)
	began := time.Now()
	second, err := localcloud.Start(context.Background(), localcloud.Options{Addr: addr, BinDir: binDir, Output: shared.logs})
	if err == nil {
		_ = second.Close()
		t.Fatal("a second cloud on the same address must not start")
	}
	if !errors.Is(err, frontdoor.ErrAddrInUse) || !strings.Contains(err.Error(), "port "+port+" is already in use") {
		t.Errorf("error = %v, want it to name port %s", err, port)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("refusing took %s: the port is checked before anything starts", d)
	}
	// The running cloud is untouched.
	if _, err := cloudformation.NewFromConfig(shared.cloud.Config()).DescribeStacks(context.Background(),
		&cloudformation.DescribeStacksInput{StackName: aws.String(scenario.ControlPlaneStack)}); err != nil {
		t.Errorf("the first cloud stopped answering: %v", err)
	}
}

// byocLocal builds the command once.
func byocLocal(t *testing.T) string {
	t.Helper()
	path := filepath.Join(toolsDir, "byoc-local")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	cmd := exec.Command("go", "build", "-o", path, "./infra/local/cmd/byoc-local")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build byoc-local: %v\n%s", err, out)
	}
	return path
}

// The command is what `make local` runs: its own process, its own cloud, exit code and output.
func TestByocLocalCommand(t *testing.T) {
	bin := byocLocal(t)
	logs := filepath.Join(t.TempDir(), "functions.log")
	run := func(args ...string) (string, int) {
		cmd := exec.Command(bin, append([]string{"--addr", "127.0.0.1:0", "--templates", templatesDir, "--bin", binDir, "--logs", logs}, args...)...)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return string(out), exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}

	out, code := run("--stack-delay", "0")
	if code != 0 {
		t.Fatalf("make local's scenario exited %d:\n%s", code, out)
	}
	for _, want := range []string{
		"local cloud at http://127.0.0.1:", "control plane ready",
		"function invite  ok", "clickhouse-byoc-bootstrap  CREATE_COMPLETE", "to onboard",
		"workflow ProvisionWorkflow-", "SUCCEEDED", `"status": "ready"`, "scenario onboard: ok",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if b, err := os.ReadFile(logs); err != nil || !strings.Contains(string(b), "[invite] ") || !strings.Contains(string(b), `"msg":"invited"`) {
		t.Errorf("function logs must be written, prefixed with the function's name: %v\n%.500s", err, b)
	}

	out, code = run("--scenario", "onboard", "--timeout", "1ms")
	if code != scenario.ExitFailed || !strings.Contains(out, "scenario onboard failed:") {
		t.Errorf("a scenario that does not finish must exit %d with its reason; got %d:\n%s", scenario.ExitFailed, code, out)
	}
	out, code = run("--templates", filepath.Join(t.TempDir(), "nothing"))
	if code != scenario.ExitFailed || !strings.Contains(out, "run `make synth`") {
		t.Errorf("missing templates: exit %d:\n%s", code, out)
	}
	out, code = run("--scenario", "sideways")
	if code != scenario.ExitUsage || !strings.Contains(out, `--scenario "sideways": must be one of onboard, infra-fails, rollback-retry, wrong-external-id, duplicate-event, malformed-event`) {
		t.Errorf("bad scenario: exit %d:\n%s", code, out)
	}
}

func TestInvokeCommandRunsOneFunctionOnASampleEvent(t *testing.T) {
	bin := byocLocal(t)
	run := func(fn, event string, extra ...string) (string, int) {
		cmd := exec.Command(bin, append([]string{"invoke", "--function", fn, "--event", filepath.Join(repoRoot, "events", event),
			"--addr", "127.0.0.1:0", "--templates", templatesDir, "--bin", binDir, "--logs", filepath.Join(t.TempDir(), "f.log")}, extra...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return string(out) + stderr.String(), exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out) + stderr.String(), 0
	}
	out, code := run(contract.FunctionInvite, "invite/valid.json")
	if code != 0 || !strings.Contains(out, `"deploymentId"`) || !strings.Contains(out, `"externalId"`) {
		t.Errorf("invite on a valid event: exit %d:\n%s", code, out)
	}
	out, code = run(contract.FunctionInvite, "invite/bad-cidr.json")
	if code != scenario.ExitFailed || !strings.Contains(out, "ValidationError") {
		t.Errorf("invite on a bad event: exit %d, want %d with the function's ValidationError:\n%s", code, scenario.ExitFailed, out)
	}
	// The state samples pass sender verification once their data planes are registered
	// (what `make invoke` does for the service-state functions), and a forged sender fails.
	planes := filepath.Join(repoRoot, scenario.SampleDataPlanes)
	out, code = run(contract.FunctionStateIngest, "state/healthy.json", "--data-planes", planes)
	if code != 0 || !strings.Contains(out, "registered data plane dep7f3a") || !strings.Contains(out, `{"batchItemFailures":null}`) {
		t.Errorf("stateingest on healthy.json: exit %d, want every record accepted:\n%s", code, out)
	}
	out, code = run(contract.FunctionStateIngest, "state/forged-sender.json", "--data-planes", planes)
	if code != 0 || !strings.Contains(out, `{"batchItemFailures":[{"itemIdentifier":"5e0c6a2f-1b7d-4c39-9a8e-000000000130"}]}`) {
		t.Errorf("stateingest on forged-sender.json: exit %d, want its one record failed:\n%s", code, out)
	}
	// Registering a sample data plane opens its command channel, so a command reaches it.
	out, code = run(contract.FunctionSendCommand, "sendcommand/apply-release.json", "--data-planes", planes)
	if code != 0 || !strings.Contains(out, "opened its command channel") || !strings.Contains(out, `"status":"sent"`) {
		t.Errorf("sendcommand on apply-release.json: exit %d, want the command sent:\n%s", code, out)
	}
	out, code = run(contract.FunctionSendCommand, "sendcommand/unknown-kind.json", "--data-planes", planes)
	if code != scenario.ExitFailed || !strings.Contains(out, "InvalidRequestError") || !strings.Contains(out, "kind: must be one of") {
		t.Errorf("sendcommand on unknown-kind.json: exit %d, want %d with the function's InvalidRequestError:\n%s", code, scenario.ExitFailed, out)
	}
}

// `byoc-local --serve` keeps the scenario's simulated data plane running: an operator's
// command through the command workflow, sent with the AWS SDK as the printed hint says,
// is applied by the agent and acknowledged, and Ctrl-C stops it all.
func TestServeKeepsTheDataPlaneTakingCommands(t *testing.T) {
	cmd := exec.Command(byocLocal(t), "--serve", "--stack-delay", "0", "--addr", "127.0.0.1:0", "--templates", templatesDir, "--bin", binDir,
		"--logs", filepath.Join(t.TempDir(), "functions.log"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	// Read the output until the hint is complete (handed over whole), then keep draining it.
	var out strings.Builder
	ready := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		scan := bufio.NewScanner(stdout)
		for scan.Scan() {
			out.WriteString(scan.Text() + "\n")
			if strings.Contains(scan.Text(), "Press Ctrl-C to stop.") {
				ready <- out.String()
			}
		}
	}()
	var hint string
	select {
	case hint = <-ready:
	case <-done:
		t.Fatalf("byoc-local --serve ended:\n%s", out.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("byoc-local --serve printed no hint within 60 s")
	}
	endpoint := regexp.MustCompile(`AWS_ENDPOINT_URL=(\S+)`).FindStringSubmatch(hint)
	command := regexp.MustCompile(`--state-machine-arn (\S+) \\\n\s+--input '(.+)'`).FindStringSubmatch(hint)
	if endpoint == nil || command == nil || !strings.Contains(hint, "keeps running") {
		t.Fatalf("the hint names no endpoint or command workflow:\n%s", hint)
	}
	states := sfn.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(endpoint[1]),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	ctx := context.Background()
	started, err := states.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(command[1]), Input: aws.String(command[2])})
	if err != nil {
		t.Fatalf("start the command workflow as the hint says: %v", err)
	}
	var desc *sfn.DescribeExecutionOutput
	until(t, 60*time.Second, "the command workflow to end", func() (bool, string) {
		if desc, err = states.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: started.ExecutionArn}); err != nil {
			t.Fatal(err)
		}
		return desc.Status != sfntypes.ExecutionStatusRunning, string(desc.Status)
	})
	var result struct {
		State servicestate.WaitOutput `json:"state"`
	}
	if desc.Status != sfntypes.ExecutionStatusSucceeded || json.Unmarshal([]byte(aws.ToString(desc.Output)), &result) != nil || result.State.Replicas.Ready != 5 {
		t.Errorf("command workflow %s (%s %s), output %s: want it succeeded with 5 ready replicas", desc.Status, aws.ToString(desc.Error), aws.ToString(desc.Cause), aws.ToString(desc.Output))
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if err := cmd.Wait(); err != nil {
		t.Errorf("byoc-local --serve after Ctrl-C: %v", err)
	}
	<-done
}
