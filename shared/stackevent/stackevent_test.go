package stackevent_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	"github.com/byocloud/byoc/shared/stackevent"
)

func sample(t *testing.T, name string) events.CloudWatchEvent {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.CloudWatchEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return ev
}

func TestParseSamples(t *testing.T) {
	const infraID = "arn:aws:cloudformation:us-west-2:111122223333:stack/clickhouse-cloud-k3q9x2m7p4w8z-infra/5b3c0a40-9f1e-11ef-8f6a-0a1b2c3d4e5f"
	cases := []struct {
		file                           string
		account, region, name, status  string
		requestID, reason, wantStackID string
	}{
		{"onboard/bootstrap-create-complete.json", "111122223333", "us-west-2", "clickhouse-byoc-bootstrap", "CREATE_COMPLETE", "Console-CreateStack-7f59c3cf-00d2-40c7-b2ff-e75db0987002", "", ""},
		{"onboard/bootstrap-rollback-complete.json", "111122223333", "us-west-2", "clickhouse-byoc-bootstrap", "ROLLBACK_COMPLETE", "Console-CreateStack-7f59c3cf-00d2-40c7-b2ff-e75db0987002", "", ""},
		{"onboard/unknown-account.json", "444455556666", "us-west-2", "clickhouse-byoc-bootstrap", "CREATE_COMPLETE", "Console-CreateStack-7f59c3cf-00d2-40c7-b2ff-e75db0987002", "", ""},
		{"onboard/wrong-stack-name.json", "111122223333", "us-west-2", "my-other-stack", "CREATE_COMPLETE", "Console-CreateStack-7f59c3cf-00d2-40c7-b2ff-e75db0987002", "", ""},
		{"stackevents/infra-create-complete.json", "111122223333", "us-west-2", "clickhouse-cloud-k3q9x2m7p4w8z-infra", "CREATE_COMPLETE", "byoc-k3q9x2m7p4w8z-1-create", "", infraID},
		{"stackevents/infra-create-failed.json", "111122223333", "us-west-2", "clickhouse-cloud-k3q9x2m7p4w8z-infra", "CREATE_FAILED", "byoc-k3q9x2m7p4w8z-1-create", "The following resource(s) failed to create: [EksCluster]. ", infraID},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			ev := sample(t, c.file)
			got, err := stackevent.Parse(ev)
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != ev.ID || got.Stack.AccountID != c.account || got.Stack.Region != c.region ||
				got.Stack.Name != c.name || got.Status != c.status || got.RequestID != c.requestID || got.Reason != c.reason {
				t.Fatalf("Parse = %+v, want account %s region %s name %s status %s token %s reason %q",
					got, c.account, c.region, c.name, c.status, c.requestID, c.reason)
			}
			if c.wantStackID != "" && got.Stack.ID != c.wantStackID {
				t.Fatalf("stack id %s, want %s", got.Stack.ID, c.wantStackID)
			}
			if got.Stack.Partition != "aws" {
				t.Fatalf("partition %q", got.Stack.Partition)
			}
		})
	}
}

// A duplicate is the same event delivered twice: EventBridge delivers at least once, with the
// same id, which is what makes the id an idempotency key.
func TestDuplicateSamplesCarryTheSameID(t *testing.T) {
	for _, pair := range [][2]string{
		{"onboard/bootstrap-create-complete.json", "onboard/bootstrap-create-complete-duplicate.json"},
		{"stackevents/infra-create-complete.json", "stackevents/infra-create-complete-duplicate.json"},
	} {
		a, b := sample(t, pair[0]), sample(t, pair[1])
		if a.ID != b.ID || string(a.Detail) != string(b.Detail) {
			t.Fatalf("%s and %s differ", pair[0], pair[1])
		}
	}
}

// EventBridge writes the envelope's account (the account that put the event); the detail is
// the sender's. An event about another account's stack is forged, and says who sent it.
func TestParseRefusesAnEventAboutAnotherAccountsStack(t *testing.T) {
	ev := sample(t, "stackevents/infra-create-complete.json")
	ev.AccountID = "999988887777"
	_, err := stackevent.Parse(ev)
	var forged *stackevent.ForgedError
	if !errors.As(err, &forged) {
		t.Fatalf("err = %v, want a *ForgedError", err)
	}
	if forged.SenderAccount != "999988887777" || forged.StackAccount != "111122223333" || errors.Is(err, stackevent.ErrMalformed) {
		t.Fatalf("forged = %+v (malformed: %v)", forged, errors.Is(err, stackevent.ErrMalformed))
	}
}

func TestParseRejectsMalformedEvents(t *testing.T) {
	base := "stackevents/infra-create-complete.json"
	cases := []struct {
		name   string
		mutate func(*events.CloudWatchEvent)
		field  string
		rule   string
	}{
		{"sample stackevents/malformed.json", func(ev *events.CloudWatchEvent) { *ev = sample(t, "stackevents/malformed.json") }, "detail.stack-id", "is not an ARN"},
		{"sample onboard/malformed.json", func(ev *events.CloudWatchEvent) { *ev = sample(t, "onboard/malformed.json") }, "detail.stack-id", "must be present"},
		{"empty id", func(ev *events.CloudWatchEvent) { ev.ID = "" }, "id", "must not be empty"},
		{"other source", func(ev *events.CloudWatchEvent) { ev.Source = "aws.ec2" }, "source", `must be "aws.cloudformation"`},
		{"resource event", func(ev *events.CloudWatchEvent) { ev.DetailType = "CloudFormation Resource Status Change" }, "detail-type", "must be"},
		{"no detail", func(ev *events.CloudWatchEvent) { ev.Detail = nil }, "detail", "must be present"},
		{"detail not an object", func(ev *events.CloudWatchEvent) { ev.Detail = json.RawMessage(`"x"`) }, "detail", "must be a JSON object"},
		{"not cloudformation", func(ev *events.CloudWatchEvent) {
			ev.Detail = replace(t, ev.Detail, "arn:aws:cloudformation:", "arn:aws:s3:")
		}, "detail.stack-id", "is not a CloudFormation ARN"},
		{"short account", func(ev *events.CloudWatchEvent) {
			ev.Detail = replace(t, ev.Detail, ":111122223333:", ":11112222333:")
		}, "detail.stack-id", "12-digit account"},
		{"no stack uuid", func(ev *events.CloudWatchEvent) {
			ev.Detail = replace(t, ev.Detail, "/5b3c0a40-9f1e-11ef-8f6a-0a1b2c3d4e5f", "")
		}, "detail.stack-id", "stack/<name>/<id>"},
		{"changeset arn", func(ev *events.CloudWatchEvent) {
			ev.Detail = replace(t, ev.Detail, ":stack/", ":changeSet/")
		}, "detail.stack-id", "stack/<name>/<id>"},
		{"no status", func(ev *events.CloudWatchEvent) {
			ev.Detail = replace(t, ev.Detail, `"status": "CREATE_COMPLETE",`, "")
		}, "detail.status-details.status", "must be present"},
		{"unknown status", func(ev *events.CloudWatchEvent) {
			ev.Detail = replace(t, ev.Detail, "CREATE_COMPLETE", "CREATE_DONE")
		}, "detail.status-details.status", "not a CloudFormation stack status"},
		{"resources name another stack", func(ev *events.CloudWatchEvent) {
			ev.Resources = []string{"arn:aws:cloudformation:us-west-2:111122223333:stack/other/1"}
		}, "resources", "must contain detail.stack-id"},
		{"envelope region differs", func(ev *events.CloudWatchEvent) { ev.Region = "eu-west-1" }, "region", "differs"},
		{"no envelope account", func(ev *events.CloudWatchEvent) { ev.AccountID = "" }, "account", "12-digit account that put the event"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := sample(t, base)
			c.mutate(&ev)
			_, err := stackevent.Parse(ev)
			var m *stackevent.MalformedError
			if !errors.As(err, &m) || !errors.Is(err, stackevent.ErrMalformed) {
				t.Fatalf("err = %v, want a MalformedError", err)
			}
			if m.Field != c.field || !strings.Contains(m.Rule, c.rule) {
				t.Fatalf("field %q rule %q, want field %q rule containing %q", m.Field, m.Rule, c.field, c.rule)
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Fatalf("message %q does not name the field", err)
			}
		})
	}
}

func replace(t *testing.T, raw json.RawMessage, old, new string) json.RawMessage {
	t.Helper()
	if !strings.Contains(string(raw), old) {
		t.Fatalf("sample has no %q", old)
	}
	return json.RawMessage(strings.Replace(string(raw), old, new, 1))
}

// The table must name exactly the statuses of the CloudFormation API, or a new status would
// be reported as malformed and an event lost.
func TestStatusTableMatchesTheCloudFormationAPI(t *testing.T) {
	var api []string
	for _, s := range cfntypes.StackStatus("").Values() {
		api = append(api, string(s))
		if !stackevent.Known(string(s)) {
			t.Errorf("status %s of the API is unknown here", s)
		}
	}
	for _, s := range []string{"CREATE_COMPLETE", "ROLLBACK_COMPLETE", "DELETE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"} {
		if !slices.Contains(api, s) {
			t.Fatalf("API list lacks %s", s)
		}
	}
	if stackevent.Known("CREATE_DONE") {
		t.Fatal("invented status is known")
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		status  string
		op      stackevent.Operation
		outcome stackevent.Outcome
	}{
		{"CREATE_IN_PROGRESS", stackevent.Create, stackevent.InProgress},
		{"ROLLBACK_IN_PROGRESS", stackevent.Create, stackevent.InProgress},
		{"CREATE_COMPLETE", stackevent.Create, stackevent.Succeeded},
		{"CREATE_FAILED", stackevent.Create, stackevent.Failed},
		{"ROLLBACK_COMPLETE", stackevent.Create, stackevent.Failed},
		{"ROLLBACK_FAILED", stackevent.Create, stackevent.Failed},
		{"UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", stackevent.Update, stackevent.InProgress},
		{"UPDATE_COMPLETE", stackevent.Update, stackevent.Succeeded},
		{"UPDATE_ROLLBACK_COMPLETE", stackevent.Update, stackevent.Failed},
		{"UPDATE_ROLLBACK_FAILED", stackevent.Update, stackevent.Failed},
		{"DELETE_IN_PROGRESS", stackevent.Delete, stackevent.InProgress},
		{"DELETE_COMPLETE", stackevent.Delete, stackevent.Succeeded},
		{"DELETE_FAILED", stackevent.Delete, stackevent.Failed},
	}
	for _, c := range cases {
		op, outcome, ok := stackevent.Classify(c.status)
		if !ok || op != c.op || outcome != c.outcome {
			t.Errorf("Classify(%s) = %s %s %v, want %s %s", c.status, op, outcome, ok, c.op, c.outcome)
		}
		if stackevent.Terminal(c.status) != (c.outcome != stackevent.InProgress) {
			t.Errorf("Terminal(%s) wrong", c.status)
		}
		if stackevent.IsFailed(c.status) != (c.outcome == stackevent.Failed) {
			t.Errorf("IsFailed(%s) wrong", c.status)
		}
	}
	if _, _, ok := stackevent.Classify("NOPE"); ok {
		t.Fatal("unknown status classified")
	}
}

// Ends protects a waiter from a late event of an earlier operation on the same stack.
func TestEndsOnlyMatchesTheAwaitedOperation(t *testing.T) {
	if stackevent.Ends(stackevent.Delete, "ROLLBACK_COMPLETE") {
		t.Fatal("a create's ROLLBACK_COMPLETE ended a delete wait")
	}
	if !stackevent.Ends(stackevent.Delete, "DELETE_COMPLETE") || !stackevent.Ends(stackevent.Create, "ROLLBACK_COMPLETE") {
		t.Fatal("own terminal status did not end the wait")
	}
	if stackevent.Ends(stackevent.Create, "CREATE_IN_PROGRESS") {
		t.Fatal("in-progress status ended a wait")
	}
	if !stackevent.Ends("", "UPDATE_ROLLBACK_COMPLETE") || stackevent.Ends("", "UPDATE_IN_PROGRESS") {
		t.Fatal("empty operation must accept any terminal status and only those")
	}
}

func TestResultOf(t *testing.T) {
	cases := map[string]string{
		"CREATE_COMPLETE":                     stackevent.OutcomeSucceeded,
		"UPDATE_COMPLETE":                     stackevent.OutcomeSucceeded,
		"DELETE_COMPLETE":                     stackevent.OutcomeDeleted,
		"ROLLBACK_COMPLETE":                   stackevent.OutcomeFailed,
		"CREATE_FAILED":                       stackevent.OutcomeFailed,
		"UPDATE_ROLLBACK_COMPLETE":            stackevent.OutcomeFailed,
		"DELETE_FAILED":                       stackevent.OutcomeFailed,
		"CREATE_IN_PROGRESS":                  stackevent.OutcomeWaiting,
		"UPDATE_COMPLETE_CLEANUP_IN_PROGRESS": stackevent.OutcomeWaiting,
	}
	for status, want := range cases {
		r := stackevent.ResultOf("arn", status, "why")
		if r.Outcome != want || r.Status != status || r.StackID != "arn" || r.Reason != "why" {
			t.Errorf("ResultOf(%s) = %+v, want outcome %s", status, r, want)
		}
	}
}

// The workflow selects these fields by JSONPath; a missing field would fail the execution.
func TestResultAlwaysEncodesEveryField(t *testing.T) {
	raw, _ := json.Marshal(stackevent.Result{})
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	for _, k := range []string{"stackId", "status", "reason", "outcome"} {
		if _, ok := m[k]; !ok {
			t.Errorf("field %s omitted", k)
		}
	}
}

func TestIsStackStatusChange(t *testing.T) {
	if !stackevent.IsStackStatusChange(sample(t, "stackevents/infra-create-complete.json")) {
		t.Fatal("a stack event was not recognised")
	}
	if stackevent.IsStackStatusChange(sample(t, "stackevents/resource-status-change.json")) {
		t.Fatal("a resource event was taken for a stack event")
	}
	ev := sample(t, "stackevents/infra-create-complete.json")
	ev.Source = "byoc.test"
	if stackevent.IsStackStatusChange(ev) {
		t.Fatal("another source was accepted")
	}
}

// Every event a function receives is parsed first.
func BenchmarkParse(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "events", "stackevents", "infra-create-complete.json"))
	if err != nil {
		b.Fatal(err)
	}
	var ev events.CloudWatchEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := stackevent.Parse(ev); err != nil {
			b.Fatal(err)
		}
	}
}
