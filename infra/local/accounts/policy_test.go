package accounts

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestEvaluate(t *testing.T) {
	roleSession := Principal{
		Account: VendorAccount,
		Arn:     "arn:aws:sts::000000000000:assumed-role/Provisioner/s",
		UserID:  "AROAX:s",
		RoleArn: "arn:aws:iam::000000000000:role/Provisioner",
	}
	customerRoot := RootPrincipal("111111111111")
	busArn := "arn:aws:events:us-east-1:000000000000:event-bus/byoc"
	cases := []struct {
		name      string
		policy    string
		principal Principal
		action    string
		resource  string
		ctx       map[string][]string
		resource2 bool // evaluate as a resource policy (Principal required)
		allowed   bool
		denied    bool
	}{
		{name: "account id principal", policy: `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"111111111111"},"Action":"events:PutEvents","Resource":"` + busArn + `"}]}`,
			principal: customerRoot, action: "events:PutEvents", resource: busArn, resource2: true, allowed: true},
		{name: "account root arn principal", policy: `{"Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::222222222222:root","arn:aws:iam::111111111111:root"]},"Action":"events:PutEvents"}]}`,
			principal: customerRoot, action: "events:PutEvents", resource: busArn, resource2: true, allowed: true},
		{name: "other account", policy: `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"222222222222"},"Action":"events:PutEvents"}]}`,
			principal: customerRoot, action: "events:PutEvents", resource: busArn, resource2: true},
		{name: "star principal", policy: `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"events:*"}]}`,
			principal: customerRoot, action: "events:PutEvents", resource: busArn, resource2: true, allowed: true},
		{name: "principal org condition cannot hold locally", policy: `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"events:PutEvents","Condition":{"StringEquals":{"aws:PrincipalOrgID":"o-123"}}}]}`,
			principal: customerRoot, action: "events:PutEvents", resource: busArn, resource2: true},
		{name: "resource policy needs a principal", policy: `{"Statement":[{"Effect":"Allow","Action":"events:PutEvents"}]}`,
			principal: customerRoot, action: "events:PutEvents", resource: busArn, resource2: true},
		{name: "role arn principal", policy: `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:role/Provisioner"},"Action":"sts:AssumeRole"}]}`,
			principal: roleSession, action: "sts:AssumeRole", resource2: true, allowed: true},
		{name: "session arn principal", policy: `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:sts::000000000000:assumed-role/Provisioner/s"},"Action":"sts:AssumeRole"}]}`,
			principal: roleSession, action: "sts:AssumeRole", resource2: true, allowed: true},
		{name: "service principal is never a local caller", policy: `{"Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`,
			principal: roleSession, action: "sts:AssumeRole", resource2: true},
		{name: "action wildcard is case-insensitive", policy: `{"Statement":[{"Effect":"Allow","Action":"STS:Assume*","Resource":"*"}]}`,
			principal: roleSession, action: "sts:AssumeRole", resource: "arn:aws:iam::1:role/x", allowed: true},
		{name: "resource wildcard", policy: `{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"arn:aws:iam::*:role/ClickHouse?anagementRole"}]}`,
			principal: roleSession, action: "sts:AssumeRole", resource: "arn:aws:iam::111111111111:role/ClickHouseManagementRole", allowed: true},
		{name: "resource wildcard mismatch", policy: `{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"arn:aws:iam::*:role/ClickHouseManagementRole"}]}`,
			principal: roleSession, action: "sts:AssumeRole", resource: "arn:aws:iam::111111111111:role/Other"},
		{name: "explicit deny wins", policy: `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"sts:AssumeRole","Resource":"*"}]}`,
			principal: roleSession, action: "sts:AssumeRole", resource: "r", denied: true},
		{name: "NotAction", policy: `{"Statement":[{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}]}`,
			principal: roleSession, action: "sts:AssumeRole", resource: "r", allowed: true},
		{name: "NotAction excludes", policy: `{"Statement":[{"Effect":"Allow","NotAction":"sts:*","Resource":"*"}]}`,
			principal: roleSession, action: "sts:AssumeRole", resource: "r"},
		{name: "NotResource", policy: `{"Statement":[{"Effect":"Allow","Action":"*","NotResource":"arn:aws:iam::*:role/Admin"}]}`,
			principal: roleSession, action: "sts:AssumeRole", resource: "arn:aws:iam::1:role/Admin"},
		{name: "StringEquals external id", policy: `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"sts:ExternalId":["a","b"]}}}]}`,
			principal: roleSession, action: "x:y", resource: "r", ctx: map[string][]string{"sts:ExternalId": {"b"}}, allowed: true},
		{name: "condition keys are case-insensitive", policy: `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"STS:EXTERNALID":"a"}}}]}`,
			principal: roleSession, action: "x:y", resource: "r", ctx: map[string][]string{"sts:ExternalId": {"a"}}, allowed: true},
		{name: "StringEquals missing key", policy: `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"sts:ExternalId":"a"}}}]}`,
			principal: roleSession, action: "x:y", resource: "r"},
		{name: "StringEqualsIfExists missing key", policy: `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqualsIfExists":{"sts:ExternalId":"a"}}}]}`,
			principal: roleSession, action: "x:y", resource: "r", allowed: true},
		{name: "StringNotEquals missing key holds", policy: `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringNotEquals":{"sts:ExternalId":"a"}}}]}`,
			principal: roleSession, action: "x:y", resource: "r", allowed: true},
		{name: "StringNotEquals equal value fails", policy: `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringNotEquals":{"sts:ExternalId":"a"}}}]}`,
			principal: roleSession, action: "x:y", resource: "r", ctx: map[string][]string{"sts:ExternalId": {"a"}}},
		{name: "StringLike", policy: `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringLike":{"sts:RoleSessionName":"byoc-*"}}}]}`,
			principal: roleSession, action: "x:y", resource: "r", ctx: map[string][]string{"sts:RoleSessionName": {"byoc-provision"}}, allowed: true},
		{name: "ArnLike on principal arn", policy: `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::000000000000:role/Prov*"}}}]}`,
			principal: roleSession, action: "x:y", resource: "r", allowed: true},
		{name: "StringEquals principal account", policy: `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalAccount":"111111111111"}}}]}`,
			principal: roleSession, action: "x:y", resource: "r"},
		{name: "Null true on missing key", policy: `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Null":{"sts:ExternalId":"true"}}}]}`,
			principal: roleSession, action: "x:y", resource: "r", allowed: true},
		{name: "Bool unquoted", policy: `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":true}}}]}`,
			principal: roleSession, action: "x:y", resource: "r", ctx: map[string][]string{"aws:SecureTransport": {"true"}}, allowed: true},
		{name: "ForAnyValue", policy: `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":["a","b"]}}}]}`,
			principal: roleSession, action: "x:y", resource: "r", ctx: map[string][]string{"aws:TagKeys": {"z", "b"}}, allowed: true},
		{name: "ForAllValues", policy: `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}}]}`,
			principal: roleSession, action: "x:y", resource: "r", ctx: map[string][]string{"aws:TagKeys": {"z", "b"}}},
		{name: "unsupported operator never grants", policy: `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2020-01-01T00:00:00Z"}}}]}`,
			principal: roleSession, action: "x:y", resource: "r", ctx: map[string][]string{"aws:CurrentTime": {"2030-01-01T00:00:00Z"}}},
		{name: "policy as a JSON string", policy: `"{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}}"`,
			principal: roleSession, action: "x:y", resource: "r", allowed: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := ParsePolicy(json.RawMessage(c.policy))
			if err != nil {
				t.Fatal(err)
			}
			d := p.Evaluate(Request{Principal: c.principal, Action: c.action, Resource: c.resource, Context: c.ctx}, c.resource2)
			if d.Allowed != c.allowed || d.Denied != c.denied {
				t.Errorf("Evaluate = %+v, want allowed=%v denied=%v", d, c.allowed, c.denied)
			}
			if d.Reason == "" {
				t.Errorf("decision has no reason")
			}
		})
	}
}

func TestParsePolicyRejects(t *testing.T) {
	cases := []struct{ doc, contains string }{
		{``, "empty"},
		{`[]`, "not a JSON object"},
		{`{"Statement":[]}`, "no Statement"},
		{`{"Statement":[{"Effect":"Allow","Action":"a","NotAction":"b"}]}`, "exactly one of Action and NotAction"},
		{`{"Statement":[{"Effect":"Allow","Action":{"a":1}}]}`, "Action: must be a string"},
		{`{"Statement":[{"Effect":"Allow","Action":"a","Principal":"someone"}]}`, "Principal must be"},
		{`{"Statement":[{"Effect":"Allow","Action":"a","Condition":{"StringEquals":"x"}}]}`, "Condition must map"},
		{`{"Statement":[{"Effect":"Allow","Action":"a","Condition":{"StringEquals":{"k":{"x":1}}}}]}`, "Condition StringEquals k"},
	}
	for _, c := range cases {
		_, err := ParsePolicy(json.RawMessage(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.contains) {
			t.Errorf("ParsePolicy(%s) error = %v, want one containing %q", c.doc, err, c.contains)
		}
	}
}
