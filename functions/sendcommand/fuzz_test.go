package main

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/byocloud/byoc/shared/samples"
)

// FuzzDecodeRequest: whatever a workflow passes, decoding never panics and a request it
// cannot read is an InvalidRequestError (which the workflow does not retry). Seeds: the
// sendcommand samples.
func FuzzDecodeRequest(f *testing.F) {
	for _, raw := range samples.Read(f, "sendcommand") {
		f.Add(raw)
	}
	f.Add([]byte(`{"id":"c","deploymentId":"dep1","kind":"scale","params":["x"]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, err := decodeRequest(json.RawMessage(raw))
		var invalid *InvalidRequestError
		if err != nil && !errors.As(err, &invalid) {
			t.Fatalf("error %T %v, want an InvalidRequestError", err, err)
		}
		if err == nil && json.Valid(raw) {
			if _, err := json.Marshal(req); err != nil {
				t.Fatalf("a decoded request does not encode: %v", err)
			}
		}
	})
}
