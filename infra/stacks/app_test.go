package stacks

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/jsii-runtime-go"

	"github.com/byocloud/byoc/infra/workflows"
	"github.com/byocloud/byoc/shared/contract"
)

func TestNoUnsuppressedNagFindings(t *testing.T) {
	for name, build := range map[string]*synthesized{"default": defaultBuild, "tracing": tracingBuild} {
		for _, stack := range []string{ControlPlaneStackID, BootstrapStackID, InfrastructureStackID} {
			for _, m := range build.messages[stack] {
				if strings.Contains(m.text, "AwsSolutions-") && (m.level == "error" || m.level == "warning") {
					t.Errorf("%s %s: %s %s: %s", name, stack, m.level, m.path, m.text)
				}
			}
		}
	}
}

// TestNagReportsFindingsAsErrors proves the check above can fail: the same nag wiring on a
// stack with a known violation (a queue without TLS enforcement) yields an error annotation.
func TestNagReportsFindingsAsErrors(t *testing.T) {
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	stack := awscdk.NewStack(app, jsii.String("Violating"), nil)
	awssqs.NewQueue(stack, jsii.String("PlainQueue"), &awssqs.QueueProps{})
	applyNag(stack)
	messages := app.Synth(nil).GetStackByName(jsii.String("Violating")).Messages()
	var found bool
	for _, m := range *messages {
		found = found || (strings.EqualFold(fmt.Sprint(m.Level), "error") && strings.Contains(*m.Id, "PlainQueue") && strings.Contains(toJSON(m.Entry.Data), "AwsSolutions-SQS4"))
	}
	if !found {
		t.Errorf("nag did not report AwsSolutions-SQS4 on a queue without TLS enforcement as an error")
	}
}

// TestEveryWildcardHasAWrittenReason holds every Allow statement of every template to the
// rule: no wildcard principal, and a wildcard action or resource only in a statement whose
// Sid names its reason in wildcardReasons. Every reason must still be in use.
func TestEveryWildcardHasAWrittenReason(t *testing.T) {
	used := map[string]bool{}
	for name, build := range map[string]*synthesized{"default": defaultBuild, "tracing": tracingBuild} {
		for _, stack := range []string{ControlPlaneStackID, BootstrapStackID, InfrastructureStackID, PeerAccessStackID, PeeringStackID, PrivateLinkStackID} {
			for _, st := range build.policyStatements(stack) {
				if st.body["Effect"] != "Allow" {
					continue
				}
				where := name + " " + stack + " " + st.resource
				if strings.Contains(toJSON(st.body["Principal"]), `"*"`) {
					t.Errorf("%s allows principal *", where)
				}
				var wildcard bool
				for _, v := range append(actionsOf(st.body), resourcesOf(st.body, nil)...) {
					wildcard = wildcard || strings.Contains(v, "*")
				}
				if !wildcard {
					continue
				}
				sid, _ := st.body["Sid"].(string)
				if reason := wildcardReasons[sid]; reason == "" {
					t.Errorf("%s: statement %s on %v has a wildcard and no written reason (Sid %q not in wildcardReasons)",
						where, toJSON(st.body["Action"]), resourcesOf(st.body, nil), sid)
				}
				used[sid] = true
			}
		}
	}
	for sid := range wildcardReasons {
		if !used[sid] {
			t.Errorf("wildcardReasons[%q] explains a statement no template has", sid)
		}
	}
}

// TestSidsAreUniqueWithinAPolicy: IAM rejects a policy document with duplicate Sids.
func TestSidsAreUniqueWithinAPolicy(t *testing.T) {
	for _, stack := range []string{ControlPlaneStackID, BootstrapStackID, InfrastructureStackID} {
		seen := map[string]bool{}
		for _, st := range tracingBuild.policyStatements(stack) {
			sid, _ := st.body["Sid"].(string)
			key := st.resource + "/" + sid
			if sid != "" && seen[key] {
				t.Errorf("%s %s has Sid %s twice", stack, st.resource, sid)
			}
			seen[key] = true
		}
	}
}

func TestProvisionBundleIsStagedInTheOutdir(t *testing.T) {
	bundle := defaultBuild.app.ProvisionBundle
	if want := filepath.Join(defaultBuild.outdir, ".bundles", contract.FunctionProvision); bundle != want {
		t.Errorf("bundle dir = %s, want %s", bundle, want)
	}
	entries, err := os.ReadDir(bundle)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"bootstrap", contract.InfraTemplateFile}; !slices.Equal(names, want) {
		t.Errorf("bundle holds %v, want %v", names, want)
	}
	info, err := os.Stat(filepath.Join(bundle, "bootstrap"))
	if err != nil || info.Mode().Perm()&0o111 == 0 {
		t.Errorf("bundled bootstrap is not executable: %v %v", info, err)
	}
}

func TestConfigValidateRejectsBadInput(t *testing.T) {
	root := t.TempDir()
	buildDir, err := fakeBuildDir(root)
	if err != nil {
		t.Fatal(err)
	}
	valid := Config{BuildDir: buildDir, ProvisionDefinition: workflows.Provision}
	if err := valid.Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	partial := filepath.Join(root, "partial")
	if err := os.MkdirAll(filepath.Join(partial, contract.FunctionInvite), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(partial, contract.FunctionInvite, "bootstrap"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		change func(*Config)
		want   []string // every one must appear in the error
	}{
		{"no binaries", func(c *Config) { c.BuildDir = filepath.Join(root, "nothing") }, []string{"make build", filepath.Join(root, "nothing", "invite", "bootstrap")}},
		{"some binaries", func(c *Config) { c.BuildDir = partial }, []string{"make build", filepath.Join(partial, "provision", "bootstrap")}},
		{"http template URL", func(c *Config) { c.BootstrapTemplateURL = "http://example.com/t.json" }, []string{ContextBootstrapTemplateURL, "https://"}},
		{"template URL without host", func(c *Config) { c.BootstrapTemplateURL = "https:///t.json" }, []string{ContextBootstrapTemplateURL, "https://"}},
		{"bad region", func(c *Config) { c.SupportedRegions = "us-east-1,mars" }, []string{ContextSupportedRegions, `"mars"`, "region name"}},
		{"empty definition", func(c *Config) { c.ProvisionDefinition = " " }, []string{"ProvisionDefinition", "empty"}},
		{"definition without placeholder", func(c *Config) { c.ProvisionDefinition = `{"StartAt":"A","States":{"A":{"Type":"Succeed"}}}` },
			[]string{"ProvisionDefinition", "placeholders are []", workflows.ProvisionFunctionArn}},
		{"definition with unknown placeholder", func(c *Config) { c.ProvisionDefinition = workflows.Provision + "${OtherArn}" },
			[]string{"ProvisionDefinition", "OtherArn"}},
		{"stale-after not a duration", func(c *Config) { c.StateStaleAfter = "five minutes" }, []string{ContextStateStaleAfter, `"five minutes"`, "between 1m and 24h"}},
		{"stale-after below the sweep's resolution", func(c *Config) { c.StateStaleAfter = "30s" }, []string{ContextStateStaleAfter, `"30s"`, "between 1m and 24h"}},
		{"stale-after over a day", func(c *Config) { c.StateStaleAfter = "25h" }, []string{ContextStateStaleAfter, `"25h"`, "between 1m and 24h"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := valid
			c.change(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestBuildChangesNothingWhenTheConfigIsWrong: no stack, no bundle, no file in the outdir.
func TestBuildChangesNothingWhenTheConfigIsWrong(t *testing.T) {
	outdir := t.TempDir()
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(outdir)})
	_, err := Build(app, Config{BuildDir: filepath.Join(outdir, "missing"), ProvisionDefinition: workflows.Provision})
	if err == nil || !strings.Contains(err.Error(), "make build") {
		t.Fatalf("Build with no binaries: err = %v, want one saying to run make build", err)
	}
	if n := len(*app.Node().Children()); n != 0 {
		t.Errorf("app has %d constructs after a refused build", n)
	}
	entries, _ := os.ReadDir(outdir)
	if len(entries) != 0 {
		t.Errorf("outdir holds %v after a refused build", entries)
	}
}

func TestConfigFromContext(t *testing.T) {
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir()), Context: &map[string]any{
		ContextBuildDir: "out/bin", ContextBootstrapTemplateURL: "https://t.example/b.json",
		ContextSupportedRegions: "eu-west-1", ContextXRayTracing: true, ContextStateStaleAfter: "10m",
	}})
	cfg, err := ConfigFromContext(app)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{BuildDir: "out/bin", BootstrapTemplateURL: "https://t.example/b.json", SupportedRegions: "eu-west-1",
		Tracing: true, ProvisionDefinition: workflows.Provision, StateStaleAfter: "10m"}
	if cfg != want {
		t.Errorf("config = %+v, want %+v", cfg, want)
	}

	defaults, err := ConfigFromContext(awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())}))
	if err != nil || defaults.BuildDir != "build" || defaults.Tracing || defaults.BootstrapTemplateURL != "" {
		t.Errorf("default config = %+v, %v", defaults, err)
	}

	bad := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir()), Context: &map[string]any{ContextXRayTracing: "sometimes"}})
	if _, err := ConfigFromContext(bad); err == nil || !strings.Contains(err.Error(), ContextXRayTracing) || !strings.Contains(err.Error(), "true or false") {
		t.Errorf("xrayTracing=sometimes: err = %v, want one naming the key and the rule", err)
	}
}

// TestNewAppWithoutTheCLI: `go run ./infra` writes to cdk.out and reads cdk.json's context;
// under the CLI (CDK_CONTEXT_JSON set) cdk.json is the CLI's business.
func TestNewAppWithoutTheCLI(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("CDK_OUTDIR", "")
	t.Setenv("CDK_CONTEXT_JSON", "")
	if err := os.WriteFile("cdk.json", []byte(`{"app":"go run ./infra","context":{"buildDir":"from-cdk-json"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	app, err := NewApp()
	if err != nil {
		t.Fatal(err)
	}
	if got := *app.Outdir(); filepath.Base(got) != "cdk.out" {
		t.Errorf("outdir = %s, want cdk.out", got)
	}
	if got := app.Node().TryGetContext(jsii.String(ContextBuildDir)); got != "from-cdk-json" {
		t.Errorf("buildDir context = %v, want the value from cdk.json", got)
	}

	if err := os.WriteFile("cdk.json", []byte(`{"context":`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewApp(); err == nil || !strings.Contains(err.Error(), "cdk.json") {
		t.Errorf("malformed cdk.json: err = %v, want one naming the file", err)
	}
	t.Setenv("CDK_CONTEXT_JSON", `{"buildDir":"from-cli"}`)
	app, err = NewApp()
	if err != nil {
		t.Fatalf("under the CLI cdk.json must not be read: %v", err)
	}
	if got := app.Node().TryGetContext(jsii.String(ContextBuildDir)); got != "from-cli" {
		t.Errorf("buildDir context = %v, want the CLI's", got)
	}
}

func TestCompactTemplate(t *testing.T) {
	raw := []byte(`{
	  "Conditions": {"CDKMetadataAvailable": {"Fn::Equals": ["a", "a"]}, "IsProd": {"Fn::Equals": ["b", "b"]}},
	  "Resources": {
	    "CDKMetadata": {"Type": "AWS::CDK::Metadata"},
	    "Queue": {"Type": "AWS::SQS::Queue", "Metadata": {"aws:cdk:path": "S/Queue", "cdk_nag": {}}, "Properties": {"QueueName": "a<b"}}
	  }
	}`)
	got, err := CompactTemplate(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"Conditions":{"IsProd":{"Fn::Equals":["b","b"]}},"Resources":{"Queue":{"Properties":{"QueueName":"a<b"},"Type":"AWS::SQS::Queue"}}}`
	if string(got) != want {
		t.Errorf("compact = %s\nwant      %s", got, want)
	}
	onlyCDK, err := CompactTemplate([]byte(`{"Conditions":{"CDKMetadataAvailable":{}},"Resources":{}}`))
	if err != nil || string(onlyCDK) != `{"Resources":{}}` {
		t.Errorf("compact = %s, %v: an emptied Conditions section must go", onlyCDK, err)
	}

	for name, bad := range map[string]string{"not JSON": `{"Resources":`, "no Resources": `{"Outputs":{}}`, "Resources not an object": `{"Resources":[]}`} {
		if _, err := CompactTemplate([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if name != "not JSON" && !strings.Contains(err.Error(), "Resources") {
			t.Errorf("%s: error %q does not name Resources", name, err)
		}
	}
}

func TestCheckTemplateBodySize(t *testing.T) {
	if err := CheckTemplateBodySize(make([]byte, TemplateBodyLimit)); err != nil {
		t.Errorf("a template of exactly the limit was refused: %v", err)
	}
	err := CheckTemplateBodySize(make([]byte, TemplateBodyLimit+1))
	if err == nil || !strings.Contains(err.Error(), "51201 bytes") || !strings.Contains(err.Error(), "51200") {
		t.Errorf("over the limit: err = %v, want one with the size and the limit", err)
	}
}

func TestStageProvisionBundle(t *testing.T) {
	root := t.TempDir()
	bootstrap := filepath.Join(root, "bootstrap")
	if err := os.WriteFile(bootstrap, []byte("binary"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "bundle")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "stale.json"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := stageProvisionBundle(dir, bootstrap, []byte(`{"Resources":{}}`)); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if want := []string{"bootstrap", contract.InfraTemplateFile}; !slices.Equal(names, want) {
		t.Errorf("bundle = %v, want %v (stale files removed)", names, want)
	}
	if info, _ := os.Stat(filepath.Join(dir, "bootstrap")); info.Mode().Perm() != 0o755 {
		t.Errorf("bootstrap mode = %v, want 0755 (Lambda executes it)", info.Mode().Perm())
	}
	if got := readFile(t, filepath.Join(dir, contract.InfraTemplateFile)); string(got) != `{"Resources":{}}` {
		t.Errorf("template = %s", got)
	}

	err := stageProvisionBundle(filepath.Join(root, "other"), filepath.Join(root, "missing"), []byte(`{}`))
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing bootstrap: err = %v, want one naming the file", err)
	}
}
