package main

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/statemsg"
)

// The sample events in events/state are generated from this file, so they follow the
// contract as it is: `go test ./functions/stateingest -run TestSamples -update` rewrites
// them, and TestSamples fails when they drift.
var update = flag.Bool("update", false, "rewrite events/state from the sample definitions")

const samplesDir = "../../events/state"

// dataPlanesFile holds the deployments the samples speak for, as `byoc-local invoke
// --data-planes` reads them (scenario.SampleDataPlanes): `make invoke` registers them before
// it runs a service-state function.
const dataPlanesFile = "../../events/dataplanes.json"

// The deployments the samples speak for. Tests register them; so does `make invoke`, from
// dataPlanesFile.
var (
	sampleDeployment = servicestate.DataPlane{
		DeploymentID: "dep7f3a", AccountID: "111111111111",
		ExporterRoleARN: "arn:aws:iam::111111111111:role/clickhouse-cloud-dep7f3a-state-exporter",
		ExporterRoleID:  "AROA3XFRBF23STATEXP7F",
		AgentRoleARN:    "arn:aws:iam::111111111111:role/clickhouse-cloud-dep7f3a-agent",
	}
	otherDeployment = servicestate.DataPlane{
		DeploymentID: "dep9c41", AccountID: "222222222222",
		ExporterRoleARN: "arn:aws:iam::222222222222:role/clickhouse-cloud-dep9c41-state-exporter",
		ExporterRoleID:  "AROA3XFRBF23STATEXP9C",
		AgentRoleARN:    "arn:aws:iam::222222222222:role/clickhouse-cloud-dep9c41-agent",
	}
	sampleSender = sampleDeployment.ExporterRoleID + ":state-exporter-5d8c9"
	otherSender  = otherDeployment.ExporterRoleID + ":state-exporter-b71e2"

	sampleEpoch    = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC).UnixMilli()
	sampleObserved = time.Date(2026, 11, 25, 8, 50, 0, 0, time.UTC)
	// sampleNow is the clock of tests that replay samples: after every sample was sent.
	sampleNow = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
)

const stateQueueARN = "arn:aws:sqs:us-east-1:000000000000:byoc-state"

func sampleReport(svc string, seq int64) statemsg.Message {
	return statemsg.Message{
		SchemaVersion: statemsg.Version1, DeploymentID: sampleDeployment.DeploymentID, ServiceID: svc,
		Hostname:   svc + ".mhp0y4dmph.us-east-1.aws.byoc.clickhouse.cloud",
		ObservedAt: sampleObserved.Add(time.Duration(seq) * time.Second), ExporterEpoch: sampleEpoch, Sequence: seq,
		Status:   statemsg.StatusHealthy,
		Versions: statemsg.Versions{ClickHouse: "24.8.1.2684", Operator: "0.25.3", Kubernetes: "1.30"},
		Replicas: statemsg.Replicas{Ready: 3, Desired: 3}, StorageBytes: 52613349376,
	}
}

func body(t testing.TB, m statemsg.Message) string {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// record wraps a body as the SQS event source delivers it.
func record(n int, body, sender string) events.SQSMessage {
	sent := sampleObserved.Add(time.Duration(n) * time.Second).Add(200 * time.Millisecond).UnixMilli()
	sum := md5.Sum([]byte(body))
	attrs := map[string]string{
		"ApproximateReceiveCount":          "1",
		"SentTimestamp":                    fmt.Sprint(sent),
		"ApproximateFirstReceiveTimestamp": fmt.Sprint(sent + 35),
	}
	if sender != "" {
		attrs["SenderId"] = sender
	}
	return events.SQSMessage{
		MessageId:         fmt.Sprintf("5e0c6a2f-1b7d-4c39-9a8e-%012d", n),
		ReceiptHandle:     fmt.Sprintf("AQEBzbVv5kS1Yd0rQ2m0cPZ3byocSample%04dReceiptHandle", n),
		Body:              body,
		Md5OfBody:         hex.EncodeToString(sum[:]),
		Attributes:        attrs,
		MessageAttributes: map[string]events.SQSMessageAttribute{},
		EventSourceARN:    stateQueueARN,
		EventSource:       "aws:sqs",
		AWSRegion:         "us-east-1",
	}
}

func event(recs ...events.SQSMessage) events.SQSEvent { return events.SQSEvent{Records: recs} }

// samples returns every sample event, by file name.
func samples(t testing.TB) map[string]events.SQSEvent {
	healthy := sampleReport("h5ju65kv87", 101)
	degraded := sampleReport("h5ju65kv87", 102)
	degraded.Replicas.Ready, degraded.Warnings = 2, 1
	unhealthy := sampleReport("h5ju65kv87", 103)
	unhealthy.Status, unhealthy.Replicas.Ready, unhealthy.Errors = statemsg.StatusUnhealthy, 0, 3
	stopped := sampleReport("h5ju65kv87", 104)
	stopped.Status, stopped.Replicas = statemsg.StatusStopped, statemsg.Replicas{}
	idle := sampleReport("h5ju65kv87", 105)
	idle.Status, idle.Replicas.Ready = statemsg.StatusIdle, 0
	acked := sampleReport("h5ju65kv87", 106)
	acked.Versions.ClickHouse = "24.9.2.42"
	acked.Commands = []statemsg.CommandAck{{ID: "cmd-upgrade-2449", Status: statemsg.AckSucceeded}}
	restarted := sampleReport("h5ju65kv87", 1)
	restarted.ExporterEpoch = sampleEpoch + 3_600_000
	restarted.ObservedAt = sampleObserved.Add(200 * time.Second)

	unknownVersion := strings.Replace(body(t, sampleReport("h5ju65kv87", 120)), `"schemaVersion":1`, `"schemaVersion":2`, 1)
	invalid := sampleReport("h5ju65kv87", 121)
	invalid.Status, invalid.Sequence, invalid.Hostname = "stale", 0, "not a host"
	oversized := sampleReport("h5ju65kv87", 122)
	oversized.Hostname = "h5ju65kv87.example.com"
	oversizedBody := strings.Replace(body(t, oversized), `"storageBytes"`, `"padding":"`+strings.Repeat("x", statemsg.MaxBytes)+`","storageBytes"`, 1)
	forged := sampleReport("h5ju65kv87", 130) // claims dep7f3a, sent by dep9c41's exporter
	unknownDep := sampleReport("h5ju65kv87", 131)
	unknownDep.DeploymentID = "dep0000"

	batch := make([]events.SQSMessage, 10)
	for i := range batch {
		m := sampleReport(fmt.Sprintf("svc-%02d", i), int64(200+i))
		batch[i] = record(200+i, body(t, m), sampleSender)
	}
	batch[4] = record(204, `{"schemaVersion":1,"deploymentId":"dep7f3a","serviceId":"svc-04",`, sampleSender)

	return map[string]events.SQSEvent{
		"healthy.json":             event(record(101, body(t, healthy), sampleSender)),
		"degraded.json":            event(record(102, body(t, degraded), sampleSender)),
		"unhealthy.json":           event(record(103, body(t, unhealthy), sampleSender)),
		"stopped.json":             event(record(104, body(t, stopped), sampleSender)),
		"idle.json":                event(record(105, body(t, idle), sampleSender)),
		"command-ack.json":         event(record(106, body(t, acked), sampleSender)),
		"restarted-exporter.json":  event(record(107, body(t, restarted), sampleSender)),
		"duplicate.json":           event(record(101, body(t, healthy), sampleSender), record(111, body(t, healthy), sampleSender)),
		"out-of-order.json":        event(record(103, body(t, unhealthy), sampleSender), record(102, body(t, degraded), sampleSender)),
		"malformed.json":           event(record(119, `{"schemaVersion":1,"deploymentId":"dep7f3a","serviceId":`, sampleSender)),
		"unknown-version.json":     event(record(120, unknownVersion, sampleSender)),
		"invalid.json":             event(record(121, body(t, invalid), sampleSender)),
		"oversized.json":           event(record(122, oversizedBody, sampleSender)),
		"forged-sender.json":       event(record(130, body(t, forged), otherSender)),
		"no-sender.json":           event(record(132, body(t, sampleReport("h5ju65kv87", 132)), "")),
		"unknown-deployment.json":  event(record(131, body(t, unknownDep), sampleSender)),
		"batch-of-ten-poison.json": event(batch...),
	}
}

func encodeSample(t testing.TB, ev events.SQSEvent) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		t.Fatal(err)
	}
	// aws-lambda-go writes an empty md5OfMessageAttributes; SQS leaves it out when a
	// message has no attributes.
	return bytes.ReplaceAll(buf.Bytes(), []byte("      \"md5OfMessageAttributes\": \"\",\n"), nil)
}

// loadSample reads a sample event file as the Lambda runtime would decode it.
func loadSample(t testing.TB, name string) events.SQSEvent {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(samplesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.SQSEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return ev
}

// encodeDataPlanes writes the sample deployments' data-plane records as provisioning
// registers them (UpdatedAt is set when they are registered).
func encodeDataPlanes(t testing.TB) []byte {
	t.Helper()
	type record struct {
		DeploymentID    string `json:"deploymentId"`
		AccountID       string `json:"accountId"`
		ExporterRoleARN string `json:"exporterRoleArn"`
		ExporterRoleID  string `json:"exporterRoleId"`
		AgentRoleARN    string `json:"agentRoleArn"`
	}
	var records []record
	for _, d := range []servicestate.DataPlane{sampleDeployment, otherDeployment} {
		records = append(records, record{d.DeploymentID, d.AccountID, d.ExporterRoleARN, d.ExporterRoleID, d.AgentRoleARN})
	}
	b, err := json.MarshalIndent(records, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func TestSamples(t *testing.T) {
	want := samples(t)
	if *update {
		if err := os.WriteFile(dataPlanesFile, encodeDataPlanes(t), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(samplesDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, ev := range want {
			if err := os.WriteFile(filepath.Join(samplesDir, name), encodeSample(t, ev), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if raw, err := os.ReadFile(dataPlanesFile); err != nil || !bytes.Equal(raw, encodeDataPlanes(t)) {
		t.Errorf("%s differs from the sample deployments (run with -update): %v", dataPlanesFile, err)
	}
	entries, err := os.ReadDir(samplesDir)
	if err != nil {
		t.Fatal(err)
	}
	var onDisk []string
	for _, e := range entries {
		onDisk = append(onDisk, e.Name())
	}
	var names []string
	for name := range want {
		names = append(names, name)
	}
	slices.Sort(names)
	if !slices.Equal(onDisk, names) {
		t.Fatalf("events/state holds %v, the definitions %v (run with -update)", onDisk, names)
	}
	for _, name := range names {
		raw, err := os.ReadFile(filepath.Join(samplesDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, encodeSample(t, want[name])) {
			t.Errorf("%s differs from its definition (run with -update)", name)
		}
	}
}

// Each sample's bodies are judged as their names say.
func TestSampleBodiesFollowTheContract(t *testing.T) {
	reasons := map[string]string{
		"malformed.json": "malformed", "unknown-version.json": "unknown-version", "invalid.json": "invalid", "oversized.json": "oversized",
	}
	for name, ev := range samples(t) {
		for i, rec := range ev.Records {
			if sum := md5.Sum([]byte(rec.Body)); hex.EncodeToString(sum[:]) != rec.Md5OfBody {
				t.Errorf("%s record %d: md5OfBody does not match the body", name, i)
			}
			_, err := statemsg.Parse([]byte(rec.Body), sampleNow)
			want := reasons[name]
			if name == "batch-of-ten-poison.json" && i == 4 {
				want = "malformed"
			}
			if got := statemsg.Reason(err); got != want {
				t.Errorf("%s record %d: reason %q, want %q (%v)", name, i, got, want, err)
			}
		}
	}
}
