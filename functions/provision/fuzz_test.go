package main

import (
	"testing"

	"github.com/byocloud/byoc/shared/steperr"
)

// FuzzParseCaught: whatever a Catch put at $.error, the failure step reads a name and a
// message from it, never an empty one, and never panics.
func FuzzParseCaught(f *testing.F) {
	f.Add("StackFailed", `{"stackId":"arn:aws:cloudformation:us-west-2:111122223333:stack/x/1","status":"ROLLBACK_COMPLETE","reason":"r","outcome":"failed"}`)
	f.Add("States.TaskFailed", `{"errorMessage":"boom","errorType":"TransientError"}`)
	f.Add("", "")
	f.Add("NotOwner", "not json")
	f.Fuzz(func(t *testing.T, name, cause string) {
		gotName, message, _ := parseCaught(&steperr.Caught{Error: name, Cause: cause})
		if gotName == "" || message == "" {
			t.Fatalf("parseCaught(%q, %q) = %q, %q", name, cause, gotName, message)
		}
	})
}
