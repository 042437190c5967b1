package stacks

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/release"
)

const is = InfrastructureStackID

func TestInfrastructureParameters(t *testing.T) {
	params := defaultBuild.templates[is]["Parameters"].(map[string]any)
	want := []string{contract.InfraParamDeploymentID, contract.InfraParamResourcePrefix, contract.InfraParamVpcCidr,
		contract.InfraParamKubernetesVersion, contract.InfraParamStateQueueArn, contract.InfraParamControlPlaneAccountID,
		contract.InfraParamControlPlaneRoleArn, contract.InfraParamExternalID,
		contract.InfraParamNodeKubernetesVersion, contract.InfraParamNodeReleaseVersion}
	for _, a := range release.Addons {
		want = append(want, contract.InfraParamAddonVersion(a))
	}
	for i := range 3 {
		want = append(want, contract.InfraParamZoneIDs[i], contract.InfraParamPrivateSubnetCidrs[i], contract.InfraParamPublicSubnetCidrs[i])
	}
	var got []string
	for name := range params {
		got = append(got, name)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("parameters = %v, want %v", got, want)
	}
	for name, p := range params {
		if dig(p, "AllowedPattern") == nil {
			t.Errorf("parameter %s accepts anything: give it an AllowedPattern", name)
		}
	}
	if dig(params, contract.InfraParamExternalID, "NoEcho") != true {
		t.Errorf("the ExternalId parameter is echoed: %s", toJSON(params[contract.InfraParamExternalID]))
	}
	if dig(params, contract.InfraParamKubernetesVersion, "Default") != defaultKubernetesVersion {
		t.Errorf("KubernetesVersion default = %v", dig(params, contract.InfraParamKubernetesVersion, "Default"))
	}
}

func TestSubnetsArePlacedByZoneID(t *testing.T) {
	for i := range 3 {
		n := i + 1
		for tier, cidrParam := range map[string]string{"Private": contract.InfraParamPrivateSubnetCidrs[i], "Public": contract.InfraParamPublicSubnetCidrs[i]} {
			id := fmt.Sprintf("%sSubnet%d", tier, n)
			p := props(defaultBuild.resource(t, is, id))
			if dig(p, "AvailabilityZoneId", "Ref") != contract.InfraParamZoneIDs[i] || p["AvailabilityZone"] != nil {
				t.Errorf("%s zone = %s/%v, want AvailabilityZoneId from %s", id, toJSON(p["AvailabilityZoneId"]), p["AvailabilityZone"], contract.InfraParamZoneIDs[i])
			}
			if dig(p, "CidrBlock", "Ref") != cidrParam || dig(p, "VpcId", "Ref") != "Vpc" {
				t.Errorf("%s = %s", id, toJSON(p))
			}
			if p["MapPublicIpOnLaunch"] != false {
				t.Errorf("%s maps public IPs on launch", id)
			}
		}
	}
	if n := len(defaultBuild.resources(is, "AWS::EC2::Subnet")); n != 6 {
		t.Errorf("want 6 subnets, found %d", n)
	}
	vpc := props(defaultBuild.resource(t, is, "Vpc"))
	if dig(vpc, "CidrBlock", "Ref") != contract.InfraParamVpcCidr || vpc["EnableDnsHostnames"] != true || vpc["EnableDnsSupport"] != true {
		t.Errorf("vpc = %s", toJSON(vpc))
	}
}

// TestEachZoneEgressesThroughItsOwnNAT: private subnet i routes to NAT gateway i, which sits
// in public subnet i; public subnets route to the internet gateway; S3 stays on the endpoint.
func TestEachZoneEgressesThroughItsOwnNAT(t *testing.T) {
	routeTableOf := map[string]string{}
	for _, a := range defaultBuild.resources(is, "AWS::EC2::SubnetRouteTableAssociation") {
		routeTableOf[dig(props(a), "SubnetId", "Ref").(string)] = dig(props(a), "RouteTableId", "Ref").(string)
	}
	routes := map[string]map[string]any{}
	for _, r := range defaultBuild.resources(is, "AWS::EC2::Route") {
		routes[dig(props(r), "RouteTableId", "Ref").(string)] = props(r)
	}
	for i := 1; i <= 3; i++ {
		private, public := fmt.Sprintf("PrivateSubnet%d", i), fmt.Sprintf("PublicSubnet%d", i)
		nat := fmt.Sprintf("NatGateway%d", i)
		route := routes[routeTableOf[private]]
		if dig(route, "NatGatewayId", "Ref") != nat || route["DestinationCidrBlock"] != "0.0.0.0/0" {
			t.Errorf("%s default route = %s, want via %s", private, toJSON(route), nat)
		}
		if dig(defaultBuild.resource(t, is, nat), "Properties", "SubnetId", "Ref") != public {
			t.Errorf("%s is not in %s", nat, public)
		}
		if dig(routes[routeTableOf[public]], "GatewayId", "Ref") != "InternetGateway" {
			t.Errorf("%s does not route to the internet gateway", public)
		}
	}
	endpoint := props(defaultBuild.resource(t, is, "S3GatewayEndpoint"))
	if endpoint["VpcEndpointType"] != "Gateway" || resolve(endpoint["ServiceName"], sampleVars) != "com.amazonaws.us-west-2.s3" {
		t.Errorf("endpoint = %s", toJSON(endpoint))
	}
	var tables []string
	for _, rt := range asList(endpoint["RouteTableIds"]) {
		tables = append(tables, dig(rt, "Ref").(string))
	}
	if want := []string{routeTableOf["PrivateSubnet1"], routeTableOf["PrivateSubnet2"], routeTableOf["PrivateSubnet3"]}; !slices.Equal(tables, want) {
		t.Errorf("S3 endpoint route tables = %v, want the private ones %v", tables, want)
	}
}

func TestBucketIsEncryptedPrivateAndTLSOnly(t *testing.T) {
	bucket := defaultBuild.resource(t, is, "Bucket")
	p := props(bucket)
	if got := resolve(p["BucketName"], sampleVars); got != "clickhouse-cloud-k3q9x2m7p4w8z-111122223333" {
		t.Errorf("bucket name = %s", got)
	}
	if dig(p, "BucketEncryption", "ServerSideEncryptionConfiguration", 0, "ServerSideEncryptionByDefault", "SSEAlgorithm") != "AES256" {
		t.Errorf("encryption = %s", toJSON(p["BucketEncryption"]))
	}
	block := p["PublicAccessBlockConfiguration"].(map[string]any)
	for _, k := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
		if block[k] != true {
			t.Errorf("public access block %s = %v", k, block[k])
		}
	}
	if bucket["DeletionPolicy"] != "RetainExceptOnCreate" || bucket["UpdateReplacePolicy"] != "Retain" {
		t.Errorf("bucket deletion/update-replace policy = %v/%v, want RetainExceptOnCreate/Retain (customer data, but not a rolled-back create's empty bucket holding its name)",
			bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"])
	}
	policy := props(defaultBuild.resource(t, is, "BucketPolicy"))
	st := dig(policy, "PolicyDocument", "Statement", 0)
	if dig(policy, "Bucket", "Ref") != "Bucket" || dig(st, "Effect") != "Deny" || dig(st, "Condition", "Bool", "aws:SecureTransport") != "false" {
		t.Errorf("bucket policy = %s, want deny without TLS", toJSON(policy))
	}
	if got := resourcesOf(st.(map[string]any), nil); !slices.Equal(got, []string{"<Bucket.Arn>", "<Bucket.Arn>/*"}) {
		t.Errorf("TLS deny covers %v, want the bucket and its objects", got)
	}
}

func TestClusterIsNamedByPrefixAndLogsEverything(t *testing.T) {
	p := props(defaultBuild.resource(t, is, "Cluster"))
	if got := resolve(p["Name"], sampleVars); got != "clickhouse-cloud-k3q9x2m7p4w8z" {
		t.Errorf("cluster name = %s, want <prefix>-<deployment id>", got)
	}
	if dig(p, "Version", "Ref") != contract.InfraParamKubernetesVersion || dig(p, "RoleArn", "Fn::GetAtt", 0) != roleK8sControlPlane.ID {
		t.Errorf("version/role = %s/%s", toJSON(p["Version"]), toJSON(p["RoleArn"]))
	}
	var subnets []string
	for _, s := range asList(dig(p, "ResourcesVpcConfig", "SubnetIds")) {
		subnets = append(subnets, dig(s, "Ref").(string))
	}
	if !slices.Equal(subnets, []string{"PrivateSubnet1", "PrivateSubnet2", "PrivateSubnet3"}) {
		t.Errorf("cluster subnets = %v, want the private ones", subnets)
	}
	var logTypes []string
	for _, l := range asList(dig(p, "Logging", "ClusterLogging", "EnabledTypes")) {
		logTypes = append(logTypes, dig(l, "Type").(string))
	}
	if len(logTypes) != 5 {
		t.Errorf("control-plane log types = %v, want all five", logTypes)
	}
	if dig(p, "UpgradePolicy", "SupportType") != "STANDARD" {
		t.Errorf("support type = %s, want STANDARD set explicitly (the API's default is EXTENDED, 6x the price)", toJSON(p["UpgradePolicy"]))
	}
	if dig(p, "AccessConfig", "AuthenticationMode") != "API" || p["BootstrapSelfManagedAddons"] != false {
		t.Errorf("access/add-ons = %s/%v", toJSON(p["AccessConfig"]), p["BootstrapSelfManagedAddons"])
	}
}

func TestSystemNodeGroupsOnePerZone(t *testing.T) {
	groups := defaultBuild.resources(is, "AWS::EKS::Nodegroup")
	if len(groups) != 3 {
		t.Fatalf("want 3 system node groups, found %d", len(groups))
	}
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("SystemNodeGroup%d", i)
		ng := defaultBuild.resource(t, is, id)
		p := props(ng)
		if toJSON(p["InstanceTypes"]) != `["m5.xlarge"]` {
			t.Errorf("%s instance types = %s", id, toJSON(p["InstanceTypes"]))
		}
		if dig(p, "ScalingConfig", "MinSize") != 1.0 || dig(p, "ScalingConfig", "DesiredSize") != 1.0 {
			t.Errorf("%s scaling = %s, want min/desired 1", id, toJSON(p["ScalingConfig"]))
		}
		if toJSON(p["Subnets"]) != fmt.Sprintf(`[{"Ref":"PrivateSubnet%d"}]`, i) {
			t.Errorf("%s subnets = %s, want private subnet %d only", id, toJSON(p["Subnets"]), i)
		}
		if dig(p, "NodeRole", "Fn::GetAtt", 0) != roleK8sWorker.ID || dig(p, "ClusterName", "Ref") != "Cluster" {
			t.Errorf("%s role/cluster = %s/%s", id, toJSON(p["NodeRole"]), toJSON(p["ClusterName"]))
		}
		if dig(p, "Version", "Ref") != contract.InfraParamNodeKubernetesVersion ||
			toJSON(p["ReleaseVersion"]) != `{"Fn::If":["NodeReleaseVersionSet",{"Ref":"NodeReleaseVersion"},{"Ref":"AWS::NoValue"}]}` {
			t.Errorf("%s version/release = %s/%s, want the node parameters (the release left out when empty)", id, toJSON(p["Version"]), toJSON(p["ReleaseVersion"]))
		}
		dependsOn := toJSON(ng["DependsOn"])
		for _, need := range append([]string{fmt.Sprintf("PrivateDefaultRoute%d", i)}, addonIDs(addonsBeforeNodes)...) {
			if !strings.Contains(dependsOn, `"`+need+`"`) {
				t.Errorf("%s does not wait for %s (DependsOn %s)", id, need, dependsOn)
			}
		}
	}
}

func addonIDs(names []string) []string {
	var ids []string
	for _, n := range names {
		ids = append(ids, addonID(n))
	}
	return ids
}

func TestAddons(t *testing.T) {
	addons := defaultBuild.resources(is, "AWS::EKS::Addon")
	var names []string
	for _, a := range addons {
		names = append(names, props(a)["AddonName"].(string))
	}
	slices.Sort(names)
	if want := slices.Sorted(slices.Values(release.Addons)); !slices.Equal(names, want) {
		t.Errorf("add-ons = %v, want the release catalogue's %v", names, want)
	}
	for _, name := range release.Addons {
		p := props(defaultBuild.resource(t, is, addonID(name)))
		if got := dig(p, "AddonVersion", "Fn::If", 1, "Ref"); got != contract.InfraParamAddonVersion(name) {
			t.Errorf("%s version = %s, want its parameter", name, toJSON(p["AddonVersion"]))
		}
	}
	for _, name := range addonsAfterNodes {
		dependsOn := toJSON(defaultBuild.resource(t, is, addonID(name))["DependsOn"])
		for i := 1; i <= 3; i++ {
			if !strings.Contains(dependsOn, fmt.Sprintf(`"SystemNodeGroup%d"`, i)) {
				t.Errorf("%s does not wait for SystemNodeGroup%d (DependsOn %s)", name, i, dependsOn)
			}
		}
	}
}

func TestRolesTrustOnlyTheirComponent(t *testing.T) {
	for _, r := range clusterRoles {
		t.Run(r.Suffix, func(t *testing.T) {
			p := props(defaultBuild.resource(t, is, r.ID))
			if got := resolve(p["RoleName"], sampleVars); got != "clickhouse-cloud-k3q9x2m7p4w8z-"+r.Suffix {
				t.Errorf("role name = %s", got)
			}
			trust := asList(dig(p, "AssumeRolePolicyDocument", "Statement"))
			if len(trust) != 1 {
				t.Fatalf("trust has %d statements, want 1", len(trust))
			}
			st := trust[0].(map[string]any)
			var want string
			switch {
			case r.PassedTo == servicePodIdentity:
				want = fmt.Sprintf(`{"Action":["sts:AssumeRole","sts:TagSession"],"Condition":{"StringEquals":{"aws:RequestTag/eks-cluster-name":"clickhouse-cloud-k3q9x2m7p4w8z","aws:RequestTag/kubernetes-namespace":"%s","aws:RequestTag/kubernetes-service-account":"%s"}},"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"}}`,
					r.Namespace, r.ServiceAccount)
			case r == roleK8sControlPlane:
				want = `{"Action":"sts:AssumeRole","Effect":"Allow","Principal":{"Service":"eks.amazonaws.com"}}`
			case r == roleK8sWorker:
				want = `{"Action":"sts:AssumeRole","Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"}}`
			case r == roleDataPlaneMgmt:
				// Only the control plane's role, only with this deployment's ExternalId.
				want = `{"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":"0123456789abcdef0123456789abcdef01234567"}},"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999988887777:role/byoc-provisioner"}}`
			}
			if got := toJSON(resolveAll(st, sampleVars)); got != want {
				t.Errorf("trust = %s\nwant    %s", got, want)
			}
		})
	}

	// Each pod role is associated with exactly its service account.
	associations := map[string]string{}
	for _, a := range defaultBuild.resources(is, "AWS::EKS::PodIdentityAssociation") {
		p := props(a)
		associations[dig(p, "RoleArn", "Fn::GetAtt", 0).(string)] = p["Namespace"].(string) + "/" + p["ServiceAccount"].(string)
	}
	for _, r := range clusterRoles {
		want := ""
		if r.PassedTo == servicePodIdentity {
			want = r.Namespace + "/" + r.ServiceAccount
		}
		if associations[r.ID] != want {
			t.Errorf("%s associated with %q, want %q", r.ID, associations[r.ID], want)
		}
	}
	entry := props(defaultBuild.resource(t, is, "DataPlaneMgmtAccess"))
	if dig(entry, "PrincipalArn", "Fn::GetAtt", 0) != roleDataPlaneMgmt.ID || toJSON(entry["KubernetesGroups"]) != `["`+dataPlaneMgmtGroup+`"]` || entry["AccessPolicies"] != nil {
		t.Errorf("data-plane-mgmt access entry = %s, want its group and no access policy", toJSON(entry))
	}
}

// TestNarrowRolePermissions pins the roles whose permissions are short enough to state whole.
func TestNarrowRolePermissions(t *testing.T) {
	want := map[string]string{
		roleStateExporter.ID:   `[{"Action":"sqs:SendMessage","Effect":"Allow","Resource":"arn:aws:sqs:us-east-1:999988887777:state"}]`,
		roleDataPlaneMgmt.ID:   `[{"Action":"eks:DescribeCluster","Effect":"Allow","Resource":"arn:aws:eks:us-west-2:111122223333:cluster/clickhouse-cloud-k3q9x2m7p4w8z"}]`,
		roleAgent.ID:           `[{"Action":["sqs:GetQueueUrl","sqs:ReceiveMessage","sqs:DeleteMessage","sqs:ChangeMessageVisibility","sqs:GetQueueAttributes"],"Effect":"Allow","Resource":"arn:aws:sqs:us-east-1:999988887777:byoc-commands-k3q9x2m7p4w8z.fifo"}]`,
		roleK8sControlPlane.ID: `null`,
		roleK8sWorker.ID:       `null`,
		roleEbsCsiDriver.ID:    `null`,
	}
	for role, statements := range want {
		if got := toJSON(resolveAll(defaultBuild.statementsOfRole(is, role), sampleVars)); got != statements {
			t.Errorf("%s statements = %s\nwant %s", role, got, statements)
		}
	}
	managed := map[string][]string{
		roleK8sControlPlane.ID: {managedPolicyEKSCluster},
		roleK8sWorker.ID:       {managedPolicyEKSWorker, managedPolicyEKSCNI, managedPolicyECRPull},
		roleEbsCsiDriver.ID:    {managedPolicyEBSCSI},
	}
	for _, r := range clusterRoles {
		var got []string
		for _, m := range asList(props(defaultBuild.resource(t, is, r.ID))["ManagedPolicyArns"]) {
			got = append(got, strings.TrimPrefix(resolve(m, sampleVars), "arn:aws:iam::aws:policy/"))
		}
		if !slices.Equal(got, managed[r.ID]) {
			t.Errorf("%s managed policies = %v, want %v", r.ID, got, managed[r.ID])
		}
	}
	// The cluster autoscaler may only scale this cluster's node groups.
	for _, st := range defaultBuild.statementsOfRole(is, roleClusterAutoscaler.ID) {
		if slices.Contains(actionsOf(st), "autoscaling:SetDesiredCapacity") {
			if got := resolve(dig(st, "Condition", "StringEquals", "aws:ResourceTag/eks:cluster-name"), sampleVars); got != "clickhouse-cloud-k3q9x2m7p4w8z" {
				t.Errorf("autoscaler scaling condition = %s", toJSON(st["Condition"]))
			}
		}
	}
}

func TestInfrastructureOutputs(t *testing.T) {
	outputs := defaultBuild.templates[is]["Outputs"].(map[string]any)
	want := []string{contract.InfraOutputVpcID, contract.InfraOutputPrivateSubnetIDs, contract.InfraOutputPublicSubnetIDs,
		contract.InfraOutputPrivateRouteTableIDs, contract.InfraOutputClusterName, contract.InfraOutputClusterArn,
		contract.InfraOutputClusterEndpoint, contract.InfraOutputClusterSecurityGroupID, contract.InfraOutputBucketName,
		contract.InfraOutputStateExporterRoleID, contract.InfraOutputPeersSecurityGroupID}
	for _, r := range clusterRoles {
		want = append(want, r.OutputKey)
	}
	var got []string
	for name := range outputs {
		got = append(got, name)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("outputs = %v\nwant %v", got, want)
	}
	if got := resolve(dig(outputs, contract.InfraOutputPrivateSubnetIDs, "Value"), nil); got != "<Ref:PrivateSubnet1>,<Ref:PrivateSubnet2>,<Ref:PrivateSubnet3>" {
		t.Errorf("%s = %s, want the three private subnets in zone order", contract.InfraOutputPrivateSubnetIDs, got)
	}
	if got := toJSON(dig(outputs, contract.InfraOutputClusterSecurityGroupID, "Value")); got != `{"Fn::GetAtt":["Cluster","ClusterSecurityGroupId"]}` {
		t.Errorf("%s = %s", contract.InfraOutputClusterSecurityGroupID, got)
	}
}

func TestInfrastructureTemplateFitsCreateStackTemplateBody(t *testing.T) {
	template := defaultBuild.app.InfraTemplate
	if len(template) > TemplateBodyLimit {
		t.Fatalf("bundled infrastructure template is %d bytes, over CloudFormation's %d", len(template), TemplateBodyLimit)
	}
	t.Logf("infrastructure template: %d of %d bytes", len(template), TemplateBodyLimit)
	// What provision sends is what the tests above examined (cdk.out's copy minus CDK metadata).
	compacted, err := CompactTemplate(readFile(t, defaultBuild.outdir+"/"+InfrastructureStackID+".template.json"))
	if err != nil {
		t.Fatal(err)
	}
	if string(compacted) != string(template) {
		t.Errorf("the bundled template differs from cdk.out/%s.template.json", InfrastructureStackID)
	}
	if strings.Contains(string(template), "aws:cdk") || strings.Contains(string(template), "cdk_nag") {
		t.Errorf("the bundled template still carries CDK metadata")
	}
}

// TestRolePoliciesFitIAMLimits: a role's inline policies hold at most 10,240 characters in
// all (whitespace excluded), measured with the longest names the parameters allow.
func TestRolePoliciesFitIAMLimits(t *testing.T) {
	longest := map[string]string{}
	for k, v := range sampleVars {
		longest[k] = v
	}
	longest[contract.InfraParamResourcePrefix] = strings.Repeat("p", 24)
	longest[contract.InfraParamDeploymentID] = "d" + strings.Repeat("9", 19)
	longest["AWS::Partition"] = "aws-us-gov"
	longest["AWS::Region"] = "ap-southeast-5"
	for id, r := range defaultBuild.resources(is, "AWS::IAM::Role") {
		size := 0
		for _, p := range asList(props(r)["Policies"]) {
			size += len(toJSON(resolveAll(dig(p, "PolicyDocument"), longest)))
		}
		if size > 10240 {
			t.Errorf("role %s inline policies are %d characters, over IAM's 10,240", id, size)
		}
		t.Logf("%s: %d characters of inline policy", id, size)
	}
}

// TestAgentReadsOnlyItsCommandChannel: the in-cluster agent role may read exactly its
// deployment's command channel, named as channel.QueueName names it, in the vendor's account
// and the state queue's region; and the bootstrap boundary admits that. No other role of the
// deployment may touch the channel (data-plane-mgmt, which the vendor's account assumes,
// included).
func TestAgentReadsOnlyItsCommandChannel(t *testing.T) {
	name, err := channel.QueueName(sampleVars[contract.InfraParamDeploymentID])
	if err != nil {
		t.Fatal(err)
	}
	want := "arn:aws:sqs:us-east-1:" + sampleVars[contract.InfraParamControlPlaneAccountID] + ":" + name
	vars := maps.Clone(sampleVars)
	vars[contract.BootstrapParamControlPlaneRoleArn] = "arn:aws:iam::" + sampleVars[contract.InfraParamControlPlaneAccountID] + ":role/provisioner"
	var boundary []map[string]any
	for _, st := range asList(dig(props(defaultBuild.resource(t, bs, "RoleBoundary")), "PolicyDocument", "Statement")) {
		boundary = append(boundary, st.(map[string]any))
	}
	for _, r := range clusterRoles {
		if r == roleAgent {
			continue
		}
		for _, st := range defaultBuild.statementsOfRole(is, r.ID) {
			for _, a := range actionsOf(st) {
				if strings.HasPrefix(a, "sqs:") && a != "sqs:SendMessage" {
					t.Errorf("role %s has %s: only the agent reads the command channel", r.ID, a)
				}
			}
		}
	}
	var found int
	for _, st := range defaultBuild.statementsOfRole(is, roleAgent.ID) {
		for _, a := range actionsOf(st) {
			if !strings.HasPrefix(a, "sqs:") {
				continue
			}
			found++
			if got := resourcesOf(st, sampleVars); len(got) != 1 || got[0] != want {
				t.Errorf("agent's %s applies to %v, want only %s", a, got, want)
			}
			admitted := false
			for _, b := range boundary {
				for _, r := range resourcesOf(b, vars) {
					admitted = admitted || (slices.Contains(actionsOf(b), a) && iamMatch(r, want))
				}
			}
			if !admitted {
				t.Errorf("the boundary does not admit %s on %s", a, want)
			}
		}
	}
	if found != len(commandChannelReadActions) {
		t.Errorf("agent has %d SQS actions, want %v", found, commandChannelReadActions)
	}
	// The channel's own policy allows the agent the same actions (cross-account, both must).
	doc, err := channel.CommandQueuePolicy(want, "arn:aws:iam::111122223333:role/agent")
	if err != nil {
		t.Fatal(err)
	}
	var policy struct{ Statement []map[string]any }
	if err := json.Unmarshal([]byte(doc), &policy); err != nil {
		t.Fatal(err)
	}
	var allowed []string
	for _, st := range policy.Statement {
		if st["Effect"] == "Allow" {
			allowed = append(allowed, actionsOf(st)...)
		}
	}
	slices.Sort(allowed)
	if mine := slices.Sorted(slices.Values(commandChannelReadActions)); !slices.Equal(allowed, mine) {
		t.Errorf("the channel's policy allows the agent %v, its role may %v", allowed, mine)
	}
	// Another vendor account's channels stay outside the boundary.
	other := strings.Replace(want, sampleVars[contract.InfraParamControlPlaneAccountID], "123456789012", 1)
	for _, b := range boundary {
		for _, r := range resourcesOf(b, vars) {
			if strings.Contains(r, ":sqs:") && iamMatch(r, other) {
				t.Errorf("the boundary admits another account's channel %s (statement %v)", other, b["Sid"])
			}
		}
	}
}
