package stackevent_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/byocloud/byoc/shared/samples"
	"github.com/byocloud/byoc/shared/stackevent"
)

// FuzzParse: whatever arrives on the bus, Parse never panics, and an event it accepts is one
// a handler may act on: its stack is in the account that put it, in the envelope's region,
// with a status CloudFormation emits. Seeds: every sample event of onboard and stackevents.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"onboard", "stackevents"} {
		for _, raw := range samples.Read(f, dir) {
			f.Add(raw)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var ev events.CloudWatchEvent
		if json.Unmarshal(raw, &ev) != nil {
			return
		}
		e, err := stackevent.Parse(ev)
		if err != nil {
			var forged *stackevent.ForgedError
			if !errors.Is(err, stackevent.ErrMalformed) && !errors.As(err, &forged) {
				t.Fatalf("error %v is neither malformed nor forged", err)
			}
			return
		}
		if e.Stack.AccountID != ev.AccountID || (ev.Region != "" && e.Stack.Region != ev.Region) || !stackevent.Known(e.Status) ||
			(len(ev.Resources) > 0 && !slices.Contains(ev.Resources, e.Stack.ID)) {
			t.Fatalf("accepted %+v from envelope account %s region %s resources %v", e, ev.AccountID, ev.Region, ev.Resources)
		}
	})
}
