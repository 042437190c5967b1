package statemsg

import (
	"encoding/json"
	"errors"
	"github.com/byocloud/byoc/shared/settings"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

func valid() Message {
	return Message{
		SchemaVersion: Version1,
		DeploymentID:  "dep7f3a",
		ServiceID:     "h5ju65kv87",
		Hostname:      "h5ju65kv87.mhp0y4dmph.us-west-2.aws.byoc.clickhouse.cloud",
		ObservedAt:    now.Add(-10 * time.Second),
		ExporterEpoch: 1764061200000,
		Sequence:      42,
		Status:        StatusHealthy,
		Versions:      Versions{ClickHouse: "24.8.1.2684", Operator: "0.25.3", Kubernetes: "1.30"},
		Replicas:      Replicas{Ready: 3, Desired: 3},
		StorageBytes:  1 << 30,
	}
}

func encode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseRoundTrip(t *testing.T) {
	m := valid()
	m.Commands = []CommandAck{{ID: "cmd-1", Status: AckSucceeded}, {ID: "cmd-2", Status: AckFailed, Detail: "image pull failed"}}
	body, err := Encode(m, now)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(body, now)
	if err != nil {
		t.Fatal(err)
	}
	if got.DeploymentID != m.DeploymentID || got.Sequence != 42 || !got.ObservedAt.Equal(m.ObservedAt) ||
		got.Versions != m.Versions || got.Replicas != m.Replicas || len(got.Commands) != 2 || got.Commands[1].Detail != "image pull failed" {
		t.Fatalf("round trip changed the message: %+v", got)
	}
}

func TestEncodeFillsVersion(t *testing.T) {
	m := valid()
	m.SchemaVersion = 0
	body, err := Encode(m, now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `"schemaVersion":1`) {
		t.Fatalf("body lacks the version: %s", body)
	}
}

func TestParseRejections(t *testing.T) {
	withField := func(field string, value any) []byte {
		var obj map[string]any
		if err := json.Unmarshal(encode(t, valid()), &obj); err != nil {
			t.Fatal(err)
		}
		if value == nil {
			delete(obj, field)
		} else {
			obj[field] = value
		}
		return encode(t, obj)
	}
	cases := []struct {
		name    string
		body    []byte
		want    error
		mention string
	}{
		{"oversized", []byte(`{"schemaVersion":1,"pad":"` + strings.Repeat("x", MaxBytes) + `"}`), ErrOversized, "limit is 16384"},
		{"not json", []byte(`{"schemaVersion":1,`), ErrMalformed, "not a JSON object"},
		{"json array", []byte(`[1,2]`), ErrMalformed, "not a JSON object"},
		{"no version", withField("schemaVersion", nil), ErrMalformed, "schemaVersion: required"},
		{"version not integer", withField("schemaVersion", "1"), ErrMalformed, "schemaVersion: must be an integer"},
		{"unknown version", withField("schemaVersion", 2), ErrUnknownVersion, "schemaVersion 2"},
		{"unknown field", withField("serviceID", "x"), ErrMalformed, `unknown field "serviceID"`},
		{"wrong type", withField("sequence", "42"), ErrMalformed, "sequence"},
		{"trailing data", append(encode(t, valid()), []byte(` {}`)...), ErrMalformed, "not a JSON object"},
		{"nested unknown field", []byte(strings.Replace(string(encode(t, valid())), `"ready"`, `"Ready"`, 1)), ErrMalformed, `unknown field "replicas.Ready"`},
		{"ack unknown field", []byte(strings.Replace(string(encode(t, valid())), `"storageBytes"`, `"commands":[{"id":"c1","status":"accepted","ID":"c2"}],"storageBytes"`, 1)), ErrMalformed, `unknown field "commands[0].ID"`},
		{"commands not array", []byte(strings.Replace(string(encode(t, valid())), `"storageBytes"`, `"commands":{"id":"c1"},"storageBytes"`, 1)), ErrMalformed, "commands: must be an array"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.body, now)
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.mention) {
				t.Fatalf("error %q does not mention %q", err, c.mention)
			}
		})
	}
}

func TestValidateNamesFieldAndRule(t *testing.T) {
	cases := []struct {
		field string
		edit  func(*Message)
		rule  string
	}{
		{"deploymentId", func(m *Message) { m.DeploymentID = "" }, settings.DeploymentIDRule},
		{"deploymentId", func(m *Message) { m.DeploymentID = "dep/../x" }, settings.DeploymentIDRule},
		// The infrastructure template's rule: no '-', no capitals, at most 20 characters.
		{"deploymentId", func(m *Message) { m.DeploymentID = "dep-7f3a" }, settings.DeploymentIDRule},
		{"deploymentId", func(m *Message) { m.DeploymentID = "Dep7f3a" }, settings.DeploymentIDRule},
		{"deploymentId", func(m *Message) { m.DeploymentID = "d123456789012345678901" }, settings.DeploymentIDRule},
		{"serviceId", func(m *Message) { m.ServiceID = strings.Repeat("s", 65) }, IDRule},
		{"hostname", func(m *Message) { m.Hostname = "bad host" }, "DNS hostname"},
		{"hostname", func(m *Message) { m.Hostname = "-x.example.com" }, "DNS hostname"},
		{"observedAt", func(m *Message) { m.ObservedAt = time.Time{} }, "required"},
		{"observedAt", func(m *Message) { m.ObservedAt = now.Add(6 * time.Minute) }, "in the future"},
		{"exporterEpoch", func(m *Message) { m.ExporterEpoch = 0 }, "must be between 1"},
		{"sequence", func(m *Message) { m.Sequence = 0 }, "must be between 1"},
		{"sequence", func(m *Message) { m.Sequence = MaxSequence + 1 }, "must be between 1"},
		{"status", func(m *Message) { m.Status = "stale" }, "must be one of"},
		{"versions.clickhouse", func(m *Message) { m.Versions.ClickHouse = "" }, "required"},
		{"versions.operator", func(m *Message) { m.Versions.Operator = "0.25 beta" }, "without spaces"},
		{"versions.kubernetes", func(m *Message) { m.Versions.Kubernetes = strings.Repeat("1", 65) }, "at most 64"},
		{"replicas.ready", func(m *Message) { m.Replicas.Ready = -1 }, "between 0 and 1000"},
		{"replicas.desired", func(m *Message) { m.Replicas.Desired = 1001 }, "between 0 and 1000"},
		{"warnings", func(m *Message) { m.Warnings = -1 }, "negative"},
		{"errors", func(m *Message) { m.Errors = -2 }, "negative"},
		{"storageBytes", func(m *Message) { m.StorageBytes = -1 }, "negative"},
		{"commands", func(m *Message) { m.Commands = make([]CommandAck, MaxCommandAcks+1) }, "at most 16"},
		{"commands[0].id", func(m *Message) { m.Commands = []CommandAck{{ID: "", Status: AckAccepted}} }, IDRule},
		{"commands[1].id", func(m *Message) {
			m.Commands = []CommandAck{{ID: "c1", Status: AckAccepted}, {ID: "c1", Status: AckSucceeded}}
		}, "acknowledged twice"},
		{"commands[0].status", func(m *Message) { m.Commands = []CommandAck{{ID: "c1", Status: "done"}} }, "must be one of"},
		{"commands[0].detail", func(m *Message) {
			m.Commands = []CommandAck{{ID: "c1", Status: AckFailed, Detail: strings.Repeat("d", MaxDetailBytes+1)}}
		}, "at most 1024 bytes"},
	}
	for _, c := range cases {
		t.Run(c.field, func(t *testing.T) {
			m := valid()
			c.edit(&m)
			_, err := Parse(encode(t, m), now)
			if !errors.Is(err, ErrInvalid) || Reason(err) != "invalid" {
				t.Fatalf("error %v, want invalid", err)
			}
			var ie *InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T is not an InvalidError", err)
			}
			rule, ok := ie.Field(c.field)
			if !ok {
				t.Fatalf("error %q does not name field %s", err, c.field)
			}
			if !strings.Contains(rule, c.rule) {
				t.Fatalf("%s: rule %q does not say %q", c.field, rule, c.rule)
			}
		})
	}
}

func TestValidateListsEveryBrokenRule(t *testing.T) {
	m := valid()
	m.DeploymentID, m.Status, m.Sequence = "", "fine", -1
	fields := FieldErrors(m.Validate(now))
	if len(fields) != 3 {
		t.Fatalf("got %v, want three field errors", fields)
	}
}

func TestEncodeRefusesInvalid(t *testing.T) {
	m := valid()
	m.Status = "stale"
	if _, err := Encode(m, now); !errors.Is(err, ErrInvalid) {
		t.Fatalf("error %v, want invalid", err)
	}
	m = valid()
	m.SchemaVersion = 3
	if _, err := Encode(m, now); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("error %v, want unknown version", err)
	}
}

func TestOrderKeySortsLikeEpochThenSequence(t *testing.T) {
	keys := []string{
		OrderKey(1000, 1),
		OrderKey(1000, 9),
		OrderKey(1000, 10),
		OrderKey(1000, 255),
		OrderKey(1001, 1), // the exporter restarted: a new epoch outranks every old sequence
		OrderKey(MaxSequence, MaxSequence),
	}
	for i := 1; i < len(keys); i++ {
		if keys[i-1] >= keys[i] {
			t.Fatalf("%s does not sort before %s", keys[i-1], keys[i])
		}
	}
	if len(keys[0]) != len(keys[len(keys)-1]) {
		t.Fatal("order keys are not fixed width")
	}
}

func TestReason(t *testing.T) {
	if Reason(errors.New("other")) != "" {
		t.Fatal("a foreign error has a reason")
	}
	for err, want := range map[error]string{ErrOversized: "oversized", ErrMalformed: "malformed", ErrUnknownVersion: "unknown-version", ErrInvalid: "invalid"} {
		if got := Reason(err); got != want {
			t.Fatalf("Reason(%v) = %q, want %q", err, got, want)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	body, err := Encode(valid(), now)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(body, now); err != nil {
			b.Fatal(err)
		}
	}
}
