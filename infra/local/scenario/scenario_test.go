package scenario

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/byocloud/byoc/infra/local/localcloud"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/store"
)

func runMain(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = Main(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelpListsScenariosAndOptions(t *testing.T) {
	code, _, stderr := runMain("--help")
	if code != ExitOK {
		t.Errorf("--help exited %d", code)
	}
	for _, want := range append(append([]string{}, Names...), "-scenario", "-speed", "-stack-delay", "-fail-resource", "-fail-reason", "-serve", "-addr", "byoc-local invoke",
		"-fault", "-data-plane", "unhealthy", "silence", "duplicate", "out-of-order", "the expected outcome") {
		if !strings.Contains(stderr, want) {
			t.Errorf("--help does not mention %q:\n%s", want, stderr)
		}
	}
	code, _, stderr = runMain("invoke", "--help")
	if code != ExitOK || !strings.Contains(stderr, "-data-planes") || !strings.Contains(stderr, SampleDataPlanes) {
		t.Errorf("invoke --help exited %d without -data-planes and %s:\n%s", code, SampleDataPlanes, stderr)
	}
}

func TestBadFlagsAreRefusedBeforeAnythingStarts(t *testing.T) {
	dir := t.TempDir()
	notJSON := filepath.Join(dir, "event.json")
	if err := os.WriteFile(notJSON, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	sample := filepath.Join("..", "..", "..", "events", "state", "healthy.json")
	badPlanes := filepath.Join(dir, "bad-planes.json")
	if err := os.WriteFile(badPlanes, []byte(`[{"deploymentId":"dep1","accountId":"12"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--scenario", "sideways"}, `--scenario "sideways": must be one of onboard, infra-fails, rollback-retry, wrong-external-id, duplicate-event, malformed-event`},
		{[]string{"--scenario", "none"}, `--scenario "none": must be one of`},
		{[]string{"--speed", "0"}, "--speed 0: must be positive"},
		{[]string{"--stack-delay", "-1s"}, "--stack-delay -1s: must not be negative"},
		{[]string{"--customer", "12345"}, `--customer "12345": must be a 12-digit account id`},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--fault", "sideways"}, `--fault "sideways": must be one of unhealthy, silence, duplicate, out-of-order`},
		{[]string{"--fault", "Unhealthy"}, `--fault "Unhealthy": must be one of`},
		{[]string{"--fault", "unhealthy", "--scenario", "infra-fails"}, "--fault unhealthy: the infra-fails scenario's deployment does not become ready"},
		{[]string{"--fault", "silence", "--scenario", "malformed-event"}, "--fault silence: the malformed-event scenario's deployment does not become ready"},
		{[]string{"--fault", "duplicate", "--data-plane=false"}, "--fault duplicate: needs the data plane"},
		{[]string{"--no-such-flag"}, "flag provided but not defined: -no-such-flag"},
		{[]string{"invoke", "--event", notJSON}, "--function and --event are required"},
		{[]string{"invoke", "--function", "invite", "--event", filepath.Join(dir, "missing.json")}, "--event: open"},
		{[]string{"invoke", "--function", "invite", "--event", notJSON}, "must be a JSON document"},
		{[]string{"invoke", "--function", "stateingest", "--event", sample, "--data-planes", filepath.Join(dir, "missing.json")}, "--data-planes " + filepath.Join(dir, "missing.json") + ": open"},
		{[]string{"invoke", "--function", "stateingest", "--event", sample, "--data-planes", notJSON}, "must be a JSON array of data planes"},
		{[]string{"invoke", "--function", "stateingest", "--event", sample, "--data-planes", badPlanes}, "data plane 1: data plane of \"dep1\": accountId: must be 12 digits"},
	}
	for _, c := range cases {
		code, stdout, stderr := runMain(c.args...)
		if code != ExitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, stderr, ExitUsage, c.want)
		}
		if strings.Contains(stdout+stderr, "local cloud at") {
			t.Errorf("%v: a local cloud was started for a refused command line", c.args)
		}
	}
}

func TestTimelineLines(t *testing.T) {
	var out bytes.Buffer
	tl := NewTimeline(&out, localcloud.KindState)
	at := tl.start.Add(1500 * time.Millisecond)
	tl.Observe(localcloud.Event{At: at, Kind: localcloud.KindStack, Account: "111122223333", Subject: "clickhouse-byoc-bootstrap", Status: "CREATE_COMPLETE"})
	tl.Observe(localcloud.Event{At: at, Kind: localcloud.KindInvoke, Subject: "onboard", Status: "failed", Detail: "MalformedError: bad", Failed: true})
	tl.Observe(localcloud.Event{At: at, Kind: localcloud.KindState, Subject: "hidden"})
	want := "   1.500s   stack    clickhouse-byoc-bootstrap  CREATE_COMPLETE  [111122223333]\n" +
		"   1.500s ! function onboard  failed  MalformedError: bad\n"
	if out.String() != want {
		t.Errorf("timeline:\n%q\nwant\n%q", out.String(), want)
	}
}

func TestOutcomeChecks(t *testing.T) {
	ready := store.Deployment{ID: "d1", Status: lifecycle.Ready, ProvisionAttempts: 1}
	failed := func(resource, reason string) store.Deployment {
		return store.Deployment{ID: "d1", Status: lifecycle.Failed, Failure: &store.Failure{Resource: resource, Reason: reason}}
	}
	cases := []struct {
		name string
		o    Options
		res  Result
		want string // "" when the outcome is the expected one
	}{
		{"ready once", Options{Scenario: Onboard}, Result{Deployment: ready, Executions: 1}, ""},
		{"two workflows", Options{Scenario: DuplicateEvent}, Result{Deployment: ready, Executions: 2}, "got 2 provision executions, want 1"},
		{"not ready", Options{Scenario: Onboard}, Result{Deployment: failed("x", "boom"), Executions: 1}, `is "failed", want ready (failure: boom)`},
		{"ready without a retry", Options{Scenario: RollbackRetry}, Result{Deployment: ready, Executions: 1}, "should have been recreated"},
		{"failed as injected", Options{Scenario: InfraFails, FailResource: "Cluster", FailReason: "no capacity"},
			Result{Deployment: failed("Cluster (AWS::EKS::Cluster)", "handler: no capacity")}, ""},
		{"failed elsewhere", Options{Scenario: InfraFails, FailResource: "Cluster", FailReason: "no capacity"},
			Result{Deployment: failed("ClusterRole (AWS::IAM::Role)", "handler: no capacity")}, "want failed with Cluster's reason recorded"},
		{"access denied", Options{Scenario: WrongExternalID},
			Result{Deployment: failed("", "AccessDenied: not authorized"), CustomerStacks: map[string]string{contract.BootstrapStackName: "CREATE_COMPLETE"}}, ""},
		{"something created", Options{Scenario: WrongExternalID},
			Result{Deployment: failed("", "AccessDenied"), CustomerStacks: map[string]string{contract.BootstrapStackName: "CREATE_COMPLETE", "infra": "CREATE_COMPLETE"}}, "stack infra exists in the customer account"},
	}
	for _, c := range cases {
		err := check(c.o, c.res)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
}

func TestRandomAccountIsATwelveDigitID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		a := RandomAccount()
		if !isAccount(a) || a[0] == '0' {
			t.Fatalf("RandomAccount() = %q", a)
		}
		seen[a] = true
	}
	if len(seen) < 95 {
		t.Errorf("only %d distinct accounts in 100", len(seen))
	}
}

func TestFunctionNamesComeFromTheControlPlaneOutputs(t *testing.T) {
	cp := ControlPlane{Outputs: map[string]string{"InviteFunctionName": "ByocControlPlane-Invite-X"}}
	if n, err := cp.FunctionName(contract.FunctionInvite); err != nil || n != "ByocControlPlane-Invite-X" {
		t.Errorf("FunctionName(invite) = %q, %v", n, err)
	}
	if _, err := cp.FunctionName("nope"); err == nil || !strings.Contains(err.Error(), `no function "nope"`) {
		t.Errorf("unknown function: %v", err)
	}
}

// LoadDataPlanes refuses a file that is not a list of valid, distinct data planes, naming
// the record and the rule; the sample file (events/dataplanes.json) loads.
func TestLoadDataPlanes(t *testing.T) {
	planes, err := LoadDataPlanes(filepath.Join("..", "..", "..", SampleDataPlanes))
	if err != nil || len(planes) != 2 || planes[0].DeploymentID != "dep7f3a" || planes[1].ExporterRoleID != "AROA3XFRBF23STATEXP9C" {
		t.Fatalf("the sample data planes: %+v %v", planes, err)
	}
	good := `{"deploymentId":"dep1","accountId":"111111111111","exporterRoleArn":"arn:aws:iam::111111111111:role/x-state-exporter",` +
		`"exporterRoleId":"AROAAAAAAAAAAAAAAAAAA","agentRoleArn":"arn:aws:iam::111111111111:role/x-agent"}`
	dir := t.TempDir()
	for _, c := range []struct{ body, want string }{
		{`{}`, "must be a JSON array of data planes"},
		{`[]`, "holds no data plane"},
		{`[` + strings.Replace(good, `"accountId"`, `"account"`, 1) + `]`, `unknown field "account"`},
		{`[` + good + `,` + strings.Replace(good, `"AROAAAAAAAAAAAAAAAAAA"`, `"aroa-lower"`, 1) + `]`, "data plane 2: "},
		{`[` + good + `,` + good + `]`, `data plane 2: deployment "dep1" is listed twice`},
		{`[` + strings.Replace(good, "role/x-agent", "user/x", 1) + `]`, "agentRoleArn: must be an IAM role ARN"},
	} {
		path := filepath.Join(dir, "planes.json")
		if err := os.WriteFile(path, []byte(c.body), 0o644); err != nil {
			t.Fatal(err)
		}
		if planes, err := LoadDataPlanes(path); err == nil || !strings.Contains(err.Error(), c.want) || planes != nil {
			t.Errorf("%s: %v %v, want an error saying %q", c.body, planes, err, c.want)
		}
	}
}
