package servicestate

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func exporter(dep, account string) DataPlane {
	return DataPlane{
		DeploymentID:    dep,
		AccountID:       account,
		ExporterRoleARN: "arn:aws:iam::" + account + ":role/clickhouse-cloud-" + dep + "-state-exporter",
		ExporterRoleID:  "AROA" + strings.ToUpper(strings.Repeat(dep[len(dep)-1:], 17)),
		AgentRoleARN:    "arn:aws:iam::" + account + ":role/clickhouse-cloud-" + dep + "-agent",
	}
}

func TestRegisterDataPlane(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	d := exporter("dep1", "111111111111")
	if err := f.repo.RegisterDataPlane(ctx, d); err != nil {
		t.Fatal(err)
	}
	// A stack update that recreated the exporter role records its new id.
	d.ExporterRoleID = "AROANEWNEWNEWNEWNEWNE"
	if err := f.repo.RegisterDataPlane(ctx, d); err != nil {
		t.Fatal(err)
	}
	got, err := f.repo.DataPlane(ctx, "dep1")
	if err != nil || got.ExporterRoleID != "AROANEWNEWNEWNEWNEWNE" || got.AgentRoleARN != d.AgentRoleARN {
		t.Fatalf("stored %+v %v", got, err)
	}
	if err := f.repo.RegisterDataPlane(ctx, exporter("dep2", "222222222222")); err != nil {
		t.Fatal(err)
	}
	all, err := f.repo.DataPlanes(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("data planes %v %v", all, err)
	}
}

func TestRegisterDataPlaneRefusesAnotherAccount(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.repo.RegisterDataPlane(ctx, exporter("dep1", "111111111111")); err != nil {
		t.Fatal(err)
	}
	before := f.snapshot(t)
	err := f.repo.RegisterDataPlane(ctx, exporter("dep1", "999999999999"))
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "another account") {
		t.Fatalf("error %v", err)
	}
	if f.snapshot(t) != before {
		t.Fatal("a refused registration changed the table")
	}
}

func TestDataPlaneValidation(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name, field string
		edit        func(*DataPlane)
	}{
		{"bad deployment id", "deploymentId", func(d *DataPlane) { d.DeploymentID = "a/b" }},
		{"bad account", "accountId: must be 12 digits", func(d *DataPlane) { d.AccountID = "1234" }},
		{"not an ARN", "exporterRoleArn: must be an IAM role ARN", func(d *DataPlane) { d.ExporterRoleARN = "state-exporter" }},
		{"a user, not a role", "agentRoleArn: must be an IAM role ARN", func(d *DataPlane) { d.AgentRoleARN = "arn:aws:iam::111111111111:user/bob" }},
		{"role of another account", "exporterRoleArn: must be a role of account 111111111111, not 222222222222", func(d *DataPlane) {
			d.ExporterRoleARN = "arn:aws:iam::222222222222:role/x"
		}},
		{"role id of a user", "exporterRoleId: must be an IAM role unique id", func(d *DataPlane) { d.ExporterRoleID = "AIDAABCDEFGHIJKLMNOPQ" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := exporter("dep1", "111111111111")
			c.edit(&d)
			err := f.repo.RegisterDataPlane(context.Background(), d)
			if err == nil || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("error %v, want it to say %q", err, c.field)
			}
			if keys := f.env.Keys(t, f.table); len(keys) != 0 {
				t.Fatalf("an invalid registration wrote %v", keys)
			}
		})
	}
}

func TestVerifySender(t *testing.T) {
	d := exporter("dep1", "111111111111")
	if err := d.VerifySender(d.ExporterRoleID + ":state-exporter-7d9f"); err != nil {
		t.Fatalf("the exporter's own session: %v", err)
	}
	other := exporter("dep2", "222222222222")
	for _, sender := range []string{
		other.ExporterRoleID + ":state-exporter-7d9f", // another customer's exporter
		"111111111111",          // the customer account's root user
		"AIDAABCDEFGHIJKLMNOPQ", // an IAM user
		d.ExporterRoleID + "X:session",
	} {
		if err := d.VerifySender(sender); !errors.Is(err, ErrForgedSender) {
			t.Fatalf("sender %q: %v", sender, err)
		}
	}
	if err := d.VerifySender(""); !errors.Is(err, ErrNoSender) {
		t.Fatalf("no sender: %v", err)
	}
}

func TestRemoveDataPlane(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.repo.RegisterDataPlane(ctx, exporter("dep1", "111111111111")); err != nil {
		t.Fatal(err)
	}
	if err := f.repo.RemoveDataPlane(ctx, "dep1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.DataPlane(ctx, "dep1"); !IsNotFound(err) {
		t.Fatalf("after removal: %v", err)
	}
	if err := f.repo.RemoveDataPlane(ctx, "dep1"); !IsNotFound(err) {
		t.Fatalf("second removal: %v", err)
	}
}

func TestDataPlaneFromOutputs(t *testing.T) {
	outputs := map[string]string{
		"StateExporterRoleArn": "arn:aws:iam::111111111111:role/p-dep1-state-exporter",
		"StateExporterRoleId":  "AROAABCDEFGHIJKLMNOPQ",
		"AgentRoleArn":         "arn:aws:iam::111111111111:role/p-dep1-agent",
		"VpcId":                "vpc-1",
	}
	d, err := DataPlaneFromOutputs("dep1", "111111111111", outputs)
	if err != nil || d.ExporterRoleID != "AROAABCDEFGHIJKLMNOPQ" || d.AgentRoleARN != outputs["AgentRoleArn"] {
		t.Fatalf("%+v %v", d, err)
	}
	delete(outputs, "StateExporterRoleId")
	if _, err := DataPlaneFromOutputs("dep1", "111111111111", outputs); err == nil || !strings.Contains(err.Error(), "no StateExporterRoleId output") {
		t.Fatalf("missing output: %v", err)
	}
	outputs["StateExporterRoleId"] = "AROAABCDEFGHIJKLMNOPQ"
	if _, err := DataPlaneFromOutputs("dep1", "222222222222", outputs); err == nil || !strings.Contains(err.Error(), "must be a role of account 222222222222") {
		t.Fatalf("roles of another account: %v", err)
	}
}
