package cloud

import (
	"errors"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
)

// ErrorCode returns the AWS error code of err ("ThrottlingException", "ValidationError", ...),
// or "" when err did not come from an AWS API.
func ErrorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

// ErrorMessage returns the AWS error message of err, or err.Error() for other errors.
func ErrorMessage(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorMessage()
	}
	return err.Error()
}

// IsTransient reports whether err is worth retrying later: throttling, a 5xx, a timeout, a
// dropped connection. It uses the SDK's own retry classification, so it agrees with what the
// SDK retryer already tried; a step that still fails with such an error is retried by the
// workflow with a longer backoff.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	// An answer cut off mid-body (the connection dropped after the status line) fails to
	// deserialize with io.ErrUnexpectedEOF, which the SDK does not retry. It is a dropped
	// connection like any other: the call's outcome is unknown, and byoc's calls are
	// idempotent, so a later retry is safe.
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	return retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary
}

// IsAccessDenied reports whether AWS refused the call for lack of permission.
func IsAccessDenied(err error) bool {
	switch ErrorCode(err) {
	case "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthFailure":
		return true
	}
	return false
}
