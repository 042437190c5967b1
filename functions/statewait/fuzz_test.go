package main

import (
	"encoding/json"
	"errors"
	"math"
	"testing"

	"github.com/byocloud/byoc/shared/samples"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/settings"
)

// FuzzRequest: whatever a workflow passes, a request either fails validation with an
// InvalidRequestError or is one statewait can serve: a deployment id of the rule, a token,
// whole seconds within the maximum wait. Seeds: the statewait samples.
func FuzzRequest(f *testing.F) {
	for _, raw := range samples.Read(f, "statewait") {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var req Request
		if json.Unmarshal(raw, &req) != nil {
			return // Lambda refuses it before the handler runs
		}
		err := req.Validate()
		var invalid *InvalidRequestError
		if err != nil {
			if !errors.As(err, &invalid) {
				t.Fatalf("error %T %v, want an InvalidRequestError", err, err)
			}
			return
		}
		if !settings.ValidDeploymentID(req.DeploymentID) || req.TaskToken == "" || req.TimeoutSeconds != math.Trunc(req.TimeoutSeconds) ||
			req.TimeoutSeconds < 1 || req.TimeoutSeconds > servicestate.MaxWait.Seconds() {
			t.Fatalf("accepted %+v", req)
		}
	})
}
