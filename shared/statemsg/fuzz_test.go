package statemsg

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/byocloud/byoc/shared/samples"
)

// FuzzParse: whatever a sender puts on the state queue, Parse never panics, every refusal has
// a rejection reason, and a message it accepts encodes and parses back to the same message.
// Seeds: the bodies of every state sample event.
func FuzzParse(f *testing.F) {
	for _, raw := range samples.Read(f, "state") {
		var ev struct{ Records []struct{ Body string } }
		if json.Unmarshal(raw, &ev) == nil {
			for _, r := range ev.Records {
				f.Add([]byte(r.Body))
			}
		}
	}
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := Parse(body, now)
		if err != nil {
			if Reason(err) == "" {
				t.Fatalf("refusal %v has no rejection reason", err)
			}
			return
		}
		again, err := Encode(m, now)
		if err != nil {
			t.Fatalf("an accepted message does not encode: %v", err)
		}
		back, err := Parse(again, now)
		if err != nil || back.OrderKey() != m.OrderKey() || back.DeploymentID != m.DeploymentID || back.ServiceID != m.ServiceID {
			t.Fatalf("round trip: %+v %v, want %+v", back, err, m)
		}
	})
}
