package stacks

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/byocloud/byoc/infra/workflows"
	"github.com/byocloud/byoc/shared/contract"
)

// Synthesizing through jsii costs seconds, so each configuration is built once per test
// binary and every test reads the result.
var (
	defaultBuild *synthesized // context defaults (no tracing)
	tracingBuild *synthesized // xrayTracing=true, supportedRegions and stateStaleAfter set
)

// synthesized is one app built and synthesized into a temporary cdk.out.
type synthesized struct {
	app       *App
	outdir    string
	templates map[string]map[string]any // by stack id, as written to cdk.out
	messages  map[string][]message      // synthesis annotations by stack id
}

type message struct{ level, path, text string }

func TestMain(m *testing.M) {
	code := func() int {
		defer jsii.Close()
		root, err := os.MkdirTemp("", "byoc-stacks-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(root)
		if defaultBuild, err = synthesize(root, "default", Config{}); err != nil {
			fmt.Fprintln(os.Stderr, "synthesize default app:", err)
			return 1
		}
		if tracingBuild, err = synthesize(root, "tracing", Config{Tracing: true, SupportedRegions: "us-east-1,eu-west-1", StateStaleAfter: "10m"}); err != nil {
			fmt.Fprintln(os.Stderr, "synthesize tracing app:", err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// fakeBuildDir makes a build directory with a placeholder bootstrap per function: the CDK only
// packages the directory, it never runs the binary.
func fakeBuildDir(root string) (string, error) {
	dir := filepath.Join(root, "build")
	for _, fn := range contract.Functions {
		if err := os.MkdirAll(filepath.Join(dir, fn), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, fn, "bootstrap"), []byte("fake "+fn+" binary"), 0o755); err != nil {
			return "", err
		}
	}
	return dir, nil
}

func synthesize(root, name string, cfg Config) (*synthesized, error) {
	buildDir, err := fakeBuildDir(filepath.Join(root, name))
	if err != nil {
		return nil, err
	}
	cfg.BuildDir = buildDir
	if cfg.ProvisionDefinition == "" {
		cfg.ProvisionDefinition = workflows.Provision
	}
	outdir := filepath.Join(root, name, "cdk.out")
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(outdir)})
	built, err := Build(app, cfg)
	if err != nil {
		return nil, err
	}
	assembly := app.Synth(nil)
	s := &synthesized{app: built, outdir: outdir, templates: map[string]map[string]any{}, messages: map[string][]message{}}
	for _, id := range []string{ControlPlaneStackID, BootstrapStackID, InfrastructureStackID, PeeringStackID, PrivateLinkStackID, PeerAccessStackID} {
		artifact := assembly.GetStackByName(jsii.String(id))
		raw, err := os.ReadFile(*artifact.TemplateFullPath())
		if err != nil {
			return nil, err
		}
		var template map[string]any
		if err := json.Unmarshal(raw, &template); err != nil {
			return nil, err
		}
		s.templates[id] = template
		for _, m := range *artifact.Messages() {
			s.messages[id] = append(s.messages[id], message{level: strings.ToLower(fmt.Sprint(m.Level)), path: *m.Id, text: fmt.Sprint(m.Entry.Data)})
		}
	}
	return s, nil
}

// template wraps a synthesized template for the CDK's assertions.
func (s *synthesized) template(stackID string) assertions.Template {
	t := s.templates[stackID]
	return assertions.Template_FromJSON(&t, nil)
}

// resources returns the resources of one type, by logical id.
func (s *synthesized) resources(stackID, typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range s.templates[stackID]["Resources"].(map[string]any) {
		if res := r.(map[string]any); res["Type"] == typ {
			out[id] = res
		}
	}
	return out
}

// resource returns the one resource with the logical id, failing the test if absent.
func (s *synthesized) resource(t *testing.T, stackID, logicalID string) map[string]any {
	t.Helper()
	r, ok := s.templates[stackID]["Resources"].(map[string]any)[logicalID].(map[string]any)
	if !ok {
		t.Fatalf("%s has no resource %s", stackID, logicalID)
	}
	return r
}

// logicalIDOf finds the logical id of the one resource of type typ whose id starts with prefix
// (CDK appends a hash to ids of L2 constructs' resources).
func (s *synthesized) logicalIDOf(t *testing.T, stackID, typ, prefix string) string {
	t.Helper()
	var ids []string
	for id := range s.resources(stackID, typ) {
		if strings.HasPrefix(id, prefix) {
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("%s: want one %s with id prefix %s, found %v", stackID, typ, prefix, ids)
	}
	return ids[0]
}

// expect runs a CDK assertion, turning its panic into a test failure.
func expect(t *testing.T, what string, assertion func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: %v", what, r)
		}
	}()
	assertion()
}

func props(r map[string]any) map[string]any {
	p, _ := r["Properties"].(map[string]any)
	return p
}

// dig follows keys (strings for objects, ints for arrays) into a decoded JSON value.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

// asList treats a policy element that may be a single value or a list as a list.
func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// sample values for resolving the customer templates' intrinsics in tests.
var sampleVars = map[string]string{
	"AWS::Partition":                         "aws",
	"AWS::Region":                            "us-west-2",
	"AWS::AccountId":                         "111122223333",
	"AWS::URLSuffix":                         "amazonaws.com",
	"AWS::StackName":                         "stack",
	contract.InfraParamResourcePrefix:        contract.DefaultPrefix,
	contract.InfraParamDeploymentID:          "k3q9x2m7p4w8z",
	contract.InfraParamControlPlaneAccountID: "999988887777",
	contract.InfraParamControlPlaneRoleArn:   "arn:aws:iam::999988887777:role/byoc-provisioner",
	contract.InfraParamExternalID:            "0123456789abcdef0123456789abcdef01234567",
	contract.InfraParamStateQueueArn:         "arn:aws:sqs:us-east-1:999988887777:state",
}

var subVar = regexp.MustCompile(`\$\{([^}]+)\}`)

// resolve renders an intrinsic value to the string CloudFormation would produce with vars;
// references it cannot resolve become <Ref:X> or <X.Attr>.
func resolve(v any, vars map[string]string) string {
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		if body, ok := x["Fn::Sub"].(string); ok {
			return resolveSub(body, nil, vars)
		}
		if args, ok := x["Fn::Sub"].([]any); ok && len(args) == 2 {
			body, _ := args[0].(string)
			local, _ := args[1].(map[string]any)
			return resolveSub(body, local, vars)
		}
		if args, ok := x["Fn::Select"].([]any); ok && len(args) == 2 {
			i, _ := args[0].(float64)
			var list []string
			if split, ok := dig(args[1], "Fn::Split").([]any); ok && len(split) == 2 {
				list = strings.Split(resolve(split[1], vars), split[0].(string))
			}
			if int(i) < len(list) {
				return list[int(i)]
			}
			return "<" + toJSON(x) + ">"
		}
		if name, ok := x["Ref"].(string); ok {
			if val, ok := vars[name]; ok {
				return val
			}
			return "<Ref:" + name + ">"
		}
		if att, ok := x["Fn::GetAtt"].([]any); ok {
			return fmt.Sprintf("<%v.%v>", att[0], att[1])
		}
		if join, ok := x["Fn::Join"].([]any); ok {
			var parts []string
			for _, p := range join[1].([]any) {
				parts = append(parts, resolve(p, vars))
			}
			return strings.Join(parts, join[0].(string))
		}
	}
	return toJSON(v)
}

// resolveSub renders an Fn::Sub body: its own variables first, then vars.
func resolveSub(body string, local map[string]any, vars map[string]string) string {
	return subVar.ReplaceAllStringFunc(body, func(m string) string {
		name := m[2 : len(m)-1]
		if v, ok := local[name]; ok {
			return resolve(v, vars)
		}
		if val, ok := vars[name]; ok {
			return val
		}
		return "<" + name + ">"
	})
}

// iamMatch reports whether an IAM resource pattern (with * and ?) matches value.
func iamMatch(pattern, value string) bool {
	re := regexp.QuoteMeta(pattern)
	re = strings.ReplaceAll(re, `\*`, ".*")
	re = strings.ReplaceAll(re, `\?`, ".")
	return regexp.MustCompile("^" + re + "$").MatchString(value)
}

// statement is one policy statement found in a template, with where it was found.
type statement struct {
	stack, resource string
	body            map[string]any
}

// identityStatements lists the statements of every identity policy (role inline policies,
// AWS::IAM::Policy, AWS::IAM::ManagedPolicy) and resource policy (bucket, queue, topic, key) of a template.
func (s *synthesized) policyStatements(stackID string) []statement {
	var out []statement
	add := func(resource string, doc any) {
		for _, st := range asList(dig(doc, "Statement")) {
			out = append(out, statement{stack: stackID, resource: resource, body: st.(map[string]any)})
		}
	}
	ids := make([]string, 0)
	for id := range s.templates[stackID]["Resources"].(map[string]any) {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		r := s.templates[stackID]["Resources"].(map[string]any)[id].(map[string]any)
		p := props(r)
		switch r["Type"] {
		case "AWS::IAM::Role":
			for _, pol := range asList(p["Policies"]) {
				add(id, dig(pol, "PolicyDocument"))
			}
		case "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy":
			add(id, p["PolicyDocument"])
		case "AWS::KMS::Key":
			add(id, p["KeyPolicy"])
		}
	}
	return out
}

// statementsOfRole lists the identity statements that apply to a role: its inline policies and
// the AWS::IAM::Policy / ManagedPolicy resources attached to it.
func (s *synthesized) statementsOfRole(stackID, roleID string) []map[string]any {
	var out []map[string]any
	for _, st := range s.policyStatements(stackID) {
		r := s.templates[stackID]["Resources"].(map[string]any)[st.resource].(map[string]any)
		if st.resource == roleID {
			out = append(out, st.body)
			continue
		}
		for _, role := range asList(props(r)["Roles"]) {
			if dig(role, "Ref") == roleID {
				out = append(out, st.body)
			}
		}
	}
	return out
}

func actionsOf(st map[string]any) []string {
	var out []string
	for _, a := range asList(st["Action"]) {
		out = append(out, a.(string))
	}
	return out
}

func resourcesOf(st map[string]any, vars map[string]string) []string {
	var out []string
	for _, r := range asList(st["Resource"]) {
		out = append(out, resolve(r, vars))
	}
	return out
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tryReadFile(path string) ([]byte, bool) {
	b, err := os.ReadFile(path)
	return b, err == nil
}
