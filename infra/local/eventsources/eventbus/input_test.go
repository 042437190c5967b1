package eventbus

import (
	"strings"
	"testing"
)

const sample = `{"id":"e1","detail":{"name":"a \"quoted\" name","n":3,"list":[{"k":"v"}],"obj":{"x":1}}}`

func TestInputTransformerPlacesValuesAsEventBridgeDoes(t *testing.T) {
	in := TargetInput{HasTransform: true,
		InputPathsMap: map[string]string{"name": "$.detail.name", "n": "$.detail.n", "obj": "$.detail.obj", "k": "$.detail.list[0].k", "gone": "$.detail.missing"},
		InputTemplate: `{"name": <name>, "say": "hi <name>, n=<n>", "obj": <obj>, "k": "<k>", "gone": <gone>, "keep": "<notavar>", "id": "<aws.events.rule-name>"}`,
	}
	out, err := in.Apply([]byte(sample), RuleContext{RuleName: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name": "a \"quoted\" name", "say": "hi a \"quoted\" name, n=3", "obj": {"x":1}, "k": "v", "gone": null, "keep": "<notavar>", "id": "r1"}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
	whole, err := TargetInput{HasTransform: true, InputTemplate: `<aws.events.event>`}.Apply([]byte(sample), RuleContext{})
	if err != nil || string(whole) != sample {
		t.Errorf("<aws.events.event> = %s, %v", whole, err)
	}
}

func TestInputPathSelectsAPart(t *testing.T) {
	for path, want := range map[string]string{
		"$":                 sample,
		"$.detail.n":        "3",
		"$['detail'].obj":   `{"x":1}`,
		"$.detail.list[0]":  `{"k":"v"}`,
		"$.detail.list[5]":  "null",
		"$.detail.n.deeper": "null",
	} {
		out, err := TargetInput{InputPath: path}.Apply([]byte(sample), RuleContext{})
		if err != nil || string(out) != want {
			t.Errorf("InputPath %s = %s, %v; want %s", path, out, err, want)
		}
	}
}

func TestBadTargetInputsAreRefusedNamingTheField(t *testing.T) {
	cases := []struct {
		in   TargetInput
		want string
	}{
		{TargetInput{InputPath: "detail"}, `InputPath "detail": must start with $`},
		{TargetInput{InputPath: "$.a[x]"}, `InputPath "$.a[x]": index "x" must be a non-negative integer`},
		{TargetInput{InputPath: "$..a"}, `InputPath "$..a": empty field name`},
		{TargetInput{Input: "{not json"}, "target Input is not valid JSON"},
		{TargetInput{HasTransform: true, InputPathsMap: map[string]string{"aws.x": "$.id"}}, `InputPathsMap "aws.x": names starting with aws. are reserved`},
		{TargetInput{HasTransform: true, InputPathsMap: map[string]string{"v": "id"}}, `InputPathsMap v "id": must start with $`},
	}
	for _, c := range cases {
		out, err := c.in.Apply([]byte(sample), RuleContext{})
		if err == nil || !strings.Contains(err.Error(), c.want) || out != nil {
			t.Errorf("%+v: output %s, error %v; want no output and %q", c.in, out, err, c.want)
		}
	}
}
