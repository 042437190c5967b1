package stackevent

import (
	"context"
	"errors"
	"fmt"

	"github.com/byocloud/byoc/shared/store"
)

// AuditForged records a forged event in the audit trail of the deployment whose stack it
// names (the one it tried to act on), or, when that account has none, of the sender's: the
// operator sees who tried what. It writes nothing else, and records each event once
// (a redelivery finds it recorded). It returns store.ErrNotFound when neither account has a
// deployment in the region: there is no trail to write to, the caller's log is the record.
func AuditForged(ctx context.Context, s *store.Store, actor, eventID, region string, f *ForgedError) error {
	var d store.Deployment
	var err error
	for _, account := range []string{f.StackAccount, f.SenderAccount} {
		if d, err = s.ByAccount(ctx, account, region); !errors.Is(err, store.ErrNotFound) {
			break
		}
	}
	if err != nil {
		return err
	}
	err = s.Record(ctx, d.ID, store.Audit{Actor: actor, Action: "security.forged-event", Detail: f.Error(), EventID: eventID})
	if errors.Is(err, store.ErrExists) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("audit forged event %s: %w", eventID, err)
	}
	return nil
}
