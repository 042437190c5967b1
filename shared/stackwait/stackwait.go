// Package stackwait is how a workflow task waits for a customer stack's operation: it
// registers the task token for the stack (package store's waiter, which stackevents resumes
// when the stack's status event arrives) and looks at the stack once, resuming the task at
// once when the operation already ended (its event may have come before the waiter). Every
// workflow that changes a customer stack (provision, upgrade) waits this way.
package stackwait

import (
	"context"
	"errors"
	"time"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/customerstack"
	"github.com/byocloud/byoc/shared/stackevent"
	"github.com/byocloud/byoc/shared/store"
)

// Lifetime outlives a waiting state's TimeoutSeconds (300 s, the fallback poll): the waiter
// of a timed-out wait is replaced by the next one, and an expired one is just garbage.
const Lifetime = time.Hour

// Result says whether the wait was registered and whether the operation had already ended.
type Result struct {
	Registered bool   `json:"registered"`
	Completed  bool   `json:"completed"`
	Status     string `json:"status"`
}

// Await registers w (its ExpiresAt is set here) and resumes the task itself when the stack's
// operation has already ended.
func Await(ctx context.Context, s *store.Store, tasks cloud.TaskCompleter, stacks *customerstack.Manager, w store.Waiter) (Result, error) {
	w.ExpiresAt = s.Now().Add(Lifetime)
	if err := s.PutWaiter(ctx, w); err != nil {
		return Result{}, err
	}
	ref := w.StackID
	if ref == "" {
		ref = w.StackName
	}
	r, err := stacks.Look(ctx, ref)
	if err != nil {
		return Result{}, err
	}
	if !stackevent.Ends(stackevent.Operation(w.Operation), r.Status) {
		return Result{Registered: true, Status: r.Status}, nil
	}
	if err := stackevent.Resume(ctx, tasks, w.TaskToken, r); err != nil && !errors.Is(err, stackevent.ErrTaskGone) {
		return Result{}, err
	}
	if err := s.DeleteWaiter(ctx, w); err != nil && !errors.Is(err, store.ErrConflict) {
		return Result{}, err
	}
	return Result{Registered: true, Completed: true, Status: r.Status}, nil
}
