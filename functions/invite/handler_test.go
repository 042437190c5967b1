package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/smithy-go"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/cloud/cloudtest"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/maintenance"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/store"
	"github.com/byocloud/byoc/shared/window"
)

// fakeBus stands in for the vendor bus policy: kumo's EventBridge has no PutPermission. The
// local cloud's end-to-end run covers the real call.
type fakeBus struct {
	mu    sync.Mutex
	calls []*eventbridge.PutPermissionInput
	err   error
	// expire, when set, is called before the answer: the invocation's deadline passes
	// while the bus is being called.
	expire func()
}

func (b *fakeBus) PutPermission(_ context.Context, in *eventbridge.PutPermissionInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutPermissionOutput, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, in)
	if b.expire != nil {
		b.expire()
	}
	return &eventbridge.PutPermissionOutput{}, b.err
}

func (b *fakeBus) RemovePermission(context.Context, *eventbridge.RemovePermissionInput, ...func(*eventbridge.Options)) (*eventbridge.RemovePermissionOutput, error) {
	panic("invite never removes permissions")
}

var testConfig = Config{
	EventBusName:         "byoc-vendor",
	EventBusArn:          "arn:aws:events:us-east-1:999999999999:event-bus/byoc-vendor",
	ProvisionerRoleArn:   "arn:aws:iam::999999999999:role/byoc-provisioner",
	BootstrapTemplateURL: "https://byoc-templates.s3.amazonaws.com/bootstrap.template.json",
}

type fixture struct {
	h     *Handler
	bus   *fakeBus
	env   *cloudtest.Env
	table string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	env := cloudtest.Start(t)
	table := env.CreateTable(t, store.TableDefinition(""), store.TTLAttribute)
	bus := &fakeBus{}
	h := &Handler{Store: store.New(env.DynamoDB(), table), Bus: bus, Config: testConfig, Log: slog.New(slog.NewJSONHandler(io.Discard, nil))}
	return fixture{h: h, bus: bus, env: env, table: table}
}

func sample(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "events", "invite", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// invoke goes through aws-lambda-go's own handler adapter, as the Lambda runtime does.
func (f fixture) invoke(t *testing.T, payload []byte) (Response, error) {
	t.Helper()
	out, err := lambda.NewHandler(f.h.Handle).Invoke(context.Background(), payload)
	if err != nil {
		return Response{}, err
	}
	var resp Response
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	return resp, nil
}

var idPattern = regexp.MustCompile(`^[a-z][a-z0-9]{12}$`)

func TestInviteValid(t *testing.T) {
	f := newFixture(t)
	resp, err := f.invoke(t, sample(t, "valid.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !idPattern.MatchString(resp.DeploymentID) {
		t.Fatalf("deployment id %q", resp.DeploymentID)
	}
	if len(resp.ExternalID) < 32 {
		t.Fatalf("ExternalId %q shorter than 32", resp.ExternalID)
	}
	if resp.StackName != contract.BootstrapStackName || resp.TemplateURL != testConfig.BootstrapTemplateURL {
		t.Fatalf("stack %s template %s", resp.StackName, resp.TemplateURL)
	}
	want := map[string]string{
		contract.BootstrapParamExternalID:          resp.ExternalID,
		contract.BootstrapParamControlPlaneRoleArn: testConfig.ProvisionerRoleArn,
		contract.BootstrapParamVendorEventBusArn:   testConfig.EventBusArn,
		contract.BootstrapParamResourcePrefix:      "clickhouse-cloud",
	}
	if !reflect.DeepEqual(resp.Parameters, want) {
		t.Fatalf("parameters %v, want %v", resp.Parameters, want)
	}
	if resp.Settings.VPCCIDR != "10.0.0.0/16" || resp.Settings.AccountID != "111122223333" || resp.ServerPodLimit != 0 {
		t.Fatalf("settings %+v", resp.Settings)
	}

	d, err := f.h.Store.Get(context.Background(), resp.DeploymentID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != lifecycle.Invited || d.ExternalID != resp.ExternalID || d.Version != 1 ||
		d.StackName != "clickhouse-cloud-"+resp.DeploymentID+"-infra" || !reflect.DeepEqual(d.Settings, resp.Settings) {
		t.Fatalf("stored %+v", d)
	}
	trail, _ := f.h.Store.AuditTrail(context.Background(), d.ID)
	if len(trail) != 1 || trail[0].Actor != "invite:ops@vendor.example" || trail[0].Action != "invite" {
		t.Fatalf("audit %+v", trail)
	}

	if len(f.bus.calls) != 1 {
		t.Fatalf("%d PutPermission calls", len(f.bus.calls))
	}
	c := f.bus.calls[0]
	if aws.ToString(c.EventBusName) != "byoc-vendor" || aws.ToString(c.Principal) != "111122223333" ||
		aws.ToString(c.Action) != "events:PutEvents" || aws.ToString(c.StatementId) != "customer-111122223333" {
		t.Fatalf("PutPermission %+v", c)
	}
}

func TestQuickCreateLinkFillsTheBootstrapParameters(t *testing.T) {
	f := newFixture(t)
	resp, err := f.invoke(t, sample(t, "valid.json"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(resp.QuickCreateURL)
	if err != nil {
		t.Fatal(err)
	}
	if u.Host != "us-west-2.console.aws.amazon.com" || u.Path != "/cloudformation/home" || u.Query().Get("region") != "us-west-2" {
		t.Fatalf("link %s does not open the customer's region", resp.QuickCreateURL)
	}
	route, query, ok := strings.Cut(u.Fragment, "?")
	if !ok || route != "/stacks/create/review" {
		t.Fatalf("fragment %q", u.Fragment)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	if q.Get("templateURL") != testConfig.BootstrapTemplateURL || q.Get("stackName") != contract.BootstrapStackName {
		t.Fatalf("query %v", q)
	}
	for k, v := range resp.Parameters {
		if q.Get("param_"+k) != v {
			t.Errorf("param_%s = %q, want %q", k, q.Get("param_"+k), v)
		}
	}
}

func TestQuickCreateURLPartitions(t *testing.T) {
	got := QuickCreateURL("cn-north-1", "https://t/x.json", "s", map[string]string{"A": "b c"})
	want := "https://cn-north-1.console.amazonaws.cn/cloudformation/home?region=cn-north-1#/stacks/create/review?param_A=b+c&stackName=s&templateURL=https%3A%2F%2Ft%2Fx.json"
	if got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
}

func TestInviteFillsDefaults(t *testing.T) {
	f := newFixture(t)
	resp, err := f.invoke(t, sample(t, "defaults.json"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Settings.VPCCIDR != settings.DefaultVPCCIDR || len(resp.Settings.ZoneIDs) != 3 || resp.Settings.ResourcePrefix != contract.DefaultPrefix {
		t.Fatalf("defaults not applied: %+v", resp.Settings)
	}
	trail, _ := f.h.Store.AuditTrail(context.Background(), resp.DeploymentID)
	if trail[0].Actor != "invite" {
		t.Fatalf("actor %q, want plain invite when none is given", trail[0].Actor)
	}
}

func TestInviteTakesAWindowAndChannelOrGivesTheRegionsNight(t *testing.T) {
	f := newFixture(t)
	resp, err := f.invoke(t, sample(t, "window.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := window.Window{Day: "tuesday", Start: "01:00", TimeZone: "America/Los_Angeles", Hours: 3}
	d, err := f.h.Store.Get(context.Background(), resp.DeploymentID)
	if err != nil || d.Maintenance == nil || d.Maintenance.Window != want || d.Maintenance.Channel != "fast" || !d.Maintenance.Canary || resp.Maintenance.Window != want {
		t.Fatalf("stored maintenance %+v (answer %+v), %v", d.Maintenance, resp.Maintenance, err)
	}
	if _, err := f.invoke(t, sample(t, "valid.json")); err == nil {
		t.Fatal("the same account with another window is a second deployment, not a repeat")
	}
	g := newFixture(t)
	def, err := g.invoke(t, sample(t, "defaults.json"))
	if err != nil {
		t.Fatal(err)
	}
	if def.Maintenance.Window != window.Default(def.Settings.Region) || def.Maintenance.Channel != "regular" {
		t.Fatalf("default maintenance %+v", def.Maintenance)
	}
}

func TestInviteSmallCIDRLimitsServerPods(t *testing.T) {
	f := newFixture(t)
	resp, err := f.invoke(t, sample(t, "small-cidr.json"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.ServerPodLimit != settings.SmallCIDRServerPodLimit || resp.Settings.ServerPodLimit != settings.SmallCIDRServerPodLimit {
		t.Fatalf("server pod limit %d", resp.ServerPodLimit)
	}
}

// errorType is what Lambda reports for an error: aws-lambda-go uses the Go type name.
func errorType(err error) string {
	t := reflect.TypeOf(err)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

func TestInviteRejectsBadInputAndWritesNothing(t *testing.T) {
	longActor, _ := json.Marshal(map[string]any{"customerId": "acme", "accountId": "111122223333", "region": "us-west-2", "actor": strings.Repeat("a", 129)})
	cases := []struct {
		name    string
		payload []byte
		fields  map[string]string // field -> part of the rule
	}{
		{"bad-cidr.json", sample(t, "bad-cidr.json"), map[string]string{"vpcCidr": "private range"}},
		{"bad-zones.json", sample(t, "bad-zones.json"), map[string]string{"zoneIds[1]": "belongs to us-east-1", "zoneIds[2]": "must not repeat"}},
		{"unsupported-region.json", sample(t, "unsupported-region.json"), map[string]string{"region": "supported regions"}},
		{"many-errors.json", sample(t, "many-errors.json"), map[string]string{
			"customerId": "lowercase", "accountId": "12 digits", "vpcCidr": "/16 to /22", "resourcePrefix": "start with a letter",
		}},
		{"unknown-field.json", sample(t, "unknown-field.json"), map[string]string{"zones": "is not a setting"}},
		{"wrong-type.json", sample(t, "wrong-type.json"), map[string]string{"accountId": "JSON type string"}},
		{"not-an-object.json", sample(t, "not-an-object.json"), map[string]string{"(payload)": "JSON object"}},
		{"long actor", longActor, map[string]string{"actor": "at most 128"}},
		{"bad-window.json", sample(t, "bad-window.json"), map[string]string{"window.start": "HH:MM", "window.timeZone": "IANA", "window.durationHours": "1 to 8"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			_, err := f.h.Handle(context.Background(), c.payload)
			var verr *settings.ValidationError
			if !errors.As(err, &verr) || errorType(err) != "ValidationError" {
				t.Fatalf("err = %v (%T), want a ValidationError", err, err)
			}
			for field, rule := range c.fields {
				fe, ok := verr.Field(field)
				if !ok || !strings.Contains(fe.Rule, rule) {
					t.Errorf("field %s: got %+v, want a rule containing %q (all: %v)", field, fe, rule, err)
				}
				if !strings.Contains(err.Error(), field) {
					t.Errorf("message %q does not name %s", err, field)
				}
			}
			if keys := f.env.Keys(t, f.table); len(keys) != 0 {
				t.Fatalf("bad input wrote %v", keys)
			}
			if len(f.bus.calls) != 0 {
				t.Fatal("bad input admitted an account")
			}
		})
	}
}

func TestInviteRefusesASecondDeploymentOfTheAccountAndRegion(t *testing.T) {
	f := newFixture(t)
	first, err := f.invoke(t, sample(t, "valid.json"))
	if err != nil {
		t.Fatal(err)
	}
	before := f.env.Keys(t, f.table)
	other := strings.Replace(string(sample(t, "valid.json")), "10.0.0.0/16", "10.1.0.0/16", 1)
	_, err = f.h.Handle(context.Background(), []byte(other))
	var exists *DeploymentExists
	if !errors.As(err, &exists) || errorType(err) != "DeploymentExists" || !errors.Is(err, store.ErrExists) {
		t.Fatalf("err = %v, want DeploymentExists", err)
	}
	if !strings.Contains(err.Error(), "111122223333") || !strings.Contains(err.Error(), first.DeploymentID) {
		t.Fatalf("message %q must name the account and its deployment", err)
	}
	if after := f.env.Keys(t, f.table); !slices.Equal(sortedCopy(before), sortedCopy(after)) {
		t.Fatalf("refused invite wrote: %v", after)
	}
	if len(f.bus.calls) != 1 {
		t.Fatalf("%d PutPermission calls, want only the first invite's", len(f.bus.calls))
	}
}

// An operator who repeats an invitation (its answer was lost, or invite crashed) gets the
// stored one: same deployment, same ExternalId, nothing new written, the admission made
// again. A defect `make chaos` found (infra-fails, crash, seed 1): the retry was refused as a second deployment.
func TestInviteRepeatedAnswersTheStoredInvitation(t *testing.T) {
	// defaults.json: settings filled in by Normalize must compare equal after the store's round trip.
	for _, name := range []string{"valid.json", "defaults.json", "small-cidr.json"} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			first, err := f.invoke(t, sample(t, name))
			if err != nil {
				t.Fatal(err)
			}
			before := f.env.Keys(t, f.table)
			again, err := f.invoke(t, sample(t, name))
			if err != nil {
				t.Fatalf("repeated invitation: %v", err)
			}
			if again.DeploymentID != first.DeploymentID || again.ExternalID != first.ExternalID || again.QuickCreateURL != first.QuickCreateURL {
				t.Fatalf("repeated invitation answered %+v, want the first %+v", again, first)
			}
			if after := f.env.Keys(t, f.table); !slices.Equal(sortedCopy(before), sortedCopy(after)) {
				t.Fatalf("a repeated invitation wrote: %v, before %v", after, before)
			}
			if len(f.bus.calls) != 2 {
				t.Fatalf("%d PutPermission calls, want the admission made again", len(f.bus.calls))
			}
		})
	}
}

// invite crashed between storing the deployment and admitting the account: the retry
// finishes the admission instead of leaving the account claimed and never admitted.
func TestInviteRepeatedFinishesAnInterruptedAdmission(t *testing.T) {
	f := newFixture(t)
	req, err := decode(sample(t, "valid.json"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.h.Config.Rules.Normalize(req.Settings)
	if err != nil {
		t.Fatal(err)
	}
	m, err := maintenance.New(req.Window, s.Region, req.Channel, req.Canary)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := f.h.Store.Create(context.Background(), store.Deployment{ID: "dcrashed", Settings: s, Status: lifecycle.Invited, ExternalID: "ext-crashed",
		StackName: InfraStackName(s.ResourcePrefix, "dcrashed"), Maintenance: &m}, store.Audit{Actor: "invite", Action: "invite"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.invoke(t, sample(t, "valid.json"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.DeploymentID != stored.ID || resp.ExternalID != "ext-crashed" {
		t.Fatalf("answered %s/%s, want the stored deployment's", resp.DeploymentID, resp.ExternalID)
	}
	if len(f.bus.calls) != 1 || aws.ToString(f.bus.calls[0].Principal) != s.AccountID {
		t.Fatalf("admission calls %+v, want one for %s", f.bus.calls, s.AccountID)
	}
}

// Once onboarding has begun, the same invitation is no longer a retry: it is refused.
func TestInviteRepeatedAfterOnboardingBeganIsRefused(t *testing.T) {
	f := newFixture(t)
	first, err := f.invoke(t, sample(t, "valid.json"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := f.h.Store.Get(context.Background(), first.DeploymentID)
	if err != nil {
		t.Fatal(err)
	}
	next := d
	next.Status = lifecycle.Provisioning
	if _, err := f.h.Store.Update(context.Background(), d, next, store.Audit{Actor: "test", Action: "provision.start"}); err != nil {
		t.Fatal(err)
	}
	before := f.env.Keys(t, f.table)
	_, err = f.h.Handle(context.Background(), sample(t, "valid.json"))
	var exists *DeploymentExists
	if !errors.As(err, &exists) || !strings.Contains(err.Error(), first.DeploymentID) {
		t.Fatalf("err = %v, want DeploymentExists naming %s", err, first.DeploymentID)
	}
	if after := f.env.Keys(t, f.table); !slices.Equal(sortedCopy(before), sortedCopy(after)) {
		t.Fatalf("refused invite wrote: %v", after)
	}
	if len(f.bus.calls) != 1 {
		t.Fatalf("%d PutPermission calls, want only the first invite's", len(f.bus.calls))
	}
}

func TestInviteUndoesTheDeploymentWhenAdmissionFails(t *testing.T) {
	f := newFixture(t)
	f.bus.err = &smithy.GenericAPIError{Code: "ResourceNotFoundException", Message: "Event bus byoc-vendor does not exist."}
	_, err := f.h.Handle(context.Background(), sample(t, "valid.json"))
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "nothing was stored") {
		t.Fatalf("err = %v", err)
	}
	if keys := f.env.Keys(t, f.table); len(keys) != 0 {
		t.Fatalf("a failed admission left %v", keys)
	}
	// The account is free again: once the bus works, the same invitation succeeds.
	f.bus.err = nil
	if _, err := f.invoke(t, sample(t, "valid.json")); err != nil {
		t.Fatalf("retry after a failed admission: %v", err)
	}
}

// The invocation's deadline passes during admission (the bus answered slowly, then with the
// deadline's error): the deployment is still removed, on a context of its own, so the
// account is not left claimed without admission.
func TestInviteUndoesTheDeploymentWhenAdmissionOutlivesTheDeadline(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.bus.expire = cancel
	f.bus.err = context.Canceled
	_, err := f.h.Handle(ctx, sample(t, "valid.json"))
	if err == nil || !strings.Contains(err.Error(), "nothing was stored") {
		t.Fatalf("err = %v, want the admission's error and nothing stored", err)
	}
	if keys := f.env.Keys(t, f.table); len(keys) != 0 {
		t.Fatalf("a failed admission past the deadline left %v", keys)
	}
}

func TestDeploymentIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		id, err := NewDeploymentID()
		if err != nil {
			t.Fatal(err)
		}
		if !idPattern.MatchString(id) || len(id) != settings.IDLength {
			t.Fatalf("id %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
	}
	// Every character of the alphabet turns up: the draw is not stuck on a subset.
	chars := map[rune]bool{}
	for id := range seen {
		for _, r := range id[1:] {
			chars[r] = true
		}
	}
	if len(chars) != len(idChars) {
		t.Fatalf("%d distinct characters, want %d", len(chars), len(idChars))
	}
}

func TestExternalIDs(t *testing.T) {
	a, _ := NewExternalID()
	b, _ := NewExternalID()
	if len(a) != 2*ExternalIDBytes || a == b {
		t.Fatalf("ExternalIds %q %q", a, b)
	}
	if _, err := hex.DecodeString(a); err != nil {
		t.Fatal(err)
	}
}

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{
		contract.EnvTableName: "byoc", contract.EnvEventBusName: "bus", contract.EnvEventBusArn: "arn:bus",
		contract.EnvProvisionerRoleArn: "arn:role", contract.EnvBootstrapTemplateURL: "https://t",
		contract.EnvSupportedRegions: "us-east-1, eu-west-1",
	}
	c, err := ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.EventBusName != "bus" || !slices.Equal(c.Rules.Regions(), []string{"us-east-1", "eu-west-1"}) {
		t.Fatalf("config %+v", c)
	}

	_, err = ConfigFromEnv(func(k string) string {
		if k == contract.EnvEventBusArn || k == contract.EnvTableName {
			return ""
		}
		return env[k]
	})
	if err == nil || !strings.Contains(err.Error(), "EVENT_BUS_ARN, TABLE_NAME") {
		t.Fatalf("err = %v, want both missing variables named", err)
	}

	env[contract.EnvSupportedRegions] = "us-east-1,mars-north-1"
	if _, err := ConfigFromEnv(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "mars-north-1") {
		t.Fatalf("err = %v, want the unknown region named", err)
	}
}

func sortedCopy(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

// throttledReads fails GetItem once armed: the table is throttling reads.
type throttledReads struct {
	cloud.DynamoDB
	on bool
}

func (d *throttledReads) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if d.on {
		return nil, &smithy.GenericAPIError{Code: "ProvisionedThroughputExceededException", Message: "reads throttled"}
	}
	return d.DynamoDB.GetItem(ctx, in, o...)
}

// A repeated invitation that cannot read the stored one says so: a throttled read is not
// "the account already has a deployment", which an operator would take for final.
func TestInviteRepeatedWhoseReadFailsSaysSo(t *testing.T) {
	f := newFixture(t)
	db := &throttledReads{DynamoDB: f.env.DynamoDB()}
	f.h.Store = store.New(db, f.table)
	if _, err := f.invoke(t, sample(t, "valid.json")); err != nil {
		t.Fatal(err)
	}
	before := f.env.Keys(t, f.table)
	db.on = true
	_, err := f.h.Handle(context.Background(), sample(t, "valid.json"))
	var exists *DeploymentExists
	if err == nil || errors.As(err, &exists) || !strings.Contains(err.Error(), "reads throttled") {
		t.Fatalf("err = %v, want the read's error, not DeploymentExists", err)
	}
	if after := f.env.Keys(t, f.table); !slices.Equal(sortedCopy(before), sortedCopy(after)) {
		t.Fatalf("the failed repeat wrote: %v", after)
	}
	if len(f.bus.calls) != 1 {
		t.Fatalf("%d PutPermission calls, want only the first invite's", len(f.bus.calls))
	}
}
