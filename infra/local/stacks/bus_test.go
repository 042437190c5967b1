package stacks

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
)

func TestTargetInput(t *testing.T) {
	event := `{"version":"0","source":"aws.cloudformation","account":"111111111111","detail":{"stack-id":"arn:x","status-details":{"status":"CREATE_COMPLETE"},"n":5}}`
	cases := []struct {
		name   string
		target ebtypes.Target
		want   string
		fails  bool
	}{
		{"whole event", ebtypes.Target{}, event, false},
		{"constant input", ebtypes.Target{Input: aws.String(`{"fixed":true}`)}, `{"fixed":true}`, false},
		{"input path", ebtypes.Target{InputPath: aws.String("$.detail.status-details")}, `{"status":"CREATE_COMPLETE"}`, false},
		{"input path root", ebtypes.Target{InputPath: aws.String("$")}, event, false},
		{"input path missing", ebtypes.Target{InputPath: aws.String("$.detail.nope")}, "", true},
		{"input path not a path", ebtypes.Target{InputPath: aws.String("detail")}, "", true},
		{"transformer", ebtypes.Target{InputTransformer: &ebtypes.InputTransformer{
			InputPathsMap: map[string]string{"stack": "$.detail.stack-id", "n": "$.detail.n", "missing": "$.nope"},
			InputTemplate: aws.String(`{"stack": "<stack>", "n": <n>, "m": <missing>}`),
		}}, `{"stack": "arn:x", "n": 5, "m": null}`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := targetInput(c.target, []byte(event))
			if c.fails {
				if err == nil {
					t.Fatalf("targetInput = %s, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Errorf("targetInput = %s\nwant %s", got, c.want)
			}
		})
	}
}
