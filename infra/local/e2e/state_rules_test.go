package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/byocloud/byoc/infra/local/accounts"
	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/statemsg"
)

// Issue 5's rules on the local cloud: every message goes from a data-plane role's session
// through the front door to the state queue, the event source mapping hands it to the
// stateingest process, which writes to kumo's DynamoDB and puts its events on the vendor bus.

// A poison message in a batch of ten: the nine good ones are applied exactly once, the
// poison is received maxReceiveCount times and lands in the DLQ unchanged, its reason is
// recorded once and announced once.
func TestStatePoisonMessageInABatchOfTen(t *testing.T) {
	st := state(t)
	st.fastRedelivery(t)
	tn := onboard(t)
	exporter := tn.exporter(t)
	ctx := context.Background()

	// Nine services report once (their first report is a transition)...
	setup := shared.record(t)
	var first []string
	want := map[string]int64{}
	for i := range 9 {
		svc := fmt.Sprintf("svc-%d", i)
		first = append(first, encode(t, tn.report(svc, int64(1+i))))
		want[svc] = int64(1 + i)
	}
	st.send(t, exporter, first...)
	awaitDeleted(t, setup, tn.dep.ID, 9)
	st.logsSettled(t)
	historyBefore := len(st.history(t, tn.dep.ID))
	eventsBefore := len(st.tap.events(t, tn.dep.ID))

	// ...then nine steady reports and a poison go out in one SendMessageBatch.
	rec := shared.record(t)
	logMark := shared.logs.size()
	poison := `{"schemaVersion":1,"deploymentId":"` + tn.dep.ID + `","serviceId":"svc-4","sequence":` // cut short
	var batch []string
	for i := range 9 {
		svc := fmt.Sprintf("svc-%d", i)
		want[svc] = int64(10 + i)
		batch = append(batch, encode(t, tn.report(svc, want[svc])))
	}
	batch = slices.Insert(batch, 5, poison)
	ids := st.send(t, exporter, batch...)
	poisonID := ids[5]

	st.awaitStored(t, tn, want)
	dead := st.deadLetters(t, time.Duration(st.maxReceiveCount+3)*redeliveryAfter*time.Second, poison)
	if got := aws.ToString(dead[0].Body); got != poison {
		t.Errorf("the DLQ holds %q, want the poison byte for byte", got)
	}
	st.logsSettled(t)

	// Exactly once: each good message handed to stateingest once and applied once; the
	// poison handed maxReceiveCount times, never deleted.
	handed, deleted := ingestion(rec, tn.dep.ID)
	poisonHanded, poisonDeleted := ingestion(rec, "") // the poison names no deployment: it is cut short
	if handed != 9 || deleted != 9 || poisonHanded != st.maxReceiveCount || poisonDeleted != 0 {
		t.Errorf("stateingest was handed %d messages and deleted %d, and the poison %d times (deleted %d); want 9 handed and deleted once, the poison handed %d times, never deleted",
			handed, deleted, poisonHanded, poisonDeleted, st.maxReceiveCount)
	}
	totals := batchTotals(t, shared.logs.since(logMark))
	if totals["applied"] != 9 || totals["duplicate"]+totals["out-of-order"]+totals["retry"] != 0 || totals["rejected"] != st.maxReceiveCount {
		t.Errorf("stateingest's batches: %v; want 9 applied once, the poison rejected on each of its %d receives", totals, st.maxReceiveCount)
	}
	if n := len(st.history(t, tn.dep.ID)); n != historyBefore {
		t.Errorf("steady reports wrote %d history entries", n-historyBefore)
	}
	stored := st.services(t, tn.dep.ID)
	for i := range 9 {
		svc, at := fmt.Sprintf("svc-%d", i), i
		if i >= 5 {
			at++ // after the poison
		}
		if got := stored[svc]; got.MessageID != ids[at] || got.Health != health.Healthy {
			t.Errorf("%s stores message %s (%s), want %s", svc, got.MessageID, got.Health, ids[at])
		}
	}

	// The reason, recorded once and announced once.
	rejections, err := st.repo.Rejections(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(poison))
	found := 0
	for _, r := range rejections {
		if r.MessageID != poisonID {
			continue
		}
		found++
		if r.Reason != "malformed" || r.Detail == "" || r.Security || r.BodySHA256 != hex.EncodeToString(sum[:]) || r.BodyBytes != len(poison) {
			t.Errorf("rejection record %+v: want reason malformed with its detail and the body's digest", r)
		}
	}
	if found != 1 {
		t.Errorf("%d REJECTED# records for the poison, want 1", found)
	}
	if got := st.tap.rejections(t, poisonID); len(got) != 1 || got[0].Rejection.Reason != "malformed" || got[0].Rejection.Security {
		t.Errorf("rejection events for the poison: %v; want one, reason malformed", got)
	}
	if got := alerts(st.tap.events(t, tn.dep.ID)[eventsBefore:]); len(got) != 0 {
		t.Errorf("steady reports raised alerts: %v", got)
	}
}

// Duplicates and older reports change nothing: the stored state stays the newest, and no
// history entry or alert follows.
func TestStateDuplicatesAndOutOfOrderChangeNothing(t *testing.T) {
	st := state(t)
	tn := onboard(t)
	exporter := tn.exporter(t)
	setup := shared.record(t)
	st.send(t, exporter, encode(t, tn.report("svc-a", 1)), encode(t, tn.report("svc-b", 2)))
	st.send(t, exporter, encode(t, tn.report("svc-a", 3)))
	awaitDeleted(t, setup, tn.dep.ID, 3)
	st.logsSettled(t)
	st.awaitStored(t, tn, map[string]int64{"svc-a": 3, "svc-b": 2})
	if h := st.deploymentHealth(t, tn.dep.ID); h != health.Healthy {
		t.Fatalf("deployment %s after its first reports", h)
	}
	before := st.services(t, tn.dep.ID)
	history := len(st.history(t, tn.dep.ID))
	events := len(st.tap.events(t, tn.dep.ID))

	rec := shared.record(t)
	logMark := shared.logs.size()
	older := tn.report("svc-a", 2)
	older.Status, older.Replicas.Ready = statemsg.StatusUnhealthy, 0 // would raise alerts if applied
	st.send(t, exporter,
		encode(t, tn.report("svc-a", 3)), // the stored report again
		encode(t, older),                 // older than the stored one
		encode(t, tn.report("svc-b", 2)), // the stored report again
		encode(t, tn.report("svc-b", 1)), // older
	)
	awaitDeleted(t, rec, tn.dep.ID, 4)
	st.logsSettled(t)

	after := st.services(t, tn.dep.ID)
	for id, b := range before {
		a := after[id]
		if a.OrderKey != b.OrderKey || a.Health != b.Health || a.MessageID != b.MessageID || !a.LastSeenAt.Equal(b.LastSeenAt) {
			t.Errorf("%s changed: %+v -> %+v", id, b, a)
		}
	}
	if h := st.deploymentHealth(t, tn.dep.ID); h != health.Healthy {
		t.Errorf("deployment %s", h)
	}
	if n := len(st.history(t, tn.dep.ID)); n != history {
		t.Errorf("%d history entries written", n-history)
	}
	if got := st.tap.events(t, tn.dep.ID); len(got) != events {
		t.Errorf("events raised: %v", got[events:])
	}
	totals := batchTotals(t, shared.logs.since(logMark))
	if totals["duplicate"] != 2 || totals["out-of-order"] != 2 || totals["applied"]+totals["rejected"]+totals["retry"] != 0 {
		t.Errorf("stateingest's batches: %v; want 2 duplicates and 2 out of order", totals)
	}
	if totals["dynamodbWrites"] != 0 {
		t.Errorf("duplicates and older reports made %d DynamoDB writes, want none", totals["dynamodbWrites"])
	}
}

// A message naming deployment A sent by deployment B's exporter is refused as a forged
// sender, audited as a security event and kept in the DLQ; A's state is untouched. A role
// the queue policy does not admit cannot send at all.
func TestStateForgedSenderIsRejected(t *testing.T) {
	st := state(t)
	st.fastRedelivery(t)
	a, b := onboard(t), onboard(t)
	ctx := context.Background()
	setup := shared.record(t)
	st.send(t, a.exporter(t), encode(t, a.report("svc-a", 1)))
	awaitDeleted(t, setup, a.dep.ID, 1)
	if h := st.deploymentHealth(t, a.dep.ID); h != health.Healthy {
		t.Fatalf("deployment A is %s after its first report", h)
	}
	before := st.services(t, a.dep.ID)
	history := len(st.history(t, a.dep.ID))
	alertsBefore := len(alerts(st.tap.events(t, a.dep.ID)))

	forged := a.report("svc-a", 1000)
	forged.Status, forged.Replicas.Ready = statemsg.StatusUnhealthy, 0
	body := encode(t, forged)
	id := st.send(t, b.exporter(t), body)[0]
	dead := st.deadLetters(t, time.Duration(st.maxReceiveCount+3)*redeliveryAfter*time.Second, body)
	if aws.ToString(dead[0].Body) != body {
		t.Errorf("DLQ body changed")
	}

	rejections, err := st.repo.Rejections(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, r := range rejections {
		if r.MessageID != id {
			continue
		}
		found++
		if r.Reason != "forged-sender" || !r.Security || r.ClaimedDeploymentID != a.dep.ID || !strings.HasPrefix(r.SenderID, accounts.RoleID(b.exporterRole)+":") {
			t.Errorf("rejection %+v: want forged-sender, security, claiming %s, sent by %s's exporter", r, a.dep.ID, b.dep.ID)
		}
	}
	if found != 1 {
		t.Errorf("%d rejection records for the forged message, want 1", found)
	}
	events := st.tap.rejections(t, id)
	if len(events) != 1 || events[0].Rejection.Reason != "forged-sender" || !events[0].Rejection.Security || events[0].Rejection.ClaimedDeploymentID != a.dep.ID {
		t.Errorf("rejection events %v: want one security event", events)
	}

	after := st.services(t, a.dep.ID)
	if len(after) != len(before) || after["svc-a"].OrderKey != before["svc-a"].OrderKey || after["svc-a"].Health != health.Healthy {
		t.Errorf("A's services changed: %+v -> %+v", before, after)
	}
	if h := st.deploymentHealth(t, a.dep.ID); h != health.Healthy {
		t.Errorf("A's health %s", h)
	}
	if n := len(st.history(t, a.dep.ID)); n != history {
		t.Errorf("A's history grew by %d", n-history)
	}
	if n := len(alerts(st.tap.events(t, a.dep.ID))); n != alertsBefore {
		t.Errorf("A got %d alerts", n-alertsBefore)
	}

	// Not admitted by the state queue's policy: another role of A's account (its agent), A's
	// account root, and an account that is no customer.
	for who, cfg := range map[string]aws.Config{
		"A's agent role":     sessionConfig(t, a.agentRole, "agent"),
		"A's account root":   shared.cloud.ConfigAs(a.customer),
		"an unknown account": shared.cloud.ConfigAs("123456789012"),
	} {
		_, err := sqs.NewFromConfig(cfg).SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(st.queueURL), MessageBody: aws.String(encode(t, a.report("svc-a", 2000)))})
		if !isAccessDenied(err) {
			t.Errorf("SendMessage to the state queue as %s: %v, want AccessDenied", who, err)
		}
	}
}

// The command channel: only the agent role's sessions may receive; any other principal,
// even another role of the same customer account or the vendor itself, is refused.
func TestCommandChannelOnlyTheAgentReads(t *testing.T) {
	st := state(t)
	tn := onboard(t)
	ctx := context.Background()
	sender := channelSender(st)
	cmd := commandFor(tn, "svc-a", "cmd-channel-1", "25.1.3")
	if _, err := sender.Send(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	url := channelURL(t, tn)
	for who, cfg := range map[string]aws.Config{
		"the exporter role (same account)": sessionConfig(t, tn.exporterRole, "state-exporter"),
		"the customer's account root":      shared.cloud.ConfigAs(tn.customer),
		"the vendor account":               shared.cloud.Config(),
	} {
		out, err := sqs.NewFromConfig(cfg).ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10})
		if !isAccessDenied(err) {
			t.Errorf("ReceiveMessage as %s: %v (%d messages), want AccessDenied", who, err, len(msgs(out)))
		}
	}
	agent := sqs.NewFromConfig(sessionConfig(t, tn.agentRole, "agent"))
	out, err := agent.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
	if err != nil {
		t.Fatalf("the agent cannot receive: %v", err)
	}
	if len(out.Messages) != 1 || !strings.Contains(aws.ToString(out.Messages[0].Body), `"id":"`+cmd.ID+`"`) {
		t.Errorf("the agent received %+v, want the command", out.Messages)
	}
}

func msgs(out *sqs.ReceiveMessageOutput) []string {
	if out == nil {
		return nil
	}
	var ids []string
	for _, m := range out.Messages {
		ids = append(ids, aws.ToString(m.MessageId))
	}
	return ids
}
