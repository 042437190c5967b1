package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/byocloud/byoc/shared/cloud/cloudtest"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/store"
)

type fixture struct {
	env   *cloudtest.Env
	table string
	bus   string
	db    *servicestate.CountingDB
	repo  *servicestate.Repo
	h     *Handler
	logs  *bytes.Buffer
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	env := cloudtest.Start(t)
	table := env.CreateTable(t, store.TableDefinition("x"), servicestate.TTLAttribute)
	db := servicestate.CountWrites(env.DynamoDB())
	repo := servicestate.New(db, table)
	repo.Now = func() time.Time { return sampleNow }
	ctx := context.Background()
	for _, d := range []servicestate.DataPlane{sampleDeployment, otherDeployment} {
		if err := repo.RegisterDataPlane(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	bus := alertBus(t, env)
	logs := &bytes.Buffer{}
	h := &Handler{
		Repo:      repo,
		Publisher: servicestate.Publisher{Bus: env.EventBridge(), BusName: bus},
		Tasks:     env.StepFunctions(),
		Log:       slog.New(slog.NewJSONHandler(logs, nil)),
		Now:       func() time.Time { return sampleNow },
		Writes:    db,
	}
	return &fixture{env: env, table: table, bus: bus, db: db, repo: repo, h: h, logs: logs}
}

// alertBus creates a bus whose rule matches every byoc.state event; kumo records matches
// to an SNS target without delivering them.
func alertBus(t testing.TB, env *cloudtest.Env) string {
	t.Helper()
	ctx := context.Background()
	eb := env.EventBridge()
	name := cloudtest.UniqueName("bus")
	if _, err := eb.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("state"), EventBusName: aws.String(name),
		EventPattern: aws.String(`{"source":["` + contract.SourceState + `"]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("state"), EventBusName: aws.String(name),
		Targets: []ebtypes.Target{{Id: aws.String("log"), Arn: aws.String("arn:aws:sns:us-east-1:000000000000:alerts")}}}); err != nil {
		t.Fatal(err)
	}
	return name
}

type busEvent struct {
	DetailType   string `json:"DetailType"`
	Detail       string `json:"Detail"`
	EventBusName string `json:"EventBusName"`
}

func (f *fixture) events(t testing.TB) []busEvent {
	t.Helper()
	resp, err := http.Get(f.env.URL + "/kumo/eventbridge/delivered-events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var all, mine []busEvent
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		t.Fatal(err)
	}
	for _, e := range all {
		if e.EventBusName == f.bus {
			mine = append(mine, e)
		}
	}
	return mine
}

func (f *fixture) handle(t testing.TB, ev events.SQSEvent) []string {
	t.Helper()
	resp, err := f.h.Handle(context.Background(), ev)
	if err != nil {
		t.Fatalf("the handler returned an error (the whole batch would be retried): %v", err)
	}
	var failed []string
	for _, x := range resp.BatchItemFailures {
		failed = append(failed, x.ItemIdentifier)
	}
	return failed
}

func (f *fixture) service(t testing.TB, svc string) servicestate.Service {
	t.Helper()
	s, err := f.repo.Service(context.Background(), sampleDeployment.DeploymentID, svc)
	if err != nil {
		t.Fatalf("service %s: %v", svc, err)
	}
	return s
}

func (f *fixture) serviceKeys(t testing.TB) []string {
	t.Helper()
	var keys []string
	for _, k := range f.env.Keys(t, f.table) {
		if strings.Contains(k, "|SVC#") {
			keys = append(keys, k)
		}
	}
	return keys
}

func TestHealthyReportIsStoredAndAnnounced(t *testing.T) {
	f := newFixture(t)
	if failed := f.handle(t, loadSample(t, "healthy.json")); len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	s := f.service(t, "h5ju65kv87")
	if s.Health != health.Healthy || s.Versions.ClickHouse != "24.8.1.2684" || s.MessageID != "5e0c6a2f-1b7d-4c39-9a8e-000000000101" {
		t.Fatalf("stored %+v", s)
	}
	evs := f.events(t)
	if len(evs) != 2 || evs[0].DetailType != contract.DetailTypeServiceHealthChanged || evs[1].DetailType != contract.DetailTypeDeploymentHealthChanged {
		t.Fatalf("events %+v", evs)
	}
	if !strings.Contains(f.logs.String(), `"msg":"state batch","messages":1,"applied":1`) {
		t.Fatalf("batch log: %s", f.logs)
	}
}

func TestEveryStatusSample(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		file string
		want health.Health
	}{
		{"healthy.json", health.Healthy},
		{"degraded.json", health.Degraded},
		{"unhealthy.json", health.Unhealthy},
		{"stopped.json", health.Stopped},
		{"idle.json", health.Idle},
	} {
		if failed := f.handle(t, loadSample(t, c.file)); len(failed) != 0 {
			t.Fatalf("%s: failed %v", c.file, failed)
		}
		if got := f.service(t, "h5ju65kv87").Health; got != c.want {
			t.Fatalf("%s: health %s, want %s", c.file, got, c.want)
		}
	}
	hist, err := f.repo.History(context.Background(), sampleDeployment.DeploymentID, 100)
	if err != nil || len(hist) != 10 {
		t.Fatalf("history %v %v, want a service and a deployment transition per sample", hist, err)
	}
	if len(f.events(t)) != 10 {
		t.Fatalf("events %d, want one per transition", len(f.events(t)))
	}
}

func TestPoisonInABatchOfTenFailsAlone(t *testing.T) {
	f := newFixture(t)
	batch := loadSample(t, "batch-of-ten-poison.json")
	poison := batch.Records[4].MessageId
	failed := f.handle(t, batch)
	if !slices.Equal(failed, []string{poison}) {
		t.Fatalf("failed %v, want only the poison %s", failed, poison)
	}
	if got := len(f.serviceKeys(t)); got != 9 {
		t.Fatalf("%d services stored, want the nine good ones", got)
	}
	rejections, err := f.repo.Rejections(context.Background(), sampleNow)
	if err != nil || len(rejections) != 1 || rejections[0].Reason != "malformed" || rejections[0].MessageID != poison ||
		rejections[0].ClaimedDeploymentID != "" || rejections[0].BodyBytes != len(batch.Records[4].Body) {
		t.Fatalf("rejections %+v %v", rejections, err)
	}
	before := f.env.Items(t, f.table)
	eventsBefore := len(f.events(t))
	writes := f.db.Writes()

	// SQS redelivers only the poison (the others were deleted); until maxReceiveCount it
	// fails again, without a second record or event, and the DLQ takes it untouched.
	redelivery := events.SQSEvent{Records: []events.SQSMessage{batch.Records[4]}}
	redelivery.Records[0].Attributes["ApproximateReceiveCount"] = "2"
	if failed := f.handle(t, redelivery); !slices.Equal(failed, []string{poison}) {
		t.Fatalf("redelivery failed %v", failed)
	}
	if got := f.db.Writes() - writes; got != 1 {
		t.Fatalf("the redelivery cost %d writes, want the one refused rejection record", got)
	}
	if len(f.env.Items(t, f.table)) != len(before) || len(f.events(t)) != eventsBefore {
		t.Fatal("a redelivered poison added records or events")
	}
}

func TestDuplicatesWriteNothing(t *testing.T) {
	f := newFixture(t)
	if failed := f.handle(t, loadSample(t, "healthy.json")); len(failed) != 0 {
		t.Fatal(failed)
	}
	before := f.env.Items(t, f.table)
	writes := f.db.Writes()
	if failed := f.handle(t, loadSample(t, "duplicate.json")); len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	if got := f.db.Writes() - writes; got != 0 {
		t.Fatalf("duplicates cost %d writes", got)
	}
	if len(f.env.Items(t, f.table)) != len(before) {
		t.Fatal("duplicates added items")
	}
	if !strings.Contains(f.logs.String(), `"duplicate":2`) {
		t.Fatalf("batch log: %s", f.logs)
	}
}

func TestOutOfOrderKeepsTheNewest(t *testing.T) {
	f := newFixture(t)
	// The batch holds seq 103 (unhealthy) and seq 102 (degraded): processed concurrently,
	// in any order, the newest must win.
	if failed := f.handle(t, loadSample(t, "out-of-order.json")); len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	if s := f.service(t, "h5ju65kv87"); s.Health != health.Unhealthy || !strings.HasSuffix(s.OrderKey, "0000000000000067") {
		t.Fatalf("stored %s %s, want seq 103 (0x67)", s.Health, s.OrderKey)
	}
	// Delivered again later, the older one changes nothing.
	writes := f.db.Writes()
	older := loadSample(t, "degraded.json")
	if failed := f.handle(t, older); len(failed) != 0 {
		t.Fatal(failed)
	}
	if f.db.Writes() != writes || f.service(t, "h5ju65kv87").Health != health.Unhealthy {
		t.Fatal("an older report changed the state")
	}
}

func TestRestartedExporterIsNewer(t *testing.T) {
	f := newFixture(t)
	f.handle(t, loadSample(t, "unhealthy.json"))
	if failed := f.handle(t, loadSample(t, "restarted-exporter.json")); len(failed) != 0 {
		t.Fatal(failed)
	}
	if s := f.service(t, "h5ju65kv87"); s.Health != health.Healthy {
		t.Fatalf("after the exporter restarted: %s", s.Health)
	}
}

func TestForgedSenderIsRejectedAndAudited(t *testing.T) {
	f := newFixture(t)
	ev := loadSample(t, "forged-sender.json")
	if failed := f.handle(t, ev); !slices.Equal(failed, []string{ev.Records[0].MessageId}) {
		t.Fatalf("failed %v", failed)
	}
	if keys := f.serviceKeys(t); len(keys) != 0 {
		t.Fatalf("a forged message wrote %v", keys)
	}
	rej, err := f.repo.Rejections(context.Background(), sampleNow)
	if err != nil || len(rej) != 1 || rej[0].Reason != "forged-sender" || !rej[0].Security ||
		rej[0].SenderID != otherSender || rej[0].ClaimedDeploymentID != "dep7f3a" {
		t.Fatalf("rejection %+v %v", rej, err)
	}
	evs := f.events(t)
	if len(evs) != 1 || evs[0].DetailType != contract.DetailTypeStateMessageRejected || !strings.Contains(evs[0].Detail, `"security":true`) {
		t.Fatalf("events %+v", evs)
	}
	if !strings.Contains(f.logs.String(), "security event") {
		t.Fatalf("no security log: %s", f.logs)
	}
}

func TestUnverifiableAndMalformedMessagesAreRejected(t *testing.T) {
	for file, reason := range map[string]string{
		"no-sender.json":          "no-sender",
		"unknown-deployment.json": "unknown-deployment",
		"malformed.json":          "malformed",
		"oversized.json":          "oversized",
		"unknown-version.json":    "unknown-version",
		"invalid.json":            "invalid",
	} {
		t.Run(file, func(t *testing.T) {
			f := newFixture(t)
			ev := loadSample(t, file)
			if failed := f.handle(t, ev); !slices.Equal(failed, []string{ev.Records[0].MessageId}) {
				t.Fatalf("failed %v", failed)
			}
			if keys := f.serviceKeys(t); len(keys) != 0 {
				t.Fatalf("a rejected message wrote %v", keys)
			}
			rej, err := f.repo.Rejections(context.Background(), sampleNow)
			if err != nil || len(rej) != 1 || rej[0].Reason != reason || rej[0].Security {
				t.Fatalf("rejection %+v %v", rej, err)
			}
			if reason == "invalid" && !strings.Contains(rej[0].Detail, "status: must be one of") {
				t.Fatalf("the detail does not name the field and rule: %s", rej[0].Detail)
			}
		})
	}
}

func TestTransientFailureIsRetriedWithoutRejection(t *testing.T) {
	f := newFixture(t)
	// A table that does not exist stands for DynamoDB being unavailable.
	broken := servicestate.New(f.env.DynamoDB(), "no-such-table")
	f.h.Repo = broken
	ev := loadSample(t, "healthy.json")
	if failed := f.handle(t, ev); !slices.Equal(failed, []string{ev.Records[0].MessageId}) {
		t.Fatalf("failed %v", failed)
	}
	if strings.Contains(f.logs.String(), "state message rejected") {
		t.Fatal("a transient failure was treated as a rejection")
	}
	if !strings.Contains(f.logs.String(), `"retry":1`) {
		t.Fatalf("batch log: %s", f.logs)
	}
}

func TestAcknowledgementResumesTheWaitingWorkflow(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	dep := sampleDeployment.DeploymentID
	if _, _, err := f.repo.CreateCommand(ctx, servicestate.CommandRecord{ID: "cmd-upgrade-2449", DeploymentID: dep, ServiceID: "h5ju65kv87",
		Kind: "apply-release", Params: map[string]string{"clickhouseVersion": "24.9.2.42"}}); err != nil {
		t.Fatal(err)
	}
	exec, token := f.env.Activity(t)
	cond := servicestate.Condition{ServiceID: "h5ju65kv87", CommandID: "cmd-upgrade-2449", Health: health.Healthy, ClickHouseVersion: "24.9.2.42"}
	if _, err := f.repo.RegisterWaiter(ctx, dep, cond, token, time.Hour); err != nil {
		t.Fatal(err)
	}
	f.handle(t, loadSample(t, "healthy.json")) // still on 24.8: keeps waiting
	if cmd, _ := f.repo.Command(ctx, dep, "cmd-upgrade-2449"); cmd.Status != servicestate.CommandPending {
		t.Fatalf("command %s", cmd.Status)
	}
	if failed := f.handle(t, loadSample(t, "command-ack.json")); len(failed) != 0 {
		t.Fatal(failed)
	}
	if cmd, _ := f.repo.Command(ctx, dep, "cmd-upgrade-2449"); cmd.Status != servicestate.CommandSucceeded {
		t.Fatalf("command %s after its acknowledgement", cmd.Status)
	}
	out := f.env.WaitExecution(t, exec)
	if out.Status != "SUCCEEDED" || !strings.Contains(aws.ToString(out.Output), `"clickhouse":"24.9.2.42"`) {
		t.Fatalf("execution %s output %s", out.Status, aws.ToString(out.Output))
	}
	if ws, _ := f.repo.Waiters(ctx, dep, "h5ju65kv87"); len(ws) != 0 {
		t.Fatalf("waiters left %v", ws)
	}
}

func TestSteadyPathCostsOneWritePerMessage(t *testing.T) {
	f := newFixture(t)
	f.handle(t, loadSample(t, "healthy.json"))
	writes := f.db.Writes()
	const n = 50
	for seq := int64(1); seq <= n; seq++ {
		m := sampleReport("h5ju65kv87", 101+seq)
		f.handle(t, event(record(int(1000+seq), body(t, m), sampleSender)))
	}
	if got := f.db.Writes() - writes; got != n {
		t.Fatalf("%d steady reports cost %d writes", n, got)
	}
}

// One sender floods the state queue with forged messages: each is rejected and recorded
// (with an expiry), but only the first of the window is announced; the sweep sums up the rest
// once the window closes. A second sender opens its own window.
func TestAFloodOfForgedMessagesIsAnnouncedOncePerSenderPerWindow(t *testing.T) {
	f := newFixture(t)
	base := loadSample(t, "forged-sender.json")
	var flood events.SQSEvent
	for i := range 8 {
		rec := base.Records[0]
		rec.MessageId = fmt.Sprintf("flood-%d", i)
		flood.Records = append(flood.Records, rec)
	}
	if failed := f.handle(t, flood); len(failed) != len(flood.Records) {
		t.Fatalf("%d of %d forged messages failed back to the queue", len(failed), len(flood.Records))
	}
	rej, err := f.repo.Rejections(context.Background(), sampleNow)
	if err != nil || len(rej) != len(flood.Records) {
		t.Fatalf("%d rejection records (%v), want one per message", len(rej), err)
	}
	for _, r := range rej {
		if want := r.RecordedAt.Add(servicestate.RejectionRetention).Unix(); r.TTL != want {
			t.Fatalf("rejection %s expires at %d, want %d", r.MessageID, r.TTL, want)
		}
	}
	if evs := f.events(t); len(evs) != 1 {
		t.Fatalf("%d rejection events for one sender's flood, want 1", len(evs))
	}
	repeated, err := f.repo.RepeatedRejections(context.Background(), servicestate.WindowOf(sampleNow))
	if err != nil || len(repeated) != 1 || repeated[0].Count != int64(len(flood.Records)) || repeated[0].Sender != otherSender+"#security" {
		t.Fatalf("window %+v %v, want the sender's %d rejections counted", repeated, err, len(flood.Records))
	}

	// The same sender's harmless rejection has a window of its own: it neither hides behind
	// the security window nor hides it.
	malformed := base.Records[0]
	malformed.MessageId = "same-sender-malformed"
	malformed.Body = "{not json"
	f.handle(t, events.SQSEvent{Records: []events.SQSMessage{malformed}})
	if evs := f.events(t); len(evs) != 2 {
		t.Fatalf("%d rejection events after the sender's malformed message, want 2", len(evs))
	}

	// Another sender, another window of its own: announced at once.
	other := base.Records[0]
	other.MessageId = "from-another-sender"
	other.Attributes = maps.Clone(other.Attributes)
	other.Attributes["SenderId"] = "AROAOTHERSENDER000000:pod"
	f.handle(t, events.SQSEvent{Records: []events.SQSMessage{other}})
	if evs := f.events(t); len(evs) != 3 {
		t.Fatalf("%d rejection events after a second sender's message, want 3", len(evs))
	}
}

// The ingest stopped after recording a rejection and before announcing it: the redelivery
// announces it (at least once), and a later one announces nothing more.
func TestARejectionRecordedButNotAnnouncedIsAnnouncedOnRedelivery(t *testing.T) {
	f := newFixture(t)
	ev := loadSample(t, "forged-sender.json")
	rec := ev.Records[0]
	if _, err := f.repo.RecordRejection(context.Background(), servicestate.Rejection{
		MessageID: rec.MessageId, Reason: "forged-sender", Security: true, SenderID: otherSender, SentAt: sentAt(rec, sampleNow),
	}); err != nil {
		t.Fatal(err)
	}
	if evs := f.events(t); len(evs) != 0 {
		t.Fatalf("events before the redelivery: %d", len(evs))
	}
	for range 2 {
		f.handle(t, ev)
	}
	if evs := f.events(t); len(evs) != 1 || !strings.Contains(evs[0].Detail, `"security":true`) {
		t.Fatalf("%d events after two redeliveries, want the rejection announced once", len(evs))
	}
}
