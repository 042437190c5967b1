package asl

import (
	"fmt"
	"slices"
)

// Predefined error names (Amazon States Language appendix A and the AWS developer guide).
const (
	ErrAll                    = "States.ALL"
	ErrTimeout                = "States.Timeout"
	ErrHeartbeatTimeout       = "States.HeartbeatTimeout"
	ErrTaskFailed             = "States.TaskFailed"
	ErrRuntime                = "States.Runtime"
	ErrDataLimitExceeded      = "States.DataLimitExceeded"
	ErrNoChoiceMatched        = "States.NoChoiceMatched"
	ErrResultPathMatchFailure = "States.ResultPathMatchFailure"
	ErrBranchFailed           = "States.BranchFailed"
	ErrExceedToleratedFailure = "States.ExceedToleratedFailureThreshold"
)

// Failure is an error raised while running a state: its name and its cause, exactly as Step
// Functions reports them in the error output ({"Error": ..., "Cause": ...}) and the history.
type Failure struct {
	Name  string
	Cause string

	located bool // the cause already names the state it happened in
	aborted bool // the branch was cancelled (stop, timeout or a failed sibling), not failed
}

func (f *Failure) Error() string {
	if f.Cause == "" {
		return f.Name
	}
	return f.Name + ": " + f.Cause
}

func runtimeError(format string, args ...any) *Failure {
	return &Failure{Name: ErrRuntime, Cause: fmt.Sprintf(format, args...)}
}

// errorOutput is what Catch passes on: AWS always sets both members, "" when absent.
func (f *Failure) errorOutput() *Object {
	return NewObject(Member{"Error", f.Name}, Member{"Cause", f.Cause})
}

// recoverable reports whether Retry and Catch may see the error at all. AWS: "A States.Runtime
// error is not retriable, and will always cause the execution to fail."
func (f *Failure) recoverable() bool { return f.Name != ErrRuntime }

// matchesErrorEquals applies AWS's matching rules to one ErrorEquals list.
func matchesErrorEquals(list []string, name string) bool {
	if name == ErrRuntime {
		return false
	}
	if slices.Contains(list, name) {
		return true
	}
	for _, want := range list {
		switch want {
		case ErrAll:
			// States.ALL does not catch the terminal States.DataLimitExceeded.
			if name != ErrDataLimitExceeded {
				return true
			}
		case ErrTaskFailed:
			// A wildcard for every error except timeouts (and the terminal ones).
			if name != ErrTimeout && name != ErrHeartbeatTimeout && name != ErrDataLimitExceeded {
				return true
			}
		case ErrTimeout:
			// A heartbeat timeout is a timeout: "States.Timeout" covers both.
			if name == ErrHeartbeatTimeout {
				return true
			}
		}
	}
	return false
}
