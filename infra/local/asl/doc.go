// Package asl runs Amazon States Language state machines (JSONPath query language) the way
// AWS Step Functions runs them, for byoc's local cloud. It has no AWS dependency: Task states
// reach Lambda, SQS and EventBridge through the Tasks interface, and nested executions run in
// the engine itself.
//
// What it runs: every state type (Pass, Task, Choice, Wait, Succeed, Fail, Parallel, inline
// Map); input and output processing in AWS's order (InputPath, Parameters, ResultSelector,
// ResultPath, OutputPath) with the context object; every intrinsic function; Retry (with
// MaxDelaySeconds and JitterStrategy) and Catch with AWS's matching rules; task, heartbeat and
// execution timeouts; the lambda:invoke, bare function ARN, states:startExecution (.sync,
// .sync:2, .waitForTaskToken), sqs:sendMessage and events:putEvents integrations.
//
// What it refuses: anything it does not implement (JSONata, variables, Distributed Map, other
// integrations, activities) is rejected when the state machine is created, with the JSON
// pointer of the offending field, so a definition can never run locally with a feature
// quietly ignored.
//
// Time comes from a Clock: SystemClock in the local cloud, ManualClock or a testing/synctest
// bubble in tests, where waits, back-off and timeouts take no real time.
package asl
