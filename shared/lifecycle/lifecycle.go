// Package lifecycle defines the states of a deployment and the transitions between them.
// The store writes a status only after Transition approves it, and conditions the write on
// the status it read, so duplicate or out-of-order events cannot skip a state.
package lifecycle

import (
	"fmt"
	"slices"
	"strings"
)

// Status is where a deployment is in its life.
type Status string

const (
	// Invited: the customer has been given the bootstrap template; nothing exists yet in
	// their account that byoc built.
	Invited Status = "invited"
	// Provisioning: the provision workflow is building the infrastructure stack.
	Provisioning Status = "provisioning"
	// Ready: the infrastructure is up and serving.
	Ready Status = "ready"
	// Failed: provisioning, an update or a deletion stopped with an error; an operator
	// retries (provisioning) or gives up (deleting).
	Failed Status = "failed"
	// Updating: an upgrade or settings change is being applied to a ready deployment.
	Updating Status = "updating"
	// Deleting: the teardown workflow is removing the infrastructure.
	Deleting Status = "deleting"
	// Deleted: everything byoc built is gone; the record stays for audit.
	Deleted Status = "deleted"
)

// all lists every status in lifecycle order.
var all = []Status{Invited, Provisioning, Ready, Failed, Updating, Deleting, Deleted}

// transitions is the whole state machine: from -> the statuses it may move to.
var transitions = map[Status][]Status{
	Invited:      {Provisioning, Deleting},
	Provisioning: {Ready, Failed},
	Failed:       {Provisioning, Deleting}, // operator retry, or give up and tear down
	Ready:        {Updating, Deleting},
	Updating:     {Ready, Failed},
	Deleting:     {Deleted, Failed},
	Deleted:      nil,
}

// All returns every status, in lifecycle order.
func All() []Status { return slices.Clone(all) }

// Parse turns stored text into a Status, refusing anything that is not one.
func Parse(s string) (Status, error) {
	st := Status(s)
	if !st.Known() {
		return "", fmt.Errorf("lifecycle: unknown status %q (known: %s)", s, join(all))
	}
	return st, nil
}

// Known reports whether s is one of the defined statuses.
func (s Status) Known() bool { return slices.Contains(all, s) }

// Terminal reports whether no transition leaves s.
func (s Status) Terminal() bool { return s.Known() && len(transitions[s]) == 0 }

// Allowed returns the statuses s may move to (none for terminal or unknown statuses).
func Allowed(from Status) []Status { return slices.Clone(transitions[from]) }

// TransitionError is a refused transition. Allowed is what from could have moved to.
type TransitionError struct {
	From, To Status
	Allowed  []Status
}

func (e *TransitionError) Error() string {
	switch {
	case !e.From.Known():
		return fmt.Sprintf("lifecycle: cannot move from unknown status %q (known: %s)", e.From, join(all))
	case !e.To.Known():
		return fmt.Sprintf("lifecycle: cannot move from %q to unknown status %q (known: %s)", e.From, e.To, join(all))
	case len(e.Allowed) == 0:
		return fmt.Sprintf("lifecycle: cannot move from %q to %q: %q is terminal", e.From, e.To, e.From)
	default:
		return fmt.Sprintf("lifecycle: cannot move from %q to %q; from %q only %s", e.From, e.To, e.From, join(e.Allowed))
	}
}

// Transition approves moving from one status to another, or says why not as a
// *TransitionError. Staying in the same status is not a transition and is refused; callers
// that see a duplicate event compare statuses first.
func Transition(from, to Status) error {
	if from.Known() && to.Known() && slices.Contains(transitions[from], to) {
		return nil
	}
	return &TransitionError{From: from, To: to, Allowed: Allowed(from)}
}

func join(ss []Status) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = string(s)
	}
	return strings.Join(parts, ", ")
}
