package asl_test

import (
	"context"
	"fmt"
	"time"

	"github.com/byocloud/byoc/infra/local/asl"
)

// A workflow run with a Lambda written as a plain Go function: the first call fails with one
// of our own error names, the Retry names it, the second call succeeds.
func ExampleEngine() {
	calls := 0
	lambda := asl.TaskFuncs{InvokeFunc: func(ctx context.Context, in *asl.InvokeInput) (*asl.InvokeOutput, error) {
		calls++
		if calls == 1 {
			return &asl.InvokeOutput{StatusCode: 200, FunctionError: "Unhandled",
				Payload: []byte(`{"errorType":"TransientError","errorMessage":"try again"}`)}, nil
		}
		return &asl.InvokeOutput{StatusCode: 200, Payload: []byte(`{"greeting":"hello"}`)}, nil
	}}
	clock := asl.NewManualClock(asl.SystemClock().Now())
	engine := asl.NewEngine(asl.Options{Tasks: lambda, Clock: clock})
	machine, err := engine.CreateStateMachine(asl.CreateStateMachineInput{
		Name:    "hello",
		RoleARN: "arn:aws:iam::000000000000:role/states",
		Definition: `{"StartAt":"Greet","States":{"Greet":{"Type":"Task",
		  "Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"greeter","Payload.$":"$"},
		  "Retry":[{"ErrorEquals":["TransientError"],"IntervalSeconds":5}],
		  "OutputPath":"$.Payload","End":true}}}`,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	run, _ := engine.StartExecution(machine.ARN, "first", `{"name":"byoc"}`)
	_ = clock.WaitForPending(context.Background(), 1) // the retry's 5 s back-off
	clock.Advance(5 * time.Second)
	done, _ := engine.Wait(context.Background(), run.ARN)
	fmt.Println(done.Status, done.Output, calls)
	// Output: SUCCEEDED {"greeting":"hello"} 2
}
