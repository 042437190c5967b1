package steperr

import (
	"errors"
	"fmt"
	"testing"

	"github.com/aws/smithy-go"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/customerstack"
	"github.com/byocloud/byoc/shared/store"
)

// Errors reach the workflow under the names its Retry and Catch use.
func TestClassifyNamesErrorsForTheWorkflow(t *testing.T) {
	named := &Refused{Reason: "busy"}
	for _, c := range []struct {
		err  error
		want string
	}{
		{&smithy.GenericAPIError{Code: "ThrottlingException", Message: "slow down"}, "*steperr.TransientError"},
		{fmt.Errorf("update: %w", store.ErrConflict), "*steperr.TransientError"},
		{&smithy.GenericAPIError{Code: "AccessDenied", Message: "not authorized"}, "*steperr.AccessDenied"},
		{fmt.Errorf("describe: %w", &customerstack.BlockedError{}), "*steperr.StackBlocked"},
		// A withdrawn or mistrusting management role, as cloud.AssumeRole reports it.
		{&cloud.AccessDeniedError{RoleARN: "arn:aws:iam::111122223333:role/x", Err: &smithy.GenericAPIError{Code: "AccessDenied", Message: "not authorized"}}, "*steperr.AccessDenied"},
		{fmt.Errorf("wrapped: %w", named), "*fmt.wrapError"}, // already named: passed through as it is
		{errors.New("a defect"), "*errors.errorString"},
	} {
		if got := fmt.Sprintf("%T", Classify(c.err)); got != c.want {
			t.Errorf("Classify(%v) is %s, want %s", c.err, got, c.want)
		}
	}
	if Classify(nil) != nil {
		t.Fatal("Classify(nil) is not nil")
	}
}
