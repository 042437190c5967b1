package eventpattern

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// stackEvent is a CloudFormation Stack Status Change event in AWS's exact shape.
const stackEvent = `{
  "version": "0",
  "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
  "detail-type": "CloudFormation Stack Status Change",
  "source": "aws.cloudformation",
  "account": "111122223333",
  "time": "2017-12-22T18:43:48Z",
  "region": "us-west-1",
  "resources": ["arn:aws:cloudformation:us-west-1:111122223333:stack/clickhouse-byoc-bootstrap/3f8a1f50-e6ac-11e7-9b68-500c28b4e461"],
  "detail": {
    "stack-id": "arn:aws:cloudformation:us-west-1:111122223333:stack/clickhouse-byoc-bootstrap/3f8a1f50-e6ac-11e7-9b68-500c28b4e461",
    "status-details": {"status": "CREATE_COMPLETE", "status-reason": ""},
    "client-request-token": "",
    "count": 5,
    "ratio": 301.8,
    "ip": "10.0.0.33",
    "flag": true,
    "nothing": null,
    "empty": [],
    "tags": ["blue", "green"],
    "nested": {"inner": 1},
    "items": [{"name": "a", "size": 1}, {"name": "b", "size": 2}],
    "star": "a*b"
  }
}`

func TestMatch(t *testing.T) {
	cases := []struct {
		name    string
		pattern string
		want    bool
	}{
		{"exact string", `{"source":["aws.cloudformation"]}`, true},
		{"exact string any of", `{"source":["aws.ec2","aws.cloudformation"]}`, true},
		{"exact string mismatch", `{"source":["aws.ec2"]}`, false},
		{"all fields must match", `{"source":["aws.cloudformation"],"detail-type":["Other"]}`, false},
		{"nested object", `{"detail":{"status-details":{"status":["CREATE_COMPLETE","UPDATE_COMPLETE"]}}}`, true},
		{"nested object mismatch", `{"detail":{"status-details":{"status":["ROLLBACK_COMPLETE"]}}}`, false},
		{"top-level account", `{"account":["999999999999"]}`, false},
		{"array in event: any element", `{"resources":[{"prefix":"arn:aws:cloudformation:us-west-1:111122223333:stack/clickhouse-"}]}`, true},
		{"array in event: exact element", `{"detail":{"tags":["green"]}}`, true},
		{"array in event: no element", `{"detail":{"tags":["red"]}}`, false},
		{"number exact", `{"detail":{"count":[5]}}`, true},
		{"number exact other notation", `{"detail":{"ratio":[3.018e2]}}`, true},
		{"number does not match string", `{"detail":{"count":["5"]}}`, false},
		{"string does not match number", `{"detail":{"ip":[10]}}`, false},
		{"boolean", `{"detail":{"flag":[true]}}`, true},
		{"boolean mismatch", `{"detail":{"flag":[false]}}`, false},
		{"null", `{"detail":{"nothing":[null]}}`, true},
		{"null does not match missing field", `{"detail":{"missing":[null]}}`, false},
		{"empty string", `{"detail":{"status-details":{"status-reason":[""]}}}`, true},
		{"prefix", `{"detail":{"stack-id":[{"prefix":"arn:aws:cloudformation:"}]}}`, true},
		{"prefix mismatch", `{"detail":{"stack-id":[{"prefix":"arn:aws:ec2:"}]}}`, false},
		{"prefix ignore case", `{"source":[{"prefix":{"equals-ignore-case":"AWS.CLOUD"}}]}`, true},
		{"prefix only strings", `{"detail":{"count":[{"prefix":"5"}]}}`, false},
		{"suffix", `{"detail-type":[{"suffix":"Status Change"}]}`, true},
		{"suffix mismatch", `{"detail-type":[{"suffix":"Drift"}]}`, false},
		{"suffix ignore case", `{"detail-type":[{"suffix":{"equals-ignore-case":"STATUS CHANGE"}}]}`, true},
		{"equals ignore case", `{"source":[{"equals-ignore-case":"AWS.CloudFormation"}]}`, true},
		{"wildcard", `{"detail":{"stack-id":[{"wildcard":"arn:aws:cloudformation:*:stack/clickhouse-*/*"}]}}`, true},
		{"wildcard mismatch", `{"detail":{"stack-id":[{"wildcard":"arn:aws:cloudformation:*:stack/other-*"}]}}`, false},
		{"wildcard escaped star", `{"detail":{"star":[{"wildcard":"a\\*b"}]}}`, true},
		{"wildcard escaped star is literal", `{"detail":{"status-details":{"status":[{"wildcard":"CREATE\\*"}]}}}`, false},
		{"anything-but string", `{"detail":{"status-details":{"status":[{"anything-but":"DELETE_COMPLETE"}]}}}`, true},
		{"anything-but string excluded", `{"detail":{"status-details":{"status":[{"anything-but":["CREATE_COMPLETE","X"]}]}}}`, false},
		{"anything-but missing field", `{"detail":{"missing":[{"anything-but":"x"}]}}`, false},
		{"anything-but number", `{"detail":{"count":[{"anything-but":[1,2]}]}}`, true},
		{"anything-but number excluded", `{"detail":{"count":[{"anything-but":5}]}}`, false},
		{"anything-but array: one element not excluded", `{"detail":{"tags":[{"anything-but":"blue"}]}}`, true},
		{"anything-but array: all excluded", `{"detail":{"tags":[{"anything-but":["blue","green"]}]}}`, false},
		{"anything-but prefix", `{"source":[{"anything-but":{"prefix":"aws.ec2"}}]}`, true},
		{"anything-but prefix excluded", `{"source":[{"anything-but":{"prefix":"aws."}}]}`, false},
		{"anything-but suffix excluded", `{"source":[{"anything-but":{"suffix":"formation"}}]}`, false},
		{"anything-but ignore case excluded", `{"source":[{"anything-but":{"equals-ignore-case":["AWS.CLOUDFORMATION"]}}]}`, false},
		{"anything-but wildcard excluded", `{"source":[{"anything-but":{"wildcard":"aws.*"}}]}`, false},
		{"anything-but wildcard", `{"source":[{"anything-but":{"wildcard":"custom.*"}}]}`, true},
		{"numeric range", `{"detail":{"count":[{"numeric":[">",0,"<=",5]}]}}`, true},
		{"numeric open upper bound excludes", `{"detail":{"count":[{"numeric":[">",0,"<",5]}]}}`, false},
		{"numeric equals", `{"detail":{"ratio":[{"numeric":["=",301.8]}]}}`, true},
		{"numeric lower only", `{"detail":{"count":[{"numeric":[">=",6]}]}}`, false},
		{"numeric ignores strings", `{"detail":{"ip":[{"numeric":[">",0]}]}}`, false},
		{"exists true", `{"detail":{"count":[{"exists":true}]}}`, true},
		{"exists true on null", `{"detail":{"nothing":[{"exists":true}]}}`, true},
		{"exists true missing", `{"detail":{"missing":[{"exists":true}]}}`, false},
		{"exists false missing", `{"detail":{"missing":[{"exists":false}]}}`, true},
		{"exists false present", `{"detail":{"count":[{"exists":false}]}}`, false},
		{"exists true on object is not a leaf", `{"detail":{"nested":[{"exists":true}]}}`, false},
		{"exists false on object is not a leaf", `{"detail":{"nested":[{"exists":false}]}}`, true},
		{"exists false on empty array", `{"detail":{"empty":[{"exists":false}]}}`, true},
		{"exists true on empty array", `{"detail":{"empty":[{"exists":true}]}}`, false},
		{"cidr", `{"detail":{"ip":[{"cidr":"10.0.0.0/24"}]}}`, true},
		{"cidr mismatch", `{"detail":{"ip":[{"cidr":"10.0.1.0/24"}]}}`, false},
		{"or first", `{"$or":[{"source":["aws.cloudformation"]},{"source":["x"]}]}`, true},
		{"or second", `{"$or":[{"source":["x"]},{"detail":{"count":[5]}}]}`, true},
		{"or none", `{"$or":[{"source":["x"]},{"detail":{"count":[6]}}]}`, false},
		{"or and field both required", `{"detail-type":["Other"],"$or":[{"source":["aws.cloudformation"]},{"account":["x"]}]}`, false},
		{"or nested", `{"detail":{"$or":[{"count":[1]},{"status-details":{"status":["CREATE_COMPLETE"]}}]}}`, true},
		{"array of objects: same element", `{"detail":{"items":{"name":["b"],"size":[2]}}}`, true},
		{"array of objects: fields of different elements do not combine", `{"detail":{"items":{"name":["a"],"size":[2]}}}`, false},
		{"nested pattern against scalar", `{"source":{"x":["y"]}}`, false},
		{"nested pattern against missing", `{"missing":{"x":["y"]}}`, false},
		{"forwarding rule of the bootstrap stack", `{"source":["aws.cloudformation"],"detail-type":["CloudFormation Stack Status Change"],"detail":{"stack-id":[{"wildcard":"*:stack/clickhouse-*"}]}}`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Compile([]byte(c.pattern))
			if err != nil {
				t.Fatalf("Compile(%s): %v", c.pattern, err)
			}
			got, err := p.MatchJSON([]byte(stackEvent))
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("MatchJSON = %v, want %v for pattern %s", got, c.want, c.pattern)
			}
			// The decoded form (float64 numbers, as encoding/json produces without UseNumber)
			// must agree with the JSON form.
			var decoded map[string]any
			if err := json.Unmarshal([]byte(stackEvent), &decoded); err != nil {
				t.Fatal(err)
			}
			if got := p.Match(decoded); got != c.want {
				t.Errorf("Match(decoded) = %v, want %v", got, c.want)
			}
		})
	}
}

func TestCompileRejectsInvalidPatterns(t *testing.T) {
	cases := []struct {
		pattern  string
		path     string
		contains string
	}{
		{`not json`, "", "not valid JSON"},
		{`["source"]`, "", "must be a JSON object"},
		{`{}`, "", "must not be an empty object"},
		{`{"source":"aws.ec2"}`, "source", "must be an object or an array"},
		{`{"source":[]}`, "source", "must not be an empty array"},
		{`{"detail":{}}`, "detail", "must not be an empty object"},
		{`{"detail":{"x":[["a"]]}}`, "detail.x", "nested array"},
		{`{"source":[{"prefix":1}]}`, "source", "prefix must be a string"},
		{`{"source":[{"prefix":"a","suffix":"b"}]}`, "source", "exactly one operator"},
		{`{"source":[{"regex":"a.*"}]}`, "source", `unrecognized operator "regex"`},
		{`{"source":[{"exists":"yes"}]}`, "source", "exists must be true or false"},
		{`{"source":[{"wildcard":"a**b"}]}`, "source", "consecutive '*'"},
		{`{"source":[{"wildcard":"a\\b"}]}`, "source", "backslash"},
		{`{"source":[{"anything-but":["a",1]}]}`, "source", "all strings or all numbers"},
		{`{"source":[{"anything-but":[]}]}`, "source", "empty array"},
		{`{"source":[{"anything-but":{"contains":"a"}}]}`, "source", `does not support "contains"`},
		{`{"source":[{"anything-but":true}]}`, "source", "anything-but must be"},
		{`{"n":[{"numeric":[">"]}]}`, "n", "operator, number pairs"},
		{`{"n":[{"numeric":["~",1]}]}`, "n", `"~" is not one of`},
		{`{"n":[{"numeric":[">",1,">",2]}]}`, "n", "more than one lower bound"},
		{`{"n":[{"numeric":["<",1,"<=",2]}]}`, "n", "more than one upper bound"},
		{`{"n":[{"numeric":["=",1,"<",2]}]}`, "n", `"=" cannot be combined`},
		{`{"n":[{"numeric":[">",5,"<",1]}]}`, "n", "range is empty"},
		{`{"n":[{"numeric":[">","1"]}]}`, "n", "followed by a number"},
		{`{"ip":[{"cidr":"10.0.0.300/8"}]}`, "ip", "not a valid CIDR"},
		{`{"$or":[{"source":["a"]}]}`, "$or", "at least two objects"},
		{`{"$or":[{"source":["a"]},"b"]}`, "$or[1]", "must be an object"},
		{`{"$or":[{"source":["a"]},{"detail":{"x":"y"}}]}`, "detail.x", "must be an object or an array"},
	}
	for _, c := range cases {
		t.Run(c.pattern, func(t *testing.T) {
			_, err := Compile([]byte(c.pattern))
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("Compile(%s) error = %v, want *Error", c.pattern, err)
			}
			if perr.Path != c.path {
				t.Errorf("Path = %q, want %q", perr.Path, c.path)
			}
			if !strings.Contains(err.Error(), c.contains) || !strings.HasPrefix(err.Error(), "Event pattern is not valid. Reason: ") {
				t.Errorf("error %q should start with EventBridge's prefix and contain %q", err, c.contains)
			}
		})
	}
}

func TestMatchJSONRejectsBadEvents(t *testing.T) {
	p := MustCompile(`{"source":["a"]}`)
	for _, event := range []string{`{"source":`, `["a"]`} {
		if _, err := p.MatchJSON([]byte(event)); err == nil {
			t.Errorf("MatchJSON(%s) = nil error, want an error", event)
		}
	}
}

func TestWildcard(t *testing.T) {
	cases := []struct {
		pattern, value string
		want           bool
	}{
		{"*", "", true},
		{"*", "anything", true},
		{"a*", "abc", true},
		{"*c", "abc", true},
		{"a*c", "ac", true},
		{"a*c", "ab", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "acb", false},
		{"ab*ba", "aba", false}, // prefix and suffix must not overlap
		{"exact", "exact", true},
		{"exact", "exactly", false},
		{`\\*`, `\anything`, true},
	}
	for _, c := range cases {
		w, err := compileWildcard(c.pattern)
		if err != nil {
			t.Fatalf("compileWildcard(%q): %v", c.pattern, err)
		}
		if got := w.match(c.value); got != c.want {
			t.Errorf("wildcard %q match %q = %v, want %v", c.pattern, c.value, got, c.want)
		}
	}
}

func BenchmarkMatchForwardingRule(b *testing.B) {
	p := MustCompile(`{"source":["aws.cloudformation"],"detail-type":["CloudFormation Stack Status Change"],"detail":{"stack-id":[{"wildcard":"*:stack/clickhouse-*"}]}}`)
	var event map[string]any
	if err := json.Unmarshal([]byte(stackEvent), &event); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !p.Match(event) {
			b.Fatal("no match")
		}
	}
}
