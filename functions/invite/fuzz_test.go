package main

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/byocloud/byoc/shared/samples"
	"github.com/byocloud/byoc/shared/settings"
)

// FuzzDecode: whatever an operator sends, decoding never panics and a refusal is a
// ValidationError naming a field; an accepted request encodes and decodes to itself. Seeds:
// the invite samples.
func FuzzDecode(f *testing.F) {
	for _, raw := range samples.Read(f, "invite") {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, err := decode(json.RawMessage(raw))
		if err != nil {
			var v *settings.ValidationError
			if !errors.As(err, &v) || len(v.Errors) == 0 || v.Errors[0].Field == "" {
				t.Fatalf("error %T %v names no field", err, err)
			}
			return
		}
		again, _ := json.Marshal(req)
		back, err := decode(again)
		if err != nil {
			t.Fatalf("a decoded request %s does not decode again: %v", again, err)
		}
		if b, _ := json.Marshal(back); string(b) != string(again) {
			t.Fatalf("round trip %s -> %s", again, b)
		}
	})
}
