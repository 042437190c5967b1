package cfnengine

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	"github.com/byocloud/byoc/shared/customerstack"
	"github.com/byocloud/byoc/shared/stackevent"
)

// A cluster and a node group whose versions are parameters, as in the infrastructure
// template; ExternalId is NoEcho, so only UsePreviousValue can keep it.
const eksTemplate = `{
 "Parameters": {
  "KubernetesVersion": {"Type": "String", "Default": "1.33"},
  "NodeKubernetesVersion": {"Type": "String", "Default": "1.33"},
  "NodeReleaseVersion": {"Type": "String", "Default": ""},
  "DesiredSize": {"Type": "String", "Default": "1"},
  "ExternalId": {"Type": "String", "NoEcho": true}
 },
 "Conditions": {"NodeReleaseVersionSet": {"Fn::Not": [{"Fn::Equals": [{"Ref": "NodeReleaseVersion"}, ""]}]}},
 "Resources": {
  "Cluster": {"Type": "AWS::EKS::Cluster", "Properties": {"Name": "c1", "Version": {"Ref": "KubernetesVersion"}, "RoleArn": "arn:aws:iam::111111111111:role/r",
   "ResourcesVpcConfig": {"SubnetIds": ["subnet-1"]}}},
  "Nodes": {"Type": "AWS::EKS::Nodegroup", "Properties": {"ClusterName": {"Ref": "Cluster"}, "NodeRole": "arn:aws:iam::111111111111:role/n", "Subnets": ["subnet-1"],
   "Version": {"Ref": "NodeKubernetesVersion"}, "ReleaseVersion": {"Fn::If": ["NodeReleaseVersionSet", {"Ref": "NodeReleaseVersion"}, {"Ref": "AWS::NoValue"}]},
   "ScalingConfig": {"MinSize": 1, "MaxSize": 3, "DesiredSize": {"Ref": "DesiredSize"}}}}
 }
}`

func TestEKSVersionRulesOnStackUpdates(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	m := &customerstack.Manager{CFN: f.customerCFN()}
	n := 0
	tokens := func(op stackevent.Operation) string { n++; return "t-" + string(op) + "-" + string(rune('a'+n)) }
	spec := customerstack.Spec{Name: "clickhouse-cloud-eks", Template: eksTemplate, Parameters: map[string]string{"ExternalId": "secret-external-id-0123456789abcdef"}}
	if _, err := m.Apply(ctx, spec, tokens); err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()

	update := func(changes map[string]string) (string, string) {
		t.Helper()
		stack, err := m.Describe(ctx, spec.Name)
		if err != nil {
			t.Fatal(err)
		}
		r, err := m.UpdateParameters(ctx, stack, changes, tokens(stackevent.Update))
		if err != nil || r.Action != customerstack.ActionUpdate {
			t.Fatalf("update %v: %+v %v", changes, r, err)
		}
		f.engine.Wait()
		look, err := m.Look(ctx, r.StackID)
		if err != nil {
			t.Fatal(err)
		}
		why := ""
		if ev, _ := m.FirstFailedResource(ctx, r.StackID); ev != nil && look.Status != "UPDATE_COMPLETE" {
			why = aws.ToString(ev.LogicalResourceId) + ": " + aws.ToString(ev.ResourceStatusReason)
		}
		return look.Status, why
	}
	params := func() map[string]string {
		stack, _ := m.Describe(ctx, spec.Name)
		return customerstack.Parameters(stack)
	}

	// The control plane and the nodes in one update: refused, rolled back whole.
	if status, why := update(map[string]string{"KubernetesVersion": "1.34", "NodeKubernetesVersion": "1.34"}); status != "UPDATE_ROLLBACK_COMPLETE" || !strings.HasPrefix(why, "Nodes: Nodegroup version") {
		t.Fatalf("control plane and nodes together: %s (%s)", status, why)
	}
	if p := params(); p["KubernetesVersion"] != "1.33" || p["NodeKubernetesVersion"] != "1.33" {
		t.Fatalf("rolled back parameters %v", p)
	}
	// Nodes before the control plane: newer than the cluster.
	if status, why := update(map[string]string{"NodeKubernetesVersion": "1.34"}); status != "UPDATE_ROLLBACK_COMPLETE" || !strings.Contains(why, "cannot be newer than the cluster's 1.33") {
		t.Fatalf("nodes first: %s (%s)", status, why)
	}
	// Skipping a minor.
	if status, why := update(map[string]string{"KubernetesVersion": "1.35"}); status != "UPDATE_ROLLBACK_COMPLETE" || !strings.Contains(why, "one minor version at a time") {
		t.Fatalf("skipping a minor: %s (%s)", status, why)
	}
	// The order byoc's upgrade uses: control plane, then the nodes on their own.
	if status, why := update(map[string]string{"KubernetesVersion": "1.34"}); status != "UPDATE_COMPLETE" {
		t.Fatalf("control plane: %s (%s)", status, why)
	}
	// A node version with another node group change: refused.
	if status, why := update(map[string]string{"NodeKubernetesVersion": "1.34", "DesiredSize": "2"}); status != "UPDATE_ROLLBACK_COMPLETE" || why == "" {
		t.Fatalf("node version with a scaling change: %s (%s)", status, why)
	}
	if status, why := update(map[string]string{"NodeKubernetesVersion": "1.34", "NodeReleaseVersion": "1.34.2-20260101"}); status != "UPDATE_COMPLETE" {
		t.Fatalf("nodes: %s (%s)", status, why)
	}
	p := params()
	if p["KubernetesVersion"] != "1.34" || p["NodeKubernetesVersion"] != "1.34" || p["NodeReleaseVersion"] != "1.34.2-20260101" || p["DesiredSize"] != "1" {
		t.Fatalf("parameters after the upgrade %v", p)
	}
	stack, _ := m.Describe(ctx, spec.Name)
	if r, err := m.UpdateParameters(ctx, stack, map[string]string{"KubernetesVersion": "1.34"}, "t-same"); err != nil || r.Action != customerstack.ActionNone {
		t.Fatalf("nothing to change: %+v %v", r, err)
	}
	if _, err := m.UpdateParameters(ctx, stack, map[string]string{"Nope": "1"}, "t-nope"); err == nil || !strings.Contains(err.Error(), "has no parameter Nope") {
		t.Fatalf("unknown parameter: %v", err)
	}
	stack.StackStatus = cfntypes.StackStatusUpdateRollbackFailed
	if _, err := m.UpdateParameters(ctx, stack, map[string]string{"KubernetesVersion": "1.35"}, "t-blocked"); err == nil {
		t.Fatal("a blocked stack was updated")
	}
}
