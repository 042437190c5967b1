package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/cloud/cloudtest"
	"github.com/byocloud/byoc/shared/connectivity"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/store"
)

var ctx = context.Background()

// starts records the executions a handler starts (the workflow's own steps run end to end on
// the local cloud; these tests cover what the function decides and refuses).
// Each start is recorded; a name started before is ExecutionAlreadyExists, as Step Functions
// answers, and its status is RUNNING unless the test ended it.
type starts struct {
	names []string
	ended map[string]sfntypes.ExecutionStatus
}

func (s *starts) StartExecution(_ context.Context, in *sfn.StartExecutionInput, _ ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error) {
	exists := slices.Contains(s.names, *in.Name)
	s.names = append(s.names, *in.Name)
	if exists {
		return nil, &sfntypes.ExecutionAlreadyExists{Message: aws.String("Execution Already Exists: " + *in.Name)}
	}
	return &sfn.StartExecutionOutput{}, nil
}

func (s *starts) DescribeExecution(_ context.Context, in *sfn.DescribeExecutionInput, _ ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error) {
	name := (*in.ExecutionArn)[strings.LastIndex(*in.ExecutionArn, ":")+1:]
	if st, ok := s.ended[name]; ok {
		return &sfn.DescribeExecutionOutput{Status: st}, nil
	}
	return &sfn.DescribeExecutionOutput{Status: sfntypes.ExecutionStatusRunning}, nil
}

type sent struct{ commands []channel.Command }

func (s *sent) Send(_ context.Context, c channel.Command) (servicestate.CommandRecord, error) {
	c.SchemaVersion, c.IssuedAt = channel.CommandVersion, time.Now()
	if err := c.Validate(); err != nil {
		return servicestate.CommandRecord{}, err
	}
	s.commands = append(s.commands, c)
	return servicestate.CommandRecord{ID: c.ID}, nil
}

type fixture struct {
	h        *Handler
	id       string
	starts   *starts
	commands *sent
}

// newFixture: a ready deployment on kumo's table.
func newFixture(t *testing.T, status lifecycle.Status) *fixture {
	t.Helper()
	env := cloudtest.Start(t)
	table := env.CreateTable(t, store.TableDefinition(""), store.TTLAttribute)
	db := env.DynamoDB()
	f := &fixture{id: cloudtest.UniqueDeploymentID(), starts: &starts{ended: map[string]sfntypes.ExecutionStatus{}}, commands: &sent{}}
	f.h = &Handler{Config: Config{Table: table, MachineArn: "arn:aws:states:us-east-1:000000000000:stateMachine:ByocControlPlane-peering",
		BootstrapTemplateURL: "https://t.example/ByocBootstrap.template.json", Regions: []string{"us-east-1", "us-west-2"}},
		Store: store.New(db, table), Services: servicestate.New(db, table), Workflows: f.starts, Commands: f.commands,
		Log: slog.New(slog.NewJSONHandler(io.Discard, nil))}
	d, err := f.h.Store.Create(ctx, store.Deployment{ID: f.id, Status: lifecycle.Invited, ExternalID: "0123456789abcdef0123456789abcdef01234567",
		Settings: settings.Settings{CustomerID: "acme", AccountID: "111122223333", Region: "us-east-1", VPCCIDR: "10.0.0.0/16", ResourcePrefix: "ch"},
		Outputs:  map[string]string{contract.InfraOutputPeersSecurityGroupID: "sg-0123456789abcdef0"}},
		store.Audit{Actor: "test", Action: "invite"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []lifecycle.Status{lifecycle.Provisioning, lifecycle.Ready} {
		if d.Status == status {
			break
		}
		next := d
		next.Status = s
		if d, err = f.h.Store.Update(ctx, d, next, store.Audit{Actor: "test", Action: string(s)}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *fixture) call(t *testing.T, action map[string]any) (any, error) {
	t.Helper()
	action["deploymentId"] = f.id
	body, _ := json.Marshal(action)
	return f.h.Handle(ctx, body)
}

func (f *fixture) deployment(t *testing.T) store.Deployment {
	t.Helper()
	d, err := f.h.Store.Get(ctx, f.id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func peering(vpc string, cidrs ...string) map[string]any {
	return map[string]any{"action": "request", "peerAccount": "222222222222", "peerVpcId": vpc, "peerRegion": "us-east-1",
		"peerCidrs": cidrs, "name": "app", "accepterRoleArn": "arn:aws:iam::222222222222:role/byoc-peer-accepter-" + vpc}
}

// TestRequestIsIdempotent: the same request again returns the same peering and starts
// nothing new; another request for the same VPC with other settings is refused.
func TestRequestIsIdempotent(t *testing.T) {
	f := newFixture(t, lifecycle.Ready)
	if _, err := f.call(t, peering("vpc-0123456789abcdef0", "10.1.0.0/16")); err != nil {
		t.Fatal(err)
	}
	before := f.deployment(t)
	if _, err := f.call(t, peering("vpc-0123456789abcdef0", "10.1.0.0/16")); err != nil {
		t.Fatal(err)
	}
	if after := f.deployment(t); after.Version != before.Version {
		t.Errorf("a repeated request wrote the record (version %d -> %d)", before.Version, after.Version)
	}
	if len(f.starts.names) != 2 || f.starts.names[0] != f.starts.names[1] {
		t.Errorf("executions %v: a repeated request must name the same execution", f.starts.names)
	}
	p := before.Network.Peerings[0]
	if p.State != connectivity.Provisioning || !strings.HasSuffix(p.Execution, ":"+f.starts.names[0]) {
		t.Errorf("peering %+v", p)
	}
	_, err := f.call(t, peering("vpc-0123456789abcdef0", "10.9.0.0/16"))
	var refused *Refused
	if !errors.As(err, &refused) || f.deployment(t).Version != before.Version {
		t.Errorf("the same VPC with other CIDRs: %v (want Refused, nothing written)", err)
	}
}

// TestRefusalsChangeNothing: every refusal names the field and rule, and writes nothing.
func TestRefusalsChangeNothing(t *testing.T) {
	f := newFixture(t, lifecycle.Ready)
	if _, err := f.call(t, peering("vpc-11111111", "10.2.0.0/16")); err != nil {
		t.Fatal(err)
	}
	before := f.deployment(t)
	cases := map[string]struct {
		action map[string]any
		want   string
	}{
		"overlaps the BYOC VPC": {peering("vpc-22222222", "10.0.1.0/24"), "deployment's VPC CIDR"},
		"overlaps a peering":    {peering("vpc-22222222", "10.2.128.0/17"), "vpc-11111111"},
		"malformed vpc":         {peering("vpc-XYZ", "10.3.0.0/16"), "peerVpcId"},
		"unsupported region": {func() map[string]any {
			a := peering("vpc-22222222", "10.3.0.0/16")
			a["peerRegion"] = "eu-west-3"
			return a
		}(), "peerRegion"},
		"unknown field":            {map[string]any{"action": "request", "peerVpc": "vpc-22222222"}, "(payload)"},
		"unknown action":           {map[string]any{"action": "explode"}, "action"},
		"public lb, no path":       {map[string]any{"action": "public-lb", "enabled": false, "verified": true}, "private path"},
		"public lb, no enabled":    {map[string]any{"action": "public-lb"}, "enabled"},
		"delete unknown":           {map[string]any{"action": "delete", "target": "vpc-33333333"}, "no peering"},
		"access list, anywhere":    {map[string]any{"action": "access-list", "serviceId": "svc1", "add": []string{"0.0.0.0/0"}}, "allowAnywhere"},
		"access list, bad cidr":    {map[string]any{"action": "access-list", "serviceId": "svc1", "add": []string{"10.0.0.1/8"}}, "add[0]"},
		"privatelink, bad acct":    {map[string]any{"action": "privatelink", "allowedAccounts": []string{"12"}}, "allowedAccounts[0]"},
		"register, bad endpoint":   {map[string]any{"action": "register-endpoint", "endpointId": "vpce-zz"}, "endpointId"},
		"register, no privatelink": {map[string]any{"action": "register-endpoint", "endpointId": "vpce-0123456789abcdef0"}, "not active"},
	}
	for name, c := range cases {
		_, err := f.call(t, c.action)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a refusal naming %q", name, err, c.want)
		}
	}
	after := f.deployment(t)
	if after.Version != before.Version || !reflect.DeepEqual(after.Network, before.Network) {
		t.Errorf("refusals wrote the record: version %d -> %d", before.Version, after.Version)
	}
	if len(f.starts.names) != 1 || len(f.commands.commands) != 0 {
		t.Errorf("refusals started %v and sent %v", f.starts.names, f.commands.commands)
	}
}

// TestNotReadyDeploymentIsRefused.
func TestNotReadyDeploymentIsRefused(t *testing.T) {
	f := newFixture(t, lifecycle.Provisioning)
	before := f.deployment(t)
	_, err := f.call(t, peering("vpc-11111111", "10.2.0.0/16"))
	var refused *Refused
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "provisioning") {
		t.Errorf("a provisioning deployment: %v", err)
	}
	if f.deployment(t).Version != before.Version || len(f.starts.names) != 0 {
		t.Error("the refusal changed something")
	}
	if _, err := (&fixture{h: f.h, id: "unknown0000000000000"}).call(t, peering("vpc-11111111", "10.2.0.0/16")); !errors.As(err, new(*NotFound)) {
		t.Errorf("an unknown deployment: %v, want NotFound", err)
	}
}

// TestPublicLoadBalancerAndLastPath: removal needs an active, verified private path; the last
// path cannot be deleted while the public load balancer is removed, unless forced; the
// command is sent once per change.
func TestPublicLoadBalancerAndLastPath(t *testing.T) {
	f := newFixture(t, lifecycle.Ready)
	if _, err := f.call(t, peering("vpc-11111111", "10.2.0.0/16")); err != nil {
		t.Fatal(err)
	}
	// The workflow made it active.
	d := f.deployment(t)
	next := d
	n := *d.Network
	n.Peerings = append([]connectivity.Peering(nil), n.Peerings...)
	n.Peerings[0].State = connectivity.Active
	next.Network = &n
	if _, err := f.h.Store.Update(ctx, d, next, store.Audit{Actor: "test", Action: "active"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.call(t, map[string]any{"action": "public-lb", "enabled": false}); err == nil || !strings.Contains(err.Error(), "verified") {
		t.Errorf("unverified removal: %v", err)
	}
	for range 2 {
		if _, err := f.call(t, map[string]any{"action": "public-lb", "enabled": false, "verified": true}); err != nil {
			t.Fatal(err)
		}
	}
	if !f.deployment(t).Network.PublicRemoved || len(f.commands.commands) != 2 || f.commands.commands[0].ID != f.commands.commands[1].ID ||
		f.commands.commands[0].Params["enabled"] != "false" {
		t.Errorf("removal: %+v (a repeated request sends the same command, which the channel drops)", f.commands.commands)
	}
	before := f.deployment(t)
	if _, err := f.call(t, map[string]any{"action": "delete", "target": "vpc-11111111"}); err == nil || !strings.Contains(err.Error(), "last private path") {
		t.Errorf("deleting the only path: %v", err)
	}
	if f.deployment(t).Version != before.Version {
		t.Error("the refused delete wrote the record")
	}
	if _, err := f.call(t, map[string]any{"action": "delete", "target": "vpc-11111111", "force": true}); err != nil {
		t.Errorf("forced: %v", err)
	}
	if p := f.deployment(t).Network.Peerings[0]; p.State != connectivity.Deleting {
		t.Errorf("after a forced delete: %s", p.State)
	}
	// The workflow deleted it. The same delete again (its first answer lost after the
	// workflow ended) answers the deleted peering and starts nothing.
	d = f.deployment(t)
	next = d
	n = *d.Network
	n.Peerings = append([]connectivity.Peering(nil), n.Peerings...)
	n.Peerings[0].State = connectivity.Deleted
	next.Network = &n
	if _, err := f.h.Store.Update(ctx, d, next, store.Audit{Actor: "test", Action: "deleted"}); err != nil {
		t.Fatal(err)
	}
	deleted := f.deployment(t)
	if _, err := f.call(t, map[string]any{"action": "delete", "target": "vpc-11111111", "force": true}); err != nil {
		t.Errorf("the same delete after the deletion: %v", err)
	}
	if after := f.deployment(t); after.Version != deleted.Version || after.Network.Peerings[0].State != connectivity.Deleted {
		t.Errorf("a repeated delete of a deleted peering wrote the record: %+v", after.Network.Peerings[0])
	}
}

// TestMalformedPeeringEventIsRefused: a BYOC Peering Requested event (the bus and the rule
// take it only from the vendor's own account) that is malformed is refused, nothing written.
func TestMalformedPeeringEventIsRefused(t *testing.T) {
	f := newFixture(t, lifecycle.Ready)
	before := f.deployment(t)
	body, _ := json.Marshal(map[string]any{"detail-type": "BYOC Peering Requested", "account": "000000000000",
		"detail": map[string]any{"deploymentId": f.id, "peerVpcId": "vpc-1", "extra": true}})
	if _, err := f.h.Handle(ctx, body); !errors.As(err, new(*InvalidRequest)) {
		t.Errorf("malformed event: %v", err)
	}
	// A well-formed request the rules refuse is answered (no retry into the dead-letter
	// queue) and changes nothing; one from another account is refused.
	body, _ = json.Marshal(map[string]any{"detail-type": "BYOC Peering Requested", "account": "000000000000",
		"detail": map[string]any{"deploymentId": f.id, "peerAccount": "222222222222", "peerVpcId": "vpc-11111111", "peerRegion": "us-east-1",
			"peerCidrs": []string{"10.0.0.0/24"}, "name": "overlapping"}})
	if out, err := f.h.Handle(ctx, body); err != nil || !strings.Contains(fmt.Sprint(out), "deployment's VPC CIDR") {
		t.Errorf("a refused request event: %v, %v; want an answer naming the rule", out, err)
	}
	body, _ = json.Marshal(map[string]any{"detail-type": "BYOC Peering Requested", "account": "111122223333",
		"detail": map[string]any{"deploymentId": f.id, "peerAccount": "222222222222", "peerVpcId": "vpc-11111111", "peerRegion": "us-east-1",
			"peerCidrs": []string{"10.1.0.0/24"}, "name": "forged"}})
	if _, err := f.h.Handle(ctx, body); !errors.As(err, new(*Refused)) {
		t.Errorf("a request event from a customer's account: %v, want Refused", err)
	}
	if f.deployment(t).Version != before.Version || len(f.starts.names) != 0 {
		t.Error("a malformed, refused or forged event changed something")
	}
}

// TestAccessListIsPushedToTheAgent: a change is recorded and sent as an ip-access-list command
// (one CIDR per parameter); asking for the same list again sends the same command id (the
// channel drops it) and writes nothing; the next change is a new command.
func TestAccessListIsPushedToTheAgent(t *testing.T) {
	f := newFixture(t, lifecycle.Ready)
	if _, err := f.call(t, map[string]any{"action": "access-list", "serviceId": "svc1", "add": []string{"198.51.100.7/32", "203.0.113.0/24"}}); err != nil {
		t.Fatal(err)
	}
	first := f.deployment(t)
	if got := first.Network.AccessLists["svc1"]; len(got) != 2 {
		t.Fatalf("recorded list %v", got)
	}
	if _, err := f.call(t, map[string]any{"action": "access-list", "serviceId": "svc1", "add": []string{"203.0.113.0/24"}}); err != nil {
		t.Fatal(err)
	}
	if f.deployment(t).Version != first.Version {
		t.Error("a change that changes nothing wrote the record")
	}
	if _, err := f.call(t, map[string]any{"action": "access-list", "serviceId": "svc1", "remove": []string{"198.51.100.7/32"}}); err != nil {
		t.Fatal(err)
	}
	cmds := f.commands.commands
	if len(cmds) != 3 || cmds[0].Kind != channel.AccessList || cmds[0].ServiceID != "svc1" || cmds[0].ID != cmds[1].ID || cmds[2].ID == cmds[0].ID {
		t.Fatalf("commands %+v: want the list, the same command again, then a new one", cmds)
	}
	if cmds[0].Params[channel.AccessListParam(0)] != "198.51.100.7/32" || cmds[0].Params[channel.AccessListParam(1)] != "203.0.113.0/24" ||
		len(cmds[2].Params) != 1 || cmds[2].Params[channel.AccessListParam(0)] != "203.0.113.0/24" {
		t.Errorf("parameters %v then %v", cmds[0].Params, cmds[2].Params)
	}
}

// TestDeadOwnerIsTakenOver: a peering whose workflow ended without recording an outcome (its
// failure step failed, it was stopped) is not stuck: the same request again starts a new
// execution, which takes the peering over with an audit entry; while the first runs, a
// repeat starts nothing new.
func TestDeadOwnerIsTakenOver(t *testing.T) {
	f := newFixture(t, lifecycle.Ready)
	if _, err := f.call(t, peering("vpc-0123456789abcdef0", "10.1.0.0/16")); err != nil {
		t.Fatal(err)
	}
	first := f.starts.names[0]
	f.starts.ended[first] = sfntypes.ExecutionStatusFailed
	if _, err := f.call(t, peering("vpc-0123456789abcdef0", "10.1.0.0/16")); err != nil {
		t.Fatal(err)
	}
	p := f.deployment(t).Network.Peerings[0]
	if len(f.starts.names) != 3 || f.starts.names[2] == first || !strings.HasSuffix(p.Execution, ":"+f.starts.names[2]) || p.State != connectivity.Provisioning {
		t.Fatalf("starts %v, peering %+v: want a new execution owning the peering", f.starts.names, p)
	}
	trail, err := f.h.Store.AuditTrail(ctx, f.id)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(trail, func(e store.AuditEntry) bool { return e.Action == "peering.takeover" }) {
		t.Errorf("no takeover on the audit trail: %+v", trail)
	}
	if _, err := f.call(t, peering("vpc-0123456789abcdef0", "10.1.0.0/16")); err != nil || len(f.starts.names) != 4 || f.starts.names[3] != f.starts.names[2] {
		t.Errorf("a repeat while the new owner runs: starts %v, %v", f.starts.names, err)
	}
}
