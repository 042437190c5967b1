package lifecycle_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/byocloud/byoc/shared/lifecycle"
)

// want is the state machine the issue asks for, written out independently of the package's
// table so that a typo in either one fails the test.
var want = map[string][]string{
	"invited":      {"provisioning", "deleting"},
	"provisioning": {"ready", "failed"},
	"failed":       {"provisioning", "deleting"},
	"ready":        {"updating", "deleting"},
	"updating":     {"ready", "failed"},
	"deleting":     {"deleted", "failed"},
	"deleted":      {},
}

func TestEveryPairOfStatuses(t *testing.T) {
	all := lifecycle.All()
	if len(all) != len(want) {
		t.Fatalf("All() = %v, want the %d statuses %v", all, len(want), want)
	}
	for _, from := range all {
		allowed, ok := want[string(from)]
		if !ok {
			t.Fatalf("status %q is not in the expected machine", from)
		}
		for _, to := range all {
			err := lifecycle.Transition(from, to)
			if slices.Contains(allowed, string(to)) {
				if err != nil {
					t.Errorf("Transition(%s, %s) = %v, want allowed", from, to, err)
				}
				continue
			}
			var te *lifecycle.TransitionError
			if !errors.As(err, &te) {
				t.Errorf("Transition(%s, %s) = %v, want *TransitionError", from, to, err)
				continue
			}
			if te.From != from || te.To != to {
				t.Errorf("Transition(%s, %s) error names %s -> %s", from, to, te.From, te.To)
			}
			if got := statusStrings(te.Allowed); !slices.Equal(got, allowed) {
				t.Errorf("Transition(%s, %s) error allows %v, want %v", from, to, got, allowed)
			}
			msg := err.Error()
			if !strings.Contains(msg, `"`+string(from)+`"`) || !strings.Contains(msg, `"`+string(to)+`"`) {
				t.Errorf("Transition(%s, %s) message %q does not name both statuses", from, to, msg)
			}
			for _, a := range allowed {
				if !strings.Contains(msg, a) {
					t.Errorf("Transition(%s, %s) message %q does not list allowed %q", from, to, msg, a)
				}
			}
		}
		if got := statusStrings(lifecycle.Allowed(from)); !slices.Equal(got, allowed) {
			t.Errorf("Allowed(%s) = %v, want %v", from, got, allowed)
		}
	}
}

func TestTerminalMessageSaysTerminal(t *testing.T) {
	err := lifecycle.Transition(lifecycle.Deleted, lifecycle.Provisioning)
	if err == nil || !strings.Contains(err.Error(), "terminal") {
		t.Fatalf("Transition(deleted, provisioning) = %v, want an error saying deleted is terminal", err)
	}
}

func TestSameStatusIsNotATransition(t *testing.T) {
	for _, s := range lifecycle.All() {
		if err := lifecycle.Transition(s, s); err == nil {
			t.Errorf("Transition(%s, %s) allowed; a status never moves to itself", s, s)
		}
	}
}

func TestUnknownStatusesAreRefused(t *testing.T) {
	cases := []struct {
		from, to lifecycle.Status
		mention  string
	}{
		{"", lifecycle.Ready, `unknown status ""`},
		{"Ready", lifecycle.Updating, `unknown status "Ready"`},
		{lifecycle.Ready, "archived", `unknown status "archived"`},
	}
	for _, c := range cases {
		err := lifecycle.Transition(c.from, c.to)
		var te *lifecycle.TransitionError
		if !errors.As(err, &te) {
			t.Fatalf("Transition(%q, %q) = %v, want *TransitionError", c.from, c.to, err)
		}
		if !strings.Contains(err.Error(), c.mention) {
			t.Errorf("Transition(%q, %q) message %q, want it to mention %s", c.from, c.to, err, c.mention)
		}
	}
	if got := lifecycle.Allowed("archived"); len(got) != 0 {
		t.Errorf("Allowed(unknown) = %v, want none", got)
	}
}

func TestTerminal(t *testing.T) {
	for _, s := range lifecycle.All() {
		if got, wantTerminal := s.Terminal(), len(want[string(s)]) == 0; got != wantTerminal {
			t.Errorf("%s.Terminal() = %v, want %v", s, got, wantTerminal)
		}
	}
	if lifecycle.Status("archived").Terminal() {
		t.Error("an unknown status reported terminal")
	}
}

func TestParse(t *testing.T) {
	for _, s := range lifecycle.All() {
		got, err := lifecycle.Parse(string(s))
		if err != nil || got != s {
			t.Errorf("Parse(%q) = %q, %v", s, got, err)
		}
	}
	for _, bad := range []string{"", "READY", " ready", "archived"} {
		if _, err := lifecycle.Parse(bad); err == nil || !strings.Contains(err.Error(), "unknown status") {
			t.Errorf("Parse(%q) = %v, want unknown status error", bad, err)
		}
	}
}

func TestStatusValuesAreLowercaseWords(t *testing.T) {
	for _, s := range lifecycle.All() {
		if _, ok := want[string(s)]; !ok || strings.ToLower(string(s)) != string(s) {
			t.Errorf("status value %q is not one of the stored lowercase names", s)
		}
	}
}

func TestAllowedReturnsACopy(t *testing.T) {
	got := lifecycle.Allowed(lifecycle.Ready)
	got[0] = lifecycle.Deleted
	if err := lifecycle.Transition(lifecycle.Ready, lifecycle.Deleted); err == nil {
		t.Fatal("mutating Allowed's result changed the state machine")
	}
	all := lifecycle.All()
	all[0] = "x"
	if lifecycle.All()[0] != lifecycle.Invited {
		t.Fatal("mutating All's result changed the status list")
	}
}

// TestEveryStatusCanEndDeleted guards against dead ends: from every status a deployment can
// still be torn down, and every status is reachable from invited.
func TestEveryStatusCanEndDeleted(t *testing.T) {
	reach := func(from lifecycle.Status) map[lifecycle.Status]bool {
		seen := map[lifecycle.Status]bool{from: true}
		queue := []lifecycle.Status{from}
		for len(queue) > 0 {
			s := queue[0]
			queue = queue[1:]
			for _, n := range lifecycle.Allowed(s) {
				if !seen[n] {
					seen[n] = true
					queue = append(queue, n)
				}
			}
		}
		return seen
	}
	for _, s := range lifecycle.All() {
		if !reach(s)[lifecycle.Deleted] {
			t.Errorf("no path from %s to deleted", s)
		}
	}
	fromInvited := reach(lifecycle.Invited)
	for _, s := range lifecycle.All() {
		if !fromInvited[s] {
			t.Errorf("%s is unreachable from invited", s)
		}
	}
}

func statusStrings(ss []lifecycle.Status) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}
