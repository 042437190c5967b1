package cfnengine

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/byocloud/byoc/infra/local/accounts"
	"github.com/byocloud/byoc/infra/local/cdkout"
	"github.com/byocloud/byoc/infra/local/cfnengine/template"
	"github.com/byocloud/byoc/shared/contract"
)

// cdkTemplate returns a template the CDK app synthesized into cdk.out/ (cdkout.Template), so
// these tests check the templates of this very source. The template comes back without the
// CDK's indentation, as provisioning sends it (cfnengine.CompactTemplate): the indented file can
// be over CloudFormation's 51,200-byte TemplateBody limit when the body that is sent is well
// under it.
func cdkTemplate(t *testing.T, name string) string { return cdkTemplateB(t, name) }

func cdkTemplateB(tb testing.TB, name string) string {
	tb.Helper()
	var compact bytes.Buffer
	if err := json.Compact(&compact, cdkout.Template(tb, name)); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return compact.String()
}

// infraParams are parameters the provision step would compute for a deployment.
func infraParams(deploymentID string) []cfntypes.Parameter {
	kv := []string{
		contract.InfraParamDeploymentID, deploymentID,
		contract.InfraParamVpcCidr, "10.0.0.0/16",
		contract.InfraParamStateQueueArn, "arn:aws:sqs:us-east-1:000000000000:ByocControlPlane-StateQueue-ABC",
		contract.InfraParamControlPlaneAccountID, "000000000000",
		contract.InfraParamControlPlaneRoleArn, controlPlane,
		contract.InfraParamExternalID, externalID,
	}
	zones := []string{"use1-az1", "use1-az2", "use1-az4"}
	private := []string{"10.0.0.0/19", "10.0.32.0/19", "10.0.64.0/19"}
	public := []string{"10.0.96.0/22", "10.0.100.0/22", "10.0.104.0/22"}
	for i := range 3 {
		kv = append(kv, contract.InfraParamZoneIDs[i], zones[i], contract.InfraParamPrivateSubnetCidrs[i], private[i], contract.InfraParamPublicSubnetCidrs[i], public[i])
	}
	return params(kv...)
}

func TestCDKTemplatesParse(t *testing.T) {
	for _, name := range []string{"ByocBootstrap.template.json", "ByocControlPlane.template.json", "ByocInfrastructure.template.json"} {
		tpl, err := template.Parse([]byte(cdkTemplate(t, name)))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if need, _ := tpl.IAMCapability(); need == "" {
			t.Errorf("%s creates no IAM resource?", name)
		}
	}
}

// TestCDKCustomerTemplates runs the customer's side of onboarding on the real templates:
// the bootstrap stack creates the management role and the forwarding rule; the control
// plane assumes the role with the ExternalId and creates the infrastructure stack, whose
// events are forwarded and whose outputs are the contract's.
func TestCDKCustomerTemplates(t *testing.T) {
	f := newFixture(t)
	f.admit(customer)
	ctx := context.Background()
	_, err := f.customerCFN().CreateStack(ctx, &cloudformation.CreateStackInput{
		StackName: aws.String(contract.BootstrapStackName), TemplateBody: aws.String(cdkTemplate(t, "ByocBootstrap.template.json")),
		Parameters: params(contract.BootstrapParamExternalID, externalID, contract.BootstrapParamControlPlaneRoleArn, controlPlane,
			contract.BootstrapParamVendorEventBusArn, vendorBusArn),
		Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityNamedIam},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	bootstrap := f.describe(t, f.customerCFN(), contract.BootstrapStackName)
	if bootstrap.StackStatus != cfntypes.StackStatusCreateComplete {
		t.Fatalf("bootstrap: %s; events %v", bootstrap.StackStatus, f.observedEvents())
	}
	roleArn := outputsOf(bootstrap)[contract.BootstrapOutputManagementRoleArn]
	if roleArn != "arn:aws:iam::111111111111:role/"+contract.ManagementRoleName {
		t.Errorf("%s = %q", contract.BootstrapOutputManagementRoleArn, roleArn)
	}
	if got := forwardedStatuses(f.forwardedEvents()); len(got) != 1 || got[0] != contract.BootstrapStackName+" CREATE_COMPLETE" {
		t.Errorf("forwarded = %v", got)
	}

	provisioner, err := f.accounts.FunctionCredentials(controlPlane, "provision", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	assumed, err := f.sts(provisioner).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(roleArn), RoleSessionName: aws.String("dep1abc"),
		ExternalId: aws.String(externalID), DurationSeconds: aws.Int32(900)})
	if err != nil {
		t.Fatal(err)
	}
	client := f.cfn(aws.Credentials{AccessKeyID: aws.ToString(assumed.Credentials.AccessKeyId), SecretAccessKey: aws.ToString(assumed.Credentials.SecretAccessKey),
		SessionToken: aws.ToString(assumed.Credentials.SessionToken)})
	_, err = client.CreateStack(ctx, &cloudformation.CreateStackInput{
		StackName: aws.String("clickhouse-cloud-dep1abc"), TemplateBody: aws.String(cdkTemplate(t, "ByocInfrastructure.template.json")),
		Parameters: infraParams("dep1abc"), Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityNamedIam},
		Tags: []cfntypes.Tag{{Key: aws.String(contract.ManagedByTagKey), Value: aws.String(contract.ManagedByTagValue)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.engine.Wait()
	infra := f.describe(t, client, "clickhouse-cloud-dep1abc")
	if infra.StackStatus != cfntypes.StackStatusCreateComplete {
		t.Fatalf("infrastructure: %s %q", infra.StackStatus, aws.ToString(infra.StackStatusReason))
	}
	out := outputsOf(infra)
	for _, key := range []string{contract.InfraOutputVpcID, contract.InfraOutputPrivateSubnetIDs, contract.InfraOutputPublicSubnetIDs,
		contract.InfraOutputPrivateRouteTableIDs, contract.InfraOutputClusterName, contract.InfraOutputClusterArn, contract.InfraOutputClusterEndpoint,
		contract.InfraOutputClusterSecurityGroupID, contract.InfraOutputBucketName, contract.InfraOutputStateExporterRoleArn,
		contract.InfraOutputLoadBalancerControllerRoleArn, contract.InfraOutputEbsCsiDriverRoleArn, contract.InfraOutputExternalDNSRoleArn,
		contract.InfraOutputCertManagerRoleArn, contract.InfraOutputClusterAutoscalerRoleArn, contract.InfraOutputK8sControlPlaneRoleArn,
		contract.InfraOutputK8sWorkerRoleArn, contract.InfraOutputDataPlaneMgmtRoleArn, contract.InfraOutputAgentRoleArn} {
		if out[key] == "" {
			t.Errorf("output %s missing (outputs %v)", key, out)
		}
	}
	// data-plane-mgmt: only the control plane's role, with this deployment's ExternalId. Not
	// the vendor account's root or another of its roles, not without the ExternalId.
	mgmt := out[contract.InfraOutputDataPlaneMgmtRoleArn]
	otherRole := strings.Replace(controlPlane, "Provisioner", "Invite", 1)
	invite, err := f.accounts.FunctionCredentials(otherRole, "invite", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for who, c := range map[string]struct {
		creds      aws.Credentials
		externalID *string
	}{
		"the vendor's root":                 {accounts.AdminCredentials("000000000000"), aws.String(externalID)},
		"another control-plane role":        {invite, aws.String(externalID)},
		"the control plane without the id":  {provisioner, nil},
		"the control plane with another id": {provisioner, aws.String("ext-another-deployment-0123456789abcdef")},
	} {
		_, err := f.sts(c.creds).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(mgmt), RoleSessionName: aws.String("attacker"), ExternalId: c.externalID})
		if err == nil || !strings.Contains(err.Error(), "AccessDenied") {
			t.Errorf("%s assumed %s: %v, want AccessDenied", who, mgmt, err)
		}
	}
	if _, err := f.sts(provisioner).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(mgmt), RoleSessionName: aws.String("dep1abc"),
		ExternalId: aws.String(externalID)}); err != nil {
		t.Errorf("the control plane cannot assume %s with the deployment's ExternalId: %v", mgmt, err)
	}
	// byoc records StateExporterRoleId and compares it with SQS's SenderId: the id the
	// exporter role's sessions carry in their UserID ("<role id>:<session>").
	exporter := out[contract.InfraOutputStateExporterRoleArn]
	if id := out[contract.InfraOutputStateExporterRoleID]; id != accounts.RoleID(exporter) {
		t.Errorf("%s = %q, want accounts.RoleID(%s) = %q", contract.InfraOutputStateExporterRoleID, id, exporter, accounts.RoleID(exporter))
	}
	if pod, err := f.accounts.WorkloadCredentials(exporter, "state-exporter", time.Hour); err != nil ||
		f.accounts.PrincipalForAccessKey(pod.AccessKeyID).UserID != out[contract.InfraOutputStateExporterRoleID]+":state-exporter" {
		t.Errorf("the exporter's pod session is not <%s>:state-exporter (%v)", contract.InfraOutputStateExporterRoleID, err)
	}
	if ids := strings.Split(out[contract.InfraOutputPrivateSubnetIDs], ","); len(ids) != 3 || !strings.HasPrefix(ids[0], "subnet-") {
		t.Errorf("%s = %q", contract.InfraOutputPrivateSubnetIDs, out[contract.InfraOutputPrivateSubnetIDs])
	}
	if got := forwardedStatuses(f.forwardedEvents()); strings.Join(got, ",") != contract.BootstrapStackName+" CREATE_COMPLETE,"+
		"clickhouse-cloud-dep1abc CREATE_IN_PROGRESS,clickhouse-cloud-dep1abc CREATE_COMPLETE" {
		t.Errorf("forwarded = %v", got)
	}
	f.engine.mu.Lock()
	defer f.engine.mu.Unlock()
	for _, s := range f.engine.stacks {
		if len(s.warnings) > 0 {
			t.Errorf("stack %s warnings: %v", s.name, s.warnings)
		}
	}
}
