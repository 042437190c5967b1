package servicestate

import (
	"context"
	"errors"
	"testing"

	"github.com/byocloud/byoc/shared/statemsg"
)

func command(id string) CommandRecord {
	return CommandRecord{ID: id, DeploymentID: "dep1", ServiceID: "svc-a", Kind: "apply-release", Params: map[string]string{"clickhouseVersion": "24.9"}}
}

func TestCreateCommandIsIdempotent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c, created, err := f.repo.CreateCommand(ctx, command("cmd-1"))
	if err != nil || !created || c.Status != CommandPending || c.CreatedAt.IsZero() {
		t.Fatalf("create: %+v %v %v", c, created, err)
	}
	if _, err := f.repo.AdvanceCommand(ctx, "dep1", "cmd-1", CommandSent, "", ""); err != nil {
		t.Fatal(err)
	}
	again, created, err := f.repo.CreateCommand(ctx, command("cmd-1"))
	if err != nil || created || again.Status != CommandSent {
		t.Fatalf("retry: %+v %v %v, want the stored (sent) command", again, created, err)
	}
}

func TestCreateCommandRefusesAReusedID(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, _, err := f.repo.CreateCommand(ctx, command("cmd-1")); err != nil {
		t.Fatal(err)
	}
	before := f.snapshot(t)
	other := command("cmd-1")
	other.Params["clickhouseVersion"] = "25.1"
	if _, _, err := f.repo.CreateCommand(ctx, other); !errors.Is(err, ErrConflict) {
		t.Fatalf("error %v", err)
	}
	bad := command("cmd/1")
	if _, _, err := f.repo.CreateCommand(ctx, bad); err == nil {
		t.Fatal("a malformed id was accepted")
	}
	noKind := command("cmd-2")
	noKind.Kind = ""
	if _, _, err := f.repo.CreateCommand(ctx, noKind); err == nil {
		t.Fatal("a command without kind was accepted")
	}
	if f.snapshot(t) != before {
		t.Fatal("refused commands changed the table")
	}
}

func TestAcknowledgementsOnlyMoveForward(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, _, err := f.repo.CreateCommand(ctx, command("cmd-1")); err != nil {
		t.Fatal(err)
	}
	m := report("dep1", "svc-a", 1)
	m.Commands = []statemsg.CommandAck{{ID: "cmd-1", Status: statemsg.AckSucceeded}}
	changed, err := f.repo.ApplyAcks(ctx, m)
	if err != nil || len(changed) != 1 {
		t.Fatalf("ack: %v %v", changed, err)
	}
	// An older report's "accepted", or the same ack again, changes nothing.
	m.Commands = []statemsg.CommandAck{{ID: "cmd-1", Status: statemsg.AckAccepted}}
	if changed, err := f.repo.ApplyAcks(ctx, m); err != nil || len(changed) != 0 {
		t.Fatalf("stale ack: %v %v", changed, err)
	}
	m.Commands = []statemsg.CommandAck{{ID: "cmd-1", Status: statemsg.AckFailed, Detail: "late"}}
	if changed, err := f.repo.ApplyAcks(ctx, m); err != nil || len(changed) != 0 {
		t.Fatalf("contradicting ack after success: %v %v", changed, err)
	}
	c, _ := f.repo.Command(ctx, "dep1", "cmd-1")
	if c.Status != CommandSucceeded || c.Detail != "" {
		t.Fatalf("command %+v", c)
	}
}

func TestAcknowledgementFromAnotherServiceOrForUnknownCommandIsIgnored(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, _, err := f.repo.CreateCommand(ctx, command("cmd-1")); err != nil {
		t.Fatal(err)
	}
	before := f.snapshot(t)
	m := report("dep1", "svc-b", 1)
	m.Commands = []statemsg.CommandAck{{ID: "cmd-1", Status: statemsg.AckFailed}, {ID: "cmd-unknown", Status: statemsg.AckSucceeded}}
	if changed, err := f.repo.ApplyAcks(ctx, m); err != nil || len(changed) != 0 {
		t.Fatalf("acks: %v %v", changed, err)
	}
	if f.snapshot(t) != before {
		t.Fatal("foreign acknowledgements changed the table")
	}
	if _, err := f.repo.AdvanceCommand(ctx, "dep1", "cmd-1", CommandPending, "", ""); err == nil {
		t.Fatal("moving a command back to pending was accepted")
	}
}

func TestDeploymentWideCommandAcceptsAnyServicesAck(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := command("cmd-backup")
	c.ServiceID, c.Kind = "", "backup"
	if _, _, err := f.repo.CreateCommand(ctx, c); err != nil {
		t.Fatal(err)
	}
	m := report("dep1", "svc-b", 1)
	m.Commands = []statemsg.CommandAck{{ID: "cmd-backup", Status: statemsg.AckAccepted}}
	if changed, err := f.repo.ApplyAcks(ctx, m); err != nil || len(changed) != 1 {
		t.Fatalf("acks: %v %v", changed, err)
	}
}
