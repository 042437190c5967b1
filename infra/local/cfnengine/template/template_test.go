package template

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// attrs is a Resolver over fixed values: logical id -> "Ref" or attribute -> value.
type attrs map[string]map[string]any

func (a attrs) Ref(id string) (any, error) { return a.GetAtt(id, "Ref") }

func (a attrs) GetAtt(id, attr string) (any, error) {
	v, ok := a[id][attr]
	if !ok {
		return nil, fmt.Errorf("no attribute %s.%s", id, attr)
	}
	return v, nil
}

func mustParse(t *testing.T, body string) *Template {
	t.Helper()
	tpl, err := Parse([]byte(body))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return tpl
}

func decode(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

const evalTemplate = `{
  "Parameters": {
    "Env": {"Type": "String", "Default": "prod"},
    "Zones": {"Type": "CommaDelimitedList", "Default": "use1-az1,use1-az2"},
    "Size": {"Type": "Number", "Default": "3"}
  },
  "Mappings": {"Sizes": {"prod": {"Nodes": "3", "Types": ["m5.xlarge", "m5.2xlarge"]}}},
  "Conditions": {
    "IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]},
    "IsDev": {"Fn::Not": [{"Condition": "IsProd"}]},
    "ProdInUsEast1": {"Fn::And": [{"Condition": "IsProd"}, {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]}]},
    "AnyOf": {"Fn::Or": [{"Condition": "IsDev"}, {"Fn::Equals": ["a", "a"]}]}
  },
  "Resources": {
    "Queue": {"Type": "AWS::SQS::Queue"},
    "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}}
  }
}`

func TestResolveIntrinsics(t *testing.T) {
	tpl := mustParse(t, evalTemplate)
	params, err := tpl.ResolveParameters(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{
		AccountID: "111111111111", Region: "us-east-1", StackName: "s",
		StackID: "arn:aws:cloudformation:us-east-1:111111111111:stack/s/id", Params: params,
		Resources: attrs{
			"Queue": {"Ref": "https://sqs/q", "Arn": "arn:aws:sqs:us-east-1:111111111111:q"},
			"Role":  {"Ref": "r", "Arn": "arn:aws:iam::111111111111:role/r"},
		},
		Imports: func(name string) (string, bool) { return "imported-" + name, name == "Shared" },
		AZs:     func(region string) []string { return []string{region + "a", region + "b"} },
	}
	if err := tpl.EvaluateConditions(env); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		in   string
		want any
	}{
		{"plain", `"x"`, "x"},
		{"ref parameter", `{"Ref": "Env"}`, "prod"},
		{"ref list parameter", `{"Ref": "Zones"}`, []any{"use1-az1", "use1-az2"}},
		{"ref number parameter is a string", `{"Ref": "Size"}`, "3"},
		{"ref resource", `{"Ref": "Queue"}`, "https://sqs/q"},
		{"ref account", `{"Ref": "AWS::AccountId"}`, "111111111111"},
		{"ref partition", `{"Ref": "AWS::Partition"}`, "aws"},
		{"ref url suffix", `{"Ref": "AWS::URLSuffix"}`, "amazonaws.com"},
		{"ref stack id", `{"Ref": "AWS::StackId"}`, "arn:aws:cloudformation:us-east-1:111111111111:stack/s/id"},
		{"ref notification arns", `{"Ref": "AWS::NotificationARNs"}`, []any{}},
		{"getatt list", `{"Fn::GetAtt": ["Queue", "Arn"]}`, "arn:aws:sqs:us-east-1:111111111111:q"},
		{"getatt dotted", `{"Fn::GetAtt": "Role.Arn"}`, "arn:aws:iam::111111111111:role/r"},
		{"join", `{"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::b/*"]]}`, "arn:aws:s3:::b/*"},
		{"join list param", `{"Fn::Join": [",", {"Ref": "Zones"}]}`, "use1-az1,use1-az2"},
		{"join numbers", `{"Fn::Join": ["-", [1, "a"]]}`, "1-a"},
		{"sub pseudo and resource", `{"Fn::Sub": "${AWS::Region}:${Queue.Arn}:${Env}"}`, "us-east-1:arn:aws:sqs:us-east-1:111111111111:q:prod"},
		{"sub variables and literal", `{"Fn::Sub": ["${Name}-${!Literal}", {"Name": {"Ref": "Env"}}]}`, "prod-${Literal}"},
		{"sub resource ref", `{"Fn::Sub": "${Queue}"}`, "https://sqs/q"},
		{"select", `{"Fn::Select": [1, {"Ref": "Zones"}]}`, "use1-az2"},
		{"select string index", `{"Fn::Select": ["0", ["a", "b"]]}`, "a"},
		{"split", `{"Fn::Split": [",", "a,b,,c"]}`, []any{"a", "b", "", "c"}},
		{"select split", `{"Fn::Select": [2, {"Fn::Split": [":", "arn:aws:sqs"]}]}`, "sqs"},
		{"if true", `{"Fn::If": ["IsProd", "big", "small"]}`, "big"},
		{"if false", `{"Fn::If": ["IsDev", "big", "small"]}`, "small"},
		{"if novalue removes property", `{"A": {"Fn::If": ["IsDev", "x", {"Ref": "AWS::NoValue"}]}, "B": 1}`, map[string]any{"B": json.Number("1")}},
		{"novalue removes list element", `["a", {"Ref": "AWS::NoValue"}, "b"]`, []any{"a", "b"}},
		{"equals as value", `{"Fn::Equals": [{"Ref": "Size"}, 3]}`, true},
		{"findinmap", `{"Fn::FindInMap": ["Sizes", {"Ref": "Env"}, "Nodes"]}`, "3"},
		{"findinmap list", `{"Fn::FindInMap": ["Sizes", "prod", "Types"]}`, []any{"m5.xlarge", "m5.2xlarge"}},
		{"getazs empty is own region", `{"Fn::GetAZs": ""}`, []any{"us-east-1a", "us-east-1b"}},
		{"getazs region ref", `{"Fn::Select": [0, {"Fn::GetAZs": {"Ref": "AWS::Region"}}]}`, "us-east-1a"},
		{"importvalue", `{"Fn::ImportValue": {"Fn::Sub": "Shared"}}`, "imported-Shared"},
		{"base64", `{"Fn::Base64": "hi"}`, "aGk="},
		{"cidr", `{"Fn::Cidr": ["10.0.0.0/16", 3, 8]}`, []any{"10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"}},
		{"cidr ipv6", `{"Fn::Cidr": ["2600:1f18::/56", 2, 64]}`, []any{"2600:1f18::/64", "2600:1f18:0:1::/64"}},
		{"nested objects", `{"Tags": [{"Key": "k", "Value": {"Ref": "Env"}}]}`, map[string]any{"Tags": []any{map[string]any{"Key": "k", "Value": "prod"}}}},
		{"map with two keys is not an intrinsic", `{"Ref": "Env", "Other": 1}`, map[string]any{"Ref": "Env", "Other": json.Number("1")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := tpl.Resolve(env, decode(t, c.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("Resolve(%s) = %#v, want %#v", c.in, got, c.want)
			}
		})
	}
	wantConds := map[string]bool{"IsProd": true, "IsDev": false, "ProdInUsEast1": true, "AnyOf": true}
	if !reflect.DeepEqual(env.Conditions, wantConds) {
		t.Errorf("Conditions = %v, want %v", env.Conditions, wantConds)
	}
}

func TestResolveErrors(t *testing.T) {
	tpl := mustParse(t, evalTemplate)
	params, _ := tpl.ResolveParameters(nil, nil)
	env := &Env{Region: "us-east-1", Params: params, Resources: attrs{}, Imports: func(string) (string, bool) { return "", false }}
	cases := []struct{ in, contains string }{
		{`{"Fn::Select": [5, ["a"]]}`, "cannot select nonexistent value at index 5"},
		{`{"Fn::Select": ["x", ["a"]]}`, "not an integer"},
		{`{"Fn::Join": [",", "notalist"]}`, "requires a list"},
		{`{"Fn::Join": [","]}`, "requires a list of 2 arguments"},
		{`{"Fn::FindInMap": ["Sizes", "dev", "Nodes"]}`, "Unable to get mapping for Sizes::dev"},
		{`{"Fn::FindInMap": ["Nope", "dev", "Nodes"]}`, "Unable to get mapping for Nope"},
		{`{"Fn::ImportValue": "Missing"}`, "No export named Missing found"},
		{`{"Fn::Sub": "${Zones}"}`, "does not evaluate to a string"},
		{`{"Fn::Length": [1]}`, "unsupported function: Fn::Length"},
		{`{"Fn::Cidr": ["10.0.0.0/24", 3, 8]}`, "cannot fit 3 subnets"},
		{`{"Fn::Cidr": ["nope", 1, 8]}`, "is not a CIDR block"},
		{`{"Fn::Cidr": ["10.0.0.0/16", 300, 8]}`, "between 1 and 256"},
		{`{"Fn::If": ["Missing", 1, 2]}`, "no condition with that name"},
		{`{"Fn::GetAtt": ["Queue", "Nope"]}`, "no attribute Queue.Nope"},
		{`{"Ref": 1}`, "Ref must be a string"},
	}
	for _, c := range cases {
		_, err := tpl.Resolve(env, decode(t, c.in))
		if err == nil || !strings.Contains(err.Error(), c.contains) {
			t.Errorf("Resolve(%s) error = %v, want one containing %q", c.in, err, c.contains)
		}
	}
}

func TestParseRejects(t *testing.T) {
	cases := []struct{ name, body, contains string }{
		{"empty", ``, "the template is empty"},
		{"yaml", "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n", "JSON templates only"},
		{"bad json", `{"Resources": `, "JSON not well-formed"},
		{"unknown section", `{"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}, "Resource": {}}`, "Invalid template property or properties [Resource]"},
		{"transform", `{"Transform": "AWS::Serverless-2016-10-31", "Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}`, "Transform"},
		{"bad version", `{"AWSTemplateFormatVersion": "2020-01-01", "Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}`, "not a valid template version"},
		{"no resources", `{"Resources": {}}`, "At least one Resources member must be defined."},
		{"missing resources", `{"Description": "x"}`, "At least one Resources member must be defined."},
		{"resource without type", `{"Resources": {"Q": {"Properties": {}}}}`, "[/Resources/Q] Every Resources object must contain a Type member."},
		{"non alphanumeric id", `{"Resources": {"My-Queue": {"Type": "AWS::SQS::Queue"}}}`, "Resource name My-Queue is non alphanumeric."},
		{"unresolved ref", `{"Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Ref": "Nope"}}}}}`, "Unresolved resource dependencies [Nope] in the Resources block of the template"},
		{"unresolved getatt", `{"Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {"X": {"Fn::GetAtt": ["Nope", "Arn"]}}}}}`, "Unresolved resource dependencies [Nope]"},
		{"unresolved sub", `{"Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {"X": {"Fn::Sub": "${Nope.Arn}"}}}}}`, "Unresolved resource dependencies [Nope]"},
		{"unresolved dependson", `{"Resources": {"Q": {"Type": "AWS::SQS::Queue", "DependsOn": "Nope"}}}`, "Unresolved resource dependencies [Nope]"},
		{"unresolved output ref", `{"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}, "Outputs": {"O": {"Value": {"Ref": "Nope"}}}}`, "Unresolved resource dependencies [Nope]"},
		{"unknown resource condition", `{"Resources": {"Q": {"Type": "AWS::SQS::Queue", "Condition": "Nope"}}}`, "Resource Q references condition Nope"},
		{"condition references resource", `{"Conditions": {"C": {"Fn::Equals": [{"Ref": "Q"}, "x"]}}, "Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}`, "Cannot reference resources in the Conditions block"},
		{"cycle", `{"Resources": {"A": {"Type": "T::A", "Properties": {"X": {"Ref": "B"}}}, "B": {"Type": "T::B", "DependsOn": ["A"]}, "C": {"Type": "T::C"}}}`, "Circular dependency between resources: [A, B]"},
		{"parameter without type", `{"Parameters": {"P": {}}, "Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}`, "[/Parameters/P] Every Parameters object must contain a Type member."},
		{"parameter bad type", `{"Parameters": {"P": {"Type": "Strin"}}, "Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}`, "Unrecognized parameter type: Strin"},
		{"output without value", `{"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}, "Outputs": {"O": {"Description": "x"}}}`, "[/Outputs/O] Every Outputs member must contain a Value object"},
		{"bad deletion policy", `{"Resources": {"Q": {"Type": "AWS::SQS::Queue", "DeletionPolicy": "Keep"}}}`, "is not one of Delete, Retain"},
		{"rule without assertions", `{"Rules": {"R": {}}, "Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}`, "Assertions"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.body))
			if err == nil || !strings.Contains(err.Error(), c.contains) {
				t.Fatalf("Parse error = %v, want one containing %q", err, c.contains)
			}
		})
	}
}

const paramsTemplate = `{
  "Parameters": {
    "Name": {"Type": "String", "MinLength": 3, "MaxLength": 8, "AllowedPattern": "[a-z]+"},
    "Described": {"Type": "String", "Default": "ok", "AllowedPattern": "ok|fine", "ConstraintDescription": "say ok or fine"},
    "Count": {"Type": "Number", "Default": 3, "MinValue": 1, "MaxValue": 5},
    "Tier": {"Type": "String", "Default": "small", "AllowedValues": ["small", "large"]},
    "Cidrs": {"Type": "List<Number>", "Default": "1, 2"},
    "Zones": {"Type": "List<AWS::EC2::AvailabilityZone::Name>", "Default": "a,b"},
    "Secret": {"Type": "String", "Default": "s3cr3t", "NoEcho": true},
    "BootstrapVersion": {"Type": "AWS::SSM::Parameter::Value<String>", "Default": "/cdk-bootstrap/hnb659fds/version"}
  },
  "Rules": {
    "CheckBootstrapVersion": {
      "Assertions": [{
        "Assert": {"Fn::Not": [{"Fn::Contains": [["1", "2", "3", "4", "5"], {"Ref": "BootstrapVersion"}]}]},
        "AssertDescription": "CDK bootstrap stack version 6 required. Please run 'cdk bootstrap' with a recent version of the CDK CLI."
      }]
    }
  },
  "Resources": {"Q": {"Type": "AWS::SQS::Queue"}}
}`

func ssmStore(values map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) { v, ok := values[name]; return v, ok }
}

func TestResolveParameters(t *testing.T) {
	tpl := mustParse(t, paramsTemplate)
	ssm := ssmStore(map[string]string{"/cdk-bootstrap/hnb659fds/version": "30"})
	got, err := tpl.ResolveParameters(map[string]string{"Name": "abcd"}, ssm)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]ParamValue{
		"Name":             {Value: "abcd", Resolved: "abcd"},
		"Described":        {Value: "ok", Resolved: "ok"},
		"Count":            {Value: "3", Resolved: "3"},
		"Tier":             {Value: "small", Resolved: "small"},
		"Cidrs":            {Value: "1, 2", Resolved: []any{"1", "2"}},
		"Zones":            {Value: "a,b", Resolved: []any{"a", "b"}},
		"Secret":           {Value: "s3cr3t", Resolved: "s3cr3t", NoEcho: true},
		"BootstrapVersion": {Value: "/cdk-bootstrap/hnb659fds/version", ResolvedValue: "30", Resolved: "30"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ResolveParameters =\n%#v\nwant\n%#v", got, want)
	}
	env := &Env{Params: got}
	if err := tpl.CheckRules(env); err != nil {
		t.Errorf("CheckRules with bootstrap version 30: %v", err)
	}
	old, err := tpl.ResolveParameters(map[string]string{"Name": "abcd"}, ssmStore(map[string]string{"/cdk-bootstrap/hnb659fds/version": "5"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := tpl.CheckRules(&Env{Params: old}); err == nil || !strings.HasPrefix(err.Error(), "CDK bootstrap stack version 6 required.") {
		t.Errorf("CheckRules with bootstrap version 5 = %v, want the AssertDescription", err)
	}
}

func TestResolveParametersRejects(t *testing.T) {
	tpl := mustParse(t, paramsTemplate)
	ssm := ssmStore(map[string]string{"/cdk-bootstrap/hnb659fds/version": "30"})
	cases := []struct {
		name     string
		given    map[string]string
		ssm      func(string) (string, bool)
		contains string
	}{
		{"missing", map[string]string{}, ssm, "Parameters: [Name] must have values"},
		{"unknown", map[string]string{"Name": "abc", "Nope": "x", "Also": "y"}, ssm, "Parameters: [Also, Nope] do not exist in the template"},
		{"too short", map[string]string{"Name": "ab"}, ssm, "Parameter 'Name' must contain at least 3 characters"},
		{"too long", map[string]string{"Name": "abcdefghi"}, ssm, "Parameter 'Name' must contain at most 8 characters"},
		{"pattern", map[string]string{"Name": "ABC"}, ssm, "Parameter 'Name' must match pattern [a-z]+"},
		{"pattern is anchored", map[string]string{"Name": "abc1"}, ssm, "Parameter 'Name' must match pattern"},
		{"constraint description", map[string]string{"Name": "abc", "Described": "nope"}, ssm, "Parameter 'Described' failed to satisfy constraint: say ok or fine"},
		{"not a number", map[string]string{"Name": "abc", "Count": "three"}, ssm, "Parameter 'Count' must be a number"},
		{"below min", map[string]string{"Name": "abc", "Count": "0"}, ssm, "Parameter 'Count' must be a number not less than 1"},
		{"above max", map[string]string{"Name": "abc", "Count": "6"}, ssm, "Parameter 'Count' must be a number not greater than 5"},
		{"allowed values", map[string]string{"Name": "abc", "Tier": "medium"}, ssm, "Parameter 'Tier' must be one of AllowedValues"},
		{"list of numbers", map[string]string{"Name": "abc", "Cidrs": "1,x"}, ssm, "Parameter 'Cidrs' must be a number"},
		{"ssm missing", map[string]string{"Name": "abc"}, ssmStore(nil), "Unable to fetch parameters [/cdk-bootstrap/hnb659fds/version] from parameter store for this account."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := tpl.ResolveParameters(c.given, c.ssm)
			if err == nil || err.Error() != c.contains && !strings.HasPrefix(err.Error(), c.contains) {
				t.Fatalf("error = %v, want %q", err, c.contains)
			}
		})
	}
}

func TestOrder(t *testing.T) {
	tpl := mustParse(t, `{
	  "Parameters": {"WithDlq": {"Type": "String", "Default": "yes"}},
	  "Conditions": {"UseDlq": {"Fn::Equals": [{"Ref": "WithDlq"}, "yes"]}},
	  "Resources": {
	    "Function": {"Type": "AWS::Lambda::Function", "Properties": {"Role": {"Fn::GetAtt": ["Role", "Arn"]}}},
	    "Role": {"Type": "AWS::IAM::Role"},
	    "Mapping": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {"FunctionName": {"Ref": "Function"}, "EventSourceArn": {"Fn::Sub": "${Queue.Arn}"}}},
	    "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"RedrivePolicy": {"Fn::If": ["UseDlq", {"deadLetterTargetArn": {"Fn::GetAtt": ["Dlq", "Arn"]}}, {"Ref": "AWS::NoValue"}]}}},
	    "Dlq": {"Type": "AWS::SQS::Queue", "Condition": "UseDlq"},
	    "Alarm": {"Type": "AWS::CloudWatch::Alarm", "DependsOn": "Mapping"}
	  }
	}`)
	params, _ := tpl.ResolveParameters(nil, nil)
	order, err := tpl.Order(&Env{Params: params})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Dlq", "Role", "Function", "Queue", "Mapping", "Alarm"}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("Order = %v, want %v", order, want)
	}
	// Without the DLQ, the queue no longer depends on it (only the taken Fn::If branch counts).
	params, _ = tpl.ResolveParameters(map[string]string{"WithDlq": "no"}, nil)
	order, err = tpl.Order(&Env{Params: params})
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"Queue", "Role", "Function", "Mapping", "Alarm"}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("Order without DLQ = %v, want %v", order, want)
	}
}

func TestOrderRejectsReferenceToExcludedResource(t *testing.T) {
	tpl := mustParse(t, `{
	  "Conditions": {"Never": {"Fn::Equals": ["a", "b"]}},
	  "Resources": {
	    "Dlq": {"Type": "AWS::SQS::Queue", "Condition": "Never"},
	    "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"X": {"Fn::GetAtt": ["Dlq", "Arn"]}}}
	  }
	}`)
	_, err := tpl.Order(&Env{})
	if err == nil || !strings.Contains(err.Error(), "Unresolved resource dependencies [Dlq]") {
		t.Errorf("Order error = %v, want unresolved Dlq", err)
	}
}

func TestConditionCycle(t *testing.T) {
	tpl := mustParse(t, `{
	  "Conditions": {"A": {"Fn::Not": [{"Condition": "B"}]}, "B": {"Fn::Not": [{"Condition": "A"}]}},
	  "Resources": {"Q": {"Type": "AWS::SQS::Queue"}}
	}`)
	err := tpl.EvaluateConditions(&Env{})
	if err == nil || !strings.Contains(err.Error(), "Circular dependency between conditions") {
		t.Errorf("EvaluateConditions error = %v, want a cycle", err)
	}
}

func TestIAMCapability(t *testing.T) {
	cases := []struct {
		body, want string
	}{
		{`{"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}`, ""},
		{`{"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {}}, "P": {"Type": "AWS::IAM::Policy"}}}`, "CAPABILITY_IAM"},
		{`{"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {"RoleName": "ClickHouseManagementRole"}}}}`, "CAPABILITY_NAMED_IAM"},
	}
	for _, c := range cases {
		got, _ := mustParse(t, c.body).IAMCapability()
		if got != c.want {
			t.Errorf("IAMCapability(%s) = %q, want %q", c.body, got, c.want)
		}
	}
}
