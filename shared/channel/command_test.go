package channel

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/byocloud/byoc/shared/servicestate"
)

var t0 = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

func release(id string) Command {
	return Command{SchemaVersion: CommandVersion, ID: id, DeploymentID: "dep1", ServiceID: "svc-a", Kind: ApplyRelease,
		Params: map[string]string{"clickhouseVersion": "24.9"}, IssuedAt: t0}
}

func TestCommandRoundTrip(t *testing.T) {
	body, err := Encode(release("cmd-1"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCommand(body)
	if err != nil || c.ID != "cmd-1" || c.Params["clickhouseVersion"] != "24.9" || !c.IssuedAt.Equal(t0) {
		t.Fatalf("parsed %+v %v", c, err)
	}
}

func TestCommandValidation(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Command)
		says string
	}{
		{"version", func(c *Command) { c.SchemaVersion = 2 }, "schemaVersion: must be 1"},
		{"id", func(c *Command) { c.ID = "" }, "id: must be"},
		{"deployment", func(c *Command) { c.DeploymentID = "a b" }, "deploymentId: must be"},
		{"deployment id longer than the template allows", func(c *Command) { c.DeploymentID = strings.Repeat("d", 21) }, "deploymentId: must be 3 to 20 characters"},
		{"deployment id with a dash", func(c *Command) { c.DeploymentID = "dep-7f3a" }, "deploymentId: must be 3 to 20 characters"},
		{"service", func(c *Command) { c.ServiceID = "s/1" }, "serviceId: must be"},
		{"issued", func(c *Command) { c.IssuedAt = time.Time{} }, "issuedAt: required"},
		{"kind", func(c *Command) { c.Kind = "reboot" }, "kind: must be one of"},
		{"release without version", func(c *Command) { c.Params = nil }, "apply-release needs clickhouseVersion or operatorVersion"},
		{"scale without replicas", func(c *Command) { c.Kind, c.Params = Scale, nil }, "params.replicas"},
		{"scale to zero", func(c *Command) { c.Kind, c.Params = Scale, map[string]string{"replicas": "0"} }, "params.replicas"},
		{"restore without backup", func(c *Command) { c.Kind, c.Params = Restore, nil }, "params.backupId"},
		{"stop without service", func(c *Command) { c.Kind, c.ServiceID = Stop, "" }, "serviceId: required for stop"},
		{"huge param", func(c *Command) { c.Params["x"] = strings.Repeat("v", 257) }, "params.x"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := release("cmd-1")
			c.edit(&cmd)
			_, err := Encode(cmd)
			if err == nil || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("error %v, want %q", err, c.says)
			}
		})
	}
	ok := Command{SchemaVersion: 1, ID: "c", DeploymentID: "dep", Kind: ApplyRelease, Params: map[string]string{"operatorVersion": "0.26"}, IssuedAt: t0}
	if err := ok.Validate(); err != nil {
		t.Fatalf("a deployment-wide operator release: %v", err)
	}
	if _, err := ParseCommand([]byte(`{"schemaVersion":1,"id":"c","deploymentId":"d","kind":"start","serviceId":"s","issuedAt":"2026-11-25T09:00:00Z","extra":1}`)); err == nil {
		t.Fatal("a command with an unknown field was parsed")
	}
}

func TestNewIDIsValidAndFresh(t *testing.T) {
	a, b := NewID(), NewID()
	if a == b || !strings.HasPrefix(a, "cmd-") {
		t.Fatalf("ids %s %s", a, b)
	}
	c := release(a)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

type policyDoc struct {
	Statement []struct {
		Sid       string
		Effect    string
		Principal any
		Action    any
		Resource  string
		Condition map[string]map[string]any
	}
}

func parsePolicy(t *testing.T, s string) policyDoc {
	t.Helper()
	var p policyDoc
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		t.Fatalf("policy is not JSON: %v\n%s", err, s)
	}
	return p
}

func plane(dep, account string) servicestate.DataPlane {
	return servicestate.DataPlane{DeploymentID: dep, AccountID: account, ExporterRoleARN: "arn:aws:iam::" + account + ":role/" + dep + "-state-exporter"}
}

func TestStateQueuePolicyAdmitsExactlyTheExporters(t *testing.T) {
	queue := "arn:aws:sqs:us-east-1:000000000000:byoc-state"
	s, err := StateQueuePolicy(queue, []servicestate.DataPlane{plane("depb", "222222222222"), plane("depa", "111111111111"), plane("depa", "111111111111")})
	if err != nil {
		t.Fatal(err)
	}
	p := parsePolicy(t, s)
	if len(p.Statement) != 2 {
		t.Fatalf("statements %+v", p.Statement)
	}
	deny, allow := p.Statement[0], p.Statement[1]
	if deny.Effect != "Deny" || deny.Condition["Bool"]["aws:SecureTransport"] != "false" {
		t.Fatalf("TLS statement %+v", deny)
	}
	if allow.Effect != "Allow" || allow.Action != "sqs:SendMessage" || allow.Resource != queue {
		t.Fatalf("allow statement %+v", allow)
	}
	arns, _ := allow.Condition["ArnEquals"]["aws:PrincipalArn"].([]any)
	if len(arns) != 2 || arns[0] != "arn:aws:iam::111111111111:role/depa-state-exporter" || arns[1] != "arn:aws:iam::222222222222:role/depb-state-exporter" {
		t.Fatalf("admitted %v, want both exporters, sorted, once", arns)
	}
	again, _ := StateQueuePolicy(queue, []servicestate.DataPlane{plane("depa", "111111111111"), plane("depb", "222222222222")})
	if again != s {
		t.Fatal("the policy depends on the order of the data planes")
	}
}

func TestStateQueuePolicyWithNoExporterAdmitsNobody(t *testing.T) {
	s, err := StateQueuePolicy("arn:aws:sqs:us-east-1:000000000000:q", nil)
	if err != nil {
		t.Fatal(err)
	}
	p := parsePolicy(t, s)
	if len(p.Statement) != 1 || p.Statement[0].Effect != "Deny" {
		t.Fatalf("statements %+v", p.Statement)
	}
}

func TestStateQueuePolicyTooLarge(t *testing.T) {
	var planes []servicestate.DataPlane
	for i := range 200 {
		planes = append(planes, plane("deployment-with-a-long-name-"+strings.Repeat("x", 10)+string(rune('a'+i%26))+strings.Repeat("y", i%7), "111111111111"))
		planes[i].ExporterRoleARN += strings.Repeat("z", i)
	}
	if _, err := StateQueuePolicy("arn:aws:sqs:us-east-1:000000000000:q", planes); err == nil || !strings.Contains(err.Error(), "8192-byte") {
		t.Fatalf("error %v", err)
	}
}

func TestCommandQueuePolicyLetsOnlyTheAgentRead(t *testing.T) {
	queue := "arn:aws:sqs:us-east-1:000000000000:byoc-commands-dep1.fifo"
	agent := "arn:aws:iam::111111111111:role/dep1-agent"
	s, err := CommandQueuePolicy(queue, agent)
	if err != nil {
		t.Fatal(err)
	}
	p := parsePolicy(t, s)
	if len(p.Statement) != 3 {
		t.Fatalf("statements %+v", p.Statement)
	}
	allow, deny := p.Statement[1], p.Statement[2]
	if allow.Effect != "Allow" || allow.Principal.(map[string]any)["AWS"] != agent {
		t.Fatalf("allow %+v", allow)
	}
	if deny.Effect != "Deny" || deny.Principal != "*" || deny.Condition["ArnNotEquals"]["aws:PrincipalArn"] != agent {
		t.Fatalf("deny %+v", deny)
	}
	actions, _ := deny.Action.([]any)
	if len(actions) == 0 || actions[0] != "sqs:ReceiveMessage" {
		t.Fatalf("deny actions %v", deny.Action)
	}
}

func TestQueueName(t *testing.T) {
	if n, err := QueueName("dep1"); err != nil || n != "byoc-commands-dep1.fifo" {
		t.Fatalf("%s %v", n, err)
	}
	if n, err := QueueName(strings.Repeat("d", 61)); err != nil || len(n) != 80 {
		t.Fatalf("61 characters: %d %v", len(n), err)
	}
	if _, err := QueueName(strings.Repeat("d", 62)); err == nil {
		t.Fatal("an 81-character queue name was accepted")
	}
}
