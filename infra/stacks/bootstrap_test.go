package stacks

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/byocloud/byoc/infra/local/eventpattern"
	"github.com/byocloud/byoc/shared/contract"
)

const bs = BootstrapStackID

// managementStatements are the statements of the management role's policies, resolved with
// the sample account and the default prefix.
func managementStatements(t *testing.T) []map[string]any {
	t.Helper()
	statements := defaultBuild.statementsOfRole(bs, "ManagementRole")
	if len(statements) == 0 {
		t.Fatal("the management role has no statements")
	}
	return statements
}

// allowing returns the statements that allow action on resource, whatever their conditions.
func allowing(statements []map[string]any, action, resource string) []map[string]any {
	var out []map[string]any
	for _, st := range statements {
		if st["Effect"] != "Allow" || !slices.Contains(actionsOf(st), action) {
			continue
		}
		for _, pattern := range resourcesOf(st, sampleVars) {
			if iamMatch(pattern, resource) {
				out = append(out, st)
				break
			}
		}
	}
	return out
}

func TestBootstrapParameters(t *testing.T) {
	params := defaultBuild.templates[bs]["Parameters"].(map[string]any)
	names := []string{contract.BootstrapParamExternalID, contract.BootstrapParamControlPlaneRoleArn,
		contract.BootstrapParamVendorEventBusArn, contract.BootstrapParamResourcePrefix}
	if len(params) != len(names) {
		t.Errorf("parameters = %v, want exactly %v", toJSON(params), names)
	}
	externalID := params[contract.BootstrapParamExternalID].(map[string]any)
	if externalID["NoEcho"] != true || externalID["MinLength"] != 32.0 {
		t.Errorf("ExternalId = %s, want NoEcho and MinLength 32", toJSON(externalID))
	}
	if dig(params, contract.BootstrapParamResourcePrefix, "Default") != contract.DefaultPrefix {
		t.Errorf("ResourcePrefix default = %v, want %s", dig(params, contract.BootstrapParamResourcePrefix, "Default"), contract.DefaultPrefix)
	}
}

// TestParameterPatterns checks what each AllowedPattern of the customer templates accepts and
// refuses, as written in the synthesized templates.
func TestParameterPatterns(t *testing.T) {
	cases := []struct {
		stack, param   string
		accept, refuse []string
	}{
		{bs, contract.BootstrapParamExternalID,
			[]string{strings.Repeat("a", 32), "Ab0+=,.@:/-_" + strings.Repeat("x", 20)},
			[]string{"", "has space " + strings.Repeat("x", 30), "quote\"" + strings.Repeat("x", 30)}},
		{bs, contract.BootstrapParamControlPlaneRoleArn,
			[]string{"arn:aws:iam::123456789012:role/ByocControlPlane-ProvisionRole-ABC", "arn:aws-us-gov:iam::123456789012:role/path/name"},
			[]string{"arn:aws:iam::123456789012:user/bob", "arn:aws:iam::12345:role/x", "*"}},
		{bs, contract.BootstrapParamVendorEventBusArn,
			[]string{"arn:aws:events:us-east-1:123456789012:event-bus/ByocControlPlaneVendorBus1234"},
			[]string{"arn:aws:events:us-east-1:123456789012:rule/x", "arn:aws:sqs:us-east-1:123456789012:q"}},
		{bs, contract.BootstrapParamResourcePrefix,
			[]string{"clickhouse-cloud", "a1", strings.Repeat("a", 24)},
			[]string{"", "a", "1abc", "Upper", "ends-", "has_underscore", strings.Repeat("a", 25)}},
		{InfrastructureStackID, contract.InfraParamResourcePrefix,
			[]string{"clickhouse-cloud", strings.Repeat("a", 24)},
			[]string{"1abc", strings.Repeat("a", 25)}},
		{InfrastructureStackID, contract.InfraParamDeploymentID,
			[]string{"k3q9x2m7p4w8z", "abc", "a" + strings.Repeat("1", 19)},
			[]string{"", "ab", "1abc", "has-dash", "Upper", "a" + strings.Repeat("1", 20)}},
		{InfrastructureStackID, contract.InfraParamVpcCidr,
			[]string{"10.0.0.0/16", "192.168.0.0/22", "172.16.4.0/23"},
			[]string{"10.0.0.0", "10.0.0.0/8", "300.0.0.0/16", "10.0.0/16"}},
		{InfrastructureStackID, contract.InfraParamZoneIDs[0],
			[]string{"use1-az1", "apne1-az4", "usw2-az3"},
			[]string{"us-east-1a", "use1-az", ""}},
		{InfrastructureStackID, contract.InfraParamKubernetesVersion,
			[]string{"1.31", "1.33"},
			[]string{"1.3", "v1.31", "1.31.2"}},
		{InfrastructureStackID, contract.InfraParamStateQueueArn,
			[]string{"arn:aws:sqs:us-east-1:123456789012:ByocControlPlane-StateQueue-AbC_1"},
			[]string{"arn:aws:sns:us-east-1:123456789012:topic", "arn:aws:sqs:us-east-1:123456789012:*"}},
		{InfrastructureStackID, contract.InfraParamControlPlaneAccountID,
			[]string{"123456789012"},
			[]string{"12345678901", "1234567890123", "abcdefghijkl"}},
	}
	for _, c := range cases {
		t.Run(c.param, func(t *testing.T) {
			pattern, _ := dig(defaultBuild.templates[c.stack], "Parameters", c.param, "AllowedPattern").(string)
			if pattern == "" {
				t.Fatalf("%s.%s has no AllowedPattern", c.stack, c.param)
			}
			re := regexp.MustCompile(pattern)
			for _, v := range c.accept {
				if !re.MatchString(v) {
					t.Errorf("%s refuses %q", c.param, v)
				}
			}
			for _, v := range c.refuse {
				if re.MatchString(v) {
					t.Errorf("%s accepts %q", c.param, v)
				}
			}
		})
	}
}

// TestNamesFitTheirLimits: with the longest prefix and deployment id the parameters accept,
// every role, bucket, cluster and node group name still fits its service's limit.
func TestNamesFitTheirLimits(t *testing.T) {
	longest := map[string]string{}
	for k, v := range sampleVars {
		longest[k] = v
	}
	longest[contract.InfraParamResourcePrefix] = strings.Repeat("p", 24)
	longest[contract.InfraParamDeploymentID] = "d" + strings.Repeat("9", 19)
	limits := map[string]int{"AWS::IAM::Role": 64, "AWS::S3::Bucket": 63, "AWS::EKS::Cluster": 100, "AWS::EKS::Nodegroup": 63}
	nameProp := map[string]string{"AWS::IAM::Role": "RoleName", "AWS::S3::Bucket": "BucketName", "AWS::EKS::Cluster": "Name", "AWS::EKS::Nodegroup": "NodegroupName"}
	for typ, limit := range limits {
		for id, r := range defaultBuild.resources(InfrastructureStackID, typ) {
			name := resolve(props(r)[nameProp[typ]], longest)
			if len(name) > limit {
				t.Errorf("%s %s name %q is %d characters, over %d", typ, id, name, len(name), limit)
			}
		}
	}
}

func TestManagementRoleTrustsOnlyTheControlPlaneWithTheExternalID(t *testing.T) {
	role := props(defaultBuild.resource(t, bs, "ManagementRole"))
	if role["RoleName"] != contract.ManagementRoleName {
		t.Errorf("role name = %v, want %s (the control plane may assume only this name)", role["RoleName"], contract.ManagementRoleName)
	}
	statements := asList(dig(role, "AssumeRolePolicyDocument", "Statement"))
	want := `[{"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":{"Ref":"ExternalId"}}},"Effect":"Allow","Principal":{"AWS":{"Ref":"ControlPlaneRoleArn"}}}]`
	if got := toJSON(statements); got != want {
		t.Errorf("trust policy = %s\nwant %s", got, want)
	}
	outputs := defaultBuild.templates[bs]["Outputs"].(map[string]any)
	if got := toJSON(dig(outputs, contract.BootstrapOutputManagementRoleArn, "Value")); got != `{"Fn::GetAtt":["ManagementRole","Arn"]}` {
		t.Errorf("output %s = %s", contract.BootstrapOutputManagementRoleArn, got)
	}
}

// TestManagementRoleCoversExactlyTheInfrastructure checks the management role against the
// infrastructure template, name by name: what byoc creates is allowed, and the same actions on
// names outside the prefix, or passing a role to the wrong service, are not.
func TestManagementRoleCoversExactlyTheInfrastructure(t *testing.T) {
	statements := managementStatements(t)
	infra := InfrastructureStackID
	prefix, id := sampleVars[contract.InfraParamResourcePrefix], sampleVars[contract.InfraParamDeploymentID]
	cluster := prefix + "-" + id
	eksArn := "arn:aws:eks:us-west-2:111122223333:"

	mustAllow := func(action, resource string) {
		t.Helper()
		if len(allowing(statements, action, resource)) == 0 {
			t.Errorf("management role may not %s on %s", action, resource)
		}
	}
	mustDeny := func(action, resource string) {
		t.Helper()
		if got := allowing(statements, action, resource); len(got) > 0 {
			t.Errorf("management role may %s on %s (by %s)", action, resource, toJSON(got))
		}
	}

	// Roles: created by name prefix; passed only to the service that uses each.
	passedTo := map[string]string{}
	for _, c := range defaultBuild.resources(infra, "AWS::EKS::Cluster") {
		passedTo[toJSON(dig(props(c), "RoleArn", "Fn::GetAtt", 0))] = serviceEKS
	}
	for _, ng := range defaultBuild.resources(infra, "AWS::EKS::Nodegroup") {
		passedTo[toJSON(dig(props(ng), "NodeRole", "Fn::GetAtt", 0))] = serviceEKS
	}
	for _, a := range defaultBuild.resources(infra, "AWS::EKS::PodIdentityAssociation") {
		passedTo[toJSON(dig(props(a), "RoleArn", "Fn::GetAtt", 0))] = servicePodIdentity
	}
	roles := defaultBuild.resources(infra, "AWS::IAM::Role")
	if len(roles) != len(clusterRoles) {
		t.Errorf("infrastructure has %d roles, clusterRoles lists %d", len(roles), len(clusterRoles))
	}
	for logicalID, r := range roles {
		arn := "arn:aws:iam::111122223333:role/" + resolve(props(r)["RoleName"], sampleVars)
		mustAllow("iam:CreateRole", arn)
		mustAllow("iam:PutRolePolicy", arn)
		mustAllow("iam:DeleteRole", arn)
		for _, service := range []string{serviceEKS, servicePodIdentity} {
			pass := allowing(statements, "iam:PassRole", arn)
			var toService bool
			for _, st := range pass {
				toService = toService || dig(st, "Condition", "StringEquals", "iam:PassedToService") == service
			}
			if want := passedTo[toJSON(logicalID)] == service; toService != want {
				t.Errorf("role %s passable to %s: %v, want %v", logicalID, service, toService, want)
			}
		}
		for _, managed := range asList(props(r)["ManagedPolicyArns"]) {
			attach := allowing(statements, "iam:AttachRolePolicy", arn)
			if len(attach) != 1 || !strings.Contains(toJSON(dig(attach[0], "Condition", "ArnEquals", "iam:PolicyARN")), toJSON(managed)) {
				t.Errorf("role %s: attaching %s is not allowed by an iam:PolicyARN condition", logicalID, toJSON(managed))
			}
		}
	}
	mustDeny("iam:CreateRole", "arn:aws:iam::111122223333:role/Admin")
	mustDeny("iam:PutRolePolicy", "arn:aws:iam::111122223333:role/"+contract.ManagementRoleName)
	mustDeny("iam:PassRole", "arn:aws:iam::111122223333:role/"+cluster+"-something-else")

	// Bucket, cluster and its sub-resources, stacks: by name prefix only.
	for _, b := range defaultBuild.resources(infra, "AWS::S3::Bucket") {
		mustAllow("s3:CreateBucket", "arn:aws:s3:::"+resolve(props(b)["BucketName"], sampleVars))
	}
	mustDeny("s3:CreateBucket", "arn:aws:s3:::customer-data")
	for _, c := range defaultBuild.resources(infra, "AWS::EKS::Cluster") {
		if got := resolve(props(c)["Name"], sampleVars); got != cluster {
			t.Errorf("cluster name = %s, want %s", got, cluster)
		}
	}
	mustAllow("eks:CreateCluster", eksArn+"cluster/"+cluster)
	mustAllow("eks:DeleteCluster", eksArn+"cluster/"+cluster)
	for _, ng := range defaultBuild.resources(infra, "AWS::EKS::Nodegroup") {
		mustAllow("eks:CreateNodegroup", eksArn+"nodegroup/"+cluster+"/"+resolve(props(ng)["NodegroupName"], sampleVars)+"/0ac2")
	}
	mustAllow("eks:CreateAddon", eksArn+"addon/"+cluster+"/coredns/0ac2")
	mustAllow("eks:CreatePodIdentityAssociation", eksArn+"podidentityassociation/"+cluster+"/a-1")
	mustAllow("eks:CreateAccessEntry", eksArn+"access-entry/"+cluster+"/role/0ac2")
	mustDeny("eks:DeleteCluster", eksArn+"cluster/production")
	mustDeny("eks:CreateNodegroup", eksArn+"nodegroup/production/"+cluster+"-x/0ac2")
	mustAllow("cloudformation:CreateStack", "arn:aws:cloudformation:us-west-2:111122223333:stack/"+cluster+"-infra/5b3c")
	mustAllow("cloudformation:DeleteStack", "arn:aws:cloudformation:us-west-2:111122223333:stack/"+cluster+"-infra/5b3c")
	mustDeny("cloudformation:DeleteStack", "arn:aws:cloudformation:us-west-2:111122223333:stack/"+contract.BootstrapStackName+"/5b3c")
	mustDeny("cloudformation:UpdateStack", "arn:aws:cloudformation:us-west-2:111122223333:stack/other-app/5b3c")
	mustDeny("cloudformation:CreateStack", "arn:aws:cloudformation:us-west-2:444455556666:stack/"+cluster+"-infra/5b3c")

	// Every AWS managed policy the management role may attach is one the template attaches.
	attached := map[string]bool{}
	for _, r := range roles {
		for _, m := range asList(props(r)["ManagedPolicyArns"]) {
			attached[resolve(m, sampleVars)] = true
		}
	}
	for _, p := range attachableManagedPolicies {
		if arn := "arn:aws:iam::aws:policy/" + p; !attached[arn] {
			t.Errorf("management role may attach %s, which the infrastructure never attaches", arn)
		}
	}
}

// TestRolesAreBoundedByTheBootstrapBoundary: every infrastructure role carries the boundary the
// bootstrap stack creates, the management role cannot create or change a role without it nor
// edit it, and the boundary admits every action the infrastructure roles are given.
func TestRolesAreBoundedByTheBootstrapBoundary(t *testing.T) {
	boundaryArn := "arn:aws:iam::111122223333:policy/" + contract.RoleBoundaryPolicyName
	boundary := props(defaultBuild.resource(t, bs, "RoleBoundary"))
	if boundary["ManagedPolicyName"] != contract.RoleBoundaryPolicyName || boundary["Roles"] != nil {
		t.Errorf("boundary = %s, want the named policy, attached to no role", toJSON(boundary))
	}
	var ceiling []string
	for _, st := range asList(dig(boundary, "PolicyDocument", "Statement")) {
		ceiling = append(ceiling, actionsOf(st.(map[string]any))...)
	}
	for _, a := range ceiling {
		if a == "*" || a == "s3:*" || (strings.HasPrefix(a, "iam:") && a != "iam:CreateServiceLinkedRole") || strings.HasPrefix(a, "sts:") {
			t.Errorf("the boundary admits %s", a)
		}
		// Named actions, no service wildcard: what the managed policies and components use.
		if strings.Contains(a, "*") {
			t.Errorf("the boundary admits the wildcard %s", a)
		}
	}
	for id, r := range defaultBuild.resources(InfrastructureStackID, "AWS::IAM::Role") {
		if got := resolve(props(r)["PermissionsBoundary"], sampleVars); got != boundaryArn {
			t.Errorf("role %s boundary = %s, want %s", id, got, boundaryArn)
		}
		for _, st := range defaultBuild.statementsOfRole(InfrastructureStackID, id) {
			for _, a := range actionsOf(st) {
				if !slices.ContainsFunc(ceiling, func(p string) bool { return iamMatch(p, a) }) {
					t.Errorf("role %s is given %s, which its boundary does not admit", id, a)
				}
			}
		}
	}

	statements := managementStatements(t)
	role := "arn:aws:iam::111122223333:role/clickhouse-cloud-k3q9x2m7p4w8z-state-exporter"
	for _, action := range []string{"iam:CreateRole", "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:AttachRolePolicy", "iam:PutRolePermissionsBoundary"} {
		allowed := allowing(statements, action, role)
		if len(allowed) == 0 {
			t.Errorf("management role may not %s", action)
		}
		for _, st := range allowed {
			if got := resolve(dig(st, "Condition", "StringEquals", "iam:PermissionsBoundary"), sampleVars); got != boundaryArn {
				t.Errorf("%s (Sid %v) does not require the boundary: %s", action, st["Sid"], toJSON(st["Condition"]))
			}
		}
	}
	for _, action := range []string{"iam:DeleteRolePermissionsBoundary", "iam:CreatePolicyVersion", "iam:DeletePolicy"} {
		for _, target := range []string{role, boundaryArn} {
			if got := allowing(statements, action, target); len(got) > 0 && (action == "iam:DeleteRolePermissionsBoundary" || target == boundaryArn) {
				t.Errorf("management role may %s on %s", action, target)
			}
		}
	}
}

// TestCreatesRequireTheManagedByTag: every create action of the management role carries the
// aws:RequestTag condition, and EC2 changes require the tag on the resource.
func TestCreatesRequireTheManagedByTag(t *testing.T) {
	tagged := []string{"ec2:CreateVpc", "ec2:CreateSubnet", "ec2:CreateInternetGateway", "ec2:CreateRouteTable", "ec2:CreateNatGateway",
		"ec2:AllocateAddress", "ec2:CreateVpcEndpoint", "ec2:CreateSecurityGroup", "eks:CreateCluster", "eks:CreateNodegroup", "eks:CreateAddon",
		"eks:CreatePodIdentityAssociation", "eks:CreateAccessEntry", "iam:CreateRole", "iam:CreatePolicy", "cloudformation:CreateStack"}
	requestTag := "aws:RequestTag/" + contract.ManagedByTagKey
	found := map[string]bool{}
	for _, st := range managementStatements(t) {
		for _, a := range actionsOf(st) {
			if !slices.Contains(tagged, a) {
				continue
			}
			found[a] = true
			if dig(st, "Condition", "StringEquals", requestTag) != contract.ManagedByTagValue {
				t.Errorf("%s (Sid %v) does not require %s=%s: %s", a, st["Sid"], requestTag, contract.ManagedByTagValue, toJSON(st["Condition"]))
			}
		}
		if slices.Contains(actionsOf(st), "ec2:DeleteVpc") {
			if dig(st, "Condition", "StringEquals", "aws:ResourceTag/"+contract.ManagedByTagKey) != contract.ManagedByTagValue {
				t.Errorf("EC2 changes (Sid %v) do not require the managed-by tag on the resource", st["Sid"])
			}
		}
	}
	for _, a := range tagged {
		if !found[a] {
			t.Errorf("the management role cannot %s at all", a)
		}
	}
}

// TestManagementPoliciesFitIAMLimits: a managed policy holds at most 6,144 characters
// (whitespace excluded) and a role at most 10 managed policies. Measured with the longest
// prefix and partition the parameters allow.
func TestManagementPoliciesFitIAMLimits(t *testing.T) {
	longest := map[string]string{}
	for k, v := range sampleVars {
		longest[k] = v
	}
	longest[contract.BootstrapParamResourcePrefix] = strings.Repeat("p", 24)
	longest["AWS::Partition"] = "aws-us-gov"
	policies := defaultBuild.resources(bs, "AWS::IAM::ManagedPolicy")
	if len(policies) == 0 || len(policies) > 10 {
		t.Fatalf("the management role has %d managed policies, want 1 to 10", len(policies))
	}
	for id, p := range policies {
		doc, err := json.Marshal(resolveAll(props(p)["PolicyDocument"], longest))
		if err != nil {
			t.Fatal(err)
		}
		if len(doc) > 6144 {
			t.Errorf("%s is %d characters, over IAM's 6,144", id, len(doc))
		}
		t.Logf("%s: %d of 6,144 characters", id, len(doc))
	}
}

// resolveAll resolves every intrinsic inside a JSON value.
func resolveAll(v any, vars map[string]string) any {
	switch x := v.(type) {
	case map[string]any:
		for _, fn := range []string{"Fn::Sub", "Ref", "Fn::GetAtt", "Fn::Join"} {
			if _, ok := x[fn]; ok && len(x) == 1 {
				return resolve(x, vars)
			}
		}
		out := map[string]any{}
		for k, e := range x {
			out[k] = resolveAll(e, vars)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = resolveAll(e, vars)
		}
		return out
	case []map[string]any:
		if x == nil {
			return nil
		}
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = resolveAll(e, vars)
		}
		return out
	}
	return v
}

// TestStackEventsReachTheRightFunctions runs the sample events through the patterns as
// deployed: the customer's forwarding rule, then the vendor bus rules.
func TestStackEventsReachTheRightFunctions(t *testing.T) {
	customerVars := map[string]string{}
	for k, v := range sampleVars {
		customerVars[k] = v
	}
	forward := compilePattern(t, props(defaultBuild.resource(t, bs, "ForwardStackEvents"))["EventPattern"], customerVars)
	onboard := compilePattern(t, props(defaultBuild.resource(t, cp, defaultBuild.logicalIDOf(t, cp, "AWS::Events::Rule", "OnboardRule")))["EventPattern"], sampleVars)
	stackevents := compilePattern(t, props(defaultBuild.resource(t, cp, defaultBuild.logicalIDOf(t, cp, "AWS::Events::Rule", "StackEventsRule")))["EventPattern"], sampleVars)

	bootstrap := readFile(t, "../../events/onboard/bootstrap-create-complete.json")
	infra := readFile(t, "../../events/stackevents/infra-create-complete.json")
	otherStack := []byte(strings.ReplaceAll(string(infra), "stack/clickhouse-cloud-k3q9x2m7p4w8z-infra", "stack/payroll-app"))
	otherAccount := []byte(strings.ReplaceAll(string(infra), "111122223333", "444455556666"))
	lookalike := []byte(strings.ReplaceAll(string(bootstrap), "stack/clickhouse-byoc-bootstrap/", "stack/clickhouse-byoc-bootstrap-copy/"))
	cases := []struct {
		name                          string
		event                         []byte
		forwarded, onboarded, resumed bool
	}{
		{"bootstrap stack", bootstrap, true, true, true},
		{"infrastructure stack", infra, true, false, true},
		{"stack outside the prefix", otherStack, false, false, true},
		{"stack of another account", otherAccount, false, false, true},
		{"lookalike bootstrap name", lookalike, false, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, check := range []struct {
				rule    string
				pattern *eventpattern.Pattern
				want    bool
			}{{"forwarding rule", forward, c.forwarded}, {"onboard rule", onboard, c.onboarded}, {"stackevents rule", stackevents, c.resumed}} {
				got, err := check.pattern.MatchJSON(c.event)
				if err != nil {
					t.Fatal(err)
				}
				if got != check.want {
					t.Errorf("%s matches: %v, want %v", check.rule, got, check.want)
				}
			}
		})
	}
}

func compilePattern(t *testing.T, pattern any, vars map[string]string) *eventpattern.Pattern {
	t.Helper()
	raw, err := json.Marshal(resolveAll(pattern, vars))
	if err != nil {
		t.Fatal(err)
	}
	p, err := eventpattern.Compile(raw)
	if err != nil {
		t.Fatalf("compile %s: %v", raw, err)
	}
	return p
}

func TestForwarderMayOnlyPutEventsOnTheVendorBus(t *testing.T) {
	rule := props(defaultBuild.resource(t, bs, "ForwardStackEvents"))
	target := asList(rule["Targets"])
	if len(target) != 1 || toJSON(dig(target[0], "Arn")) != `{"Ref":"VendorEventBusArn"}` || dig(target[0], "RoleArn", "Fn::GetAtt", 0) != "ForwarderRole" {
		t.Fatalf("targets = %s, want the vendor bus with ForwarderRole", toJSON(target))
	}
	role := props(defaultBuild.resource(t, bs, "ForwarderRole"))
	if got := toJSON(dig(role, "AssumeRolePolicyDocument", "Statement")); !strings.Contains(got, `"Service":"events.amazonaws.com"`) || !strings.Contains(got, `"aws:SourceAccount"`) {
		t.Errorf("forwarder trust = %s, want events.amazonaws.com from this account", got)
	}
	statements := defaultBuild.statementsOfRole(bs, "ForwarderRole")
	if got := toJSON(statements); got != `[{"Action":"events:PutEvents","Effect":"Allow","Resource":{"Ref":"VendorEventBusArn"}}]` {
		t.Errorf("forwarder permissions = %s", got)
	}
}

func TestCustomerTemplatesArePlainTemplates(t *testing.T) {
	allowed := regexp.MustCompile(`^AWS::(IAM|EC2|S3|EKS|Events)::`)
	for _, id := range []string{BootstrapStackID, InfrastructureStackID} {
		tmpl := defaultBuild.templates[id]
		if _, ok := dig(tmpl, "Parameters", "BootstrapVersion").(map[string]any); ok {
			t.Errorf("%s has a BootstrapVersion parameter: it would need the CDK bootstrap in the customer's account", id)
		}
		if tmpl["Rules"] != nil {
			t.Errorf("%s has Rules %s", id, toJSON(tmpl["Rules"]))
		}
		for logicalID, r := range tmpl["Resources"].(map[string]any) {
			typ := r.(map[string]any)["Type"].(string)
			if !allowed.MatchString(typ) {
				t.Errorf("%s has %s of type %s: customer templates hold no code, custom resources or CDK metadata", id, logicalID, typ)
			}
			if strings.Contains(toJSON(dig(r, "Metadata")), "aws:asset") {
				t.Errorf("%s resource %s uses an asset", id, logicalID)
			}
		}
	}
	if _, err := os.Stat(defaultBuild.outdir + "/" + BootstrapStackID + ".assets.json"); err == nil {
		t.Errorf("the bootstrap stack has an assets manifest")
	}
}

// TestManagementRoleMayBuildEveryNetworkResource: CloudFormation creates and deletes the
// infrastructure template's EC2 resources as the management role, so each type's actions
// must be granted (a security group added without its actions would fail every provision on
// AWS, which the local cloud, evaluating no IAM on EC2 calls, would not show). A type the
// table does not know fails the test until its actions are listed.
func TestManagementRoleMayBuildEveryNetworkResource(t *testing.T) {
	statements := managementStatements(t)
	actions := map[string][]string{
		"AWS::EC2::VPC":                         {"ec2:CreateVpc", "ec2:DeleteVpc", "ec2:ModifyVpcAttribute"},
		"AWS::EC2::Subnet":                      {"ec2:CreateSubnet", "ec2:DeleteSubnet"},
		"AWS::EC2::InternetGateway":             {"ec2:CreateInternetGateway", "ec2:DeleteInternetGateway"},
		"AWS::EC2::VPCGatewayAttachment":        {"ec2:AttachInternetGateway", "ec2:DetachInternetGateway"},
		"AWS::EC2::RouteTable":                  {"ec2:CreateRouteTable", "ec2:DeleteRouteTable"},
		"AWS::EC2::Route":                       {"ec2:CreateRoute", "ec2:DeleteRoute"},
		"AWS::EC2::SubnetRouteTableAssociation": {"ec2:AssociateRouteTable", "ec2:DisassociateRouteTable"},
		"AWS::EC2::NatGateway":                  {"ec2:CreateNatGateway", "ec2:DeleteNatGateway"},
		"AWS::EC2::EIP":                         {"ec2:AllocateAddress", "ec2:ReleaseAddress"},
		"AWS::EC2::VPCEndpoint":                 {"ec2:CreateVpcEndpoint", "ec2:DeleteVpcEndpoints"},
		"AWS::EC2::SecurityGroup":               {"ec2:CreateSecurityGroup", "ec2:DeleteSecurityGroup", "ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupEgress"},
		"AWS::EC2::LaunchTemplate":              nil, // checked with EKS's node groups
	}
	for _, stack := range []string{InfrastructureStackID, PeeringStackID, PrivateLinkStackID} {
		for id, r := range defaultBuild.templates[stack]["Resources"].(map[string]any) {
			typ, _ := r.(map[string]any)["Type"].(string)
			if !strings.HasPrefix(typ, "AWS::EC2::") {
				continue
			}
			want, known := actions[typ]
			switch typ {
			case "AWS::EC2::VPCPeeringConnection":
				want, known = []string{"ec2:CreateVpcPeeringConnection", "ec2:DeleteVpcPeeringConnection"}, true
			case "AWS::EC2::SecurityGroupIngress":
				want, known = []string{"ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"}, true
			case "AWS::EC2::VPCEndpointService":
				want, known = []string{"ec2:CreateVpcEndpointServiceConfiguration", "ec2:DeleteVpcEndpointServiceConfigurations"}, true
			case "AWS::EC2::VPCEndpointServicePermissions":
				want, known = []string{"ec2:ModifyVpcEndpointServicePermissions"}, true
			}
			if !known {
				t.Errorf("%s %s (%s): list the actions CloudFormation needs for it", stack, id, typ)
				continue
			}
			// The resource an action is authorized on, in EC2's ARN vocabulary.
			resource := map[string]string{
				"AWS::EC2::SecurityGroupIngress": "security-group", "AWS::EC2::SecurityGroup": "security-group",
				"AWS::EC2::VPCPeeringConnection": "vpc-peering-connection", "AWS::EC2::VPCEndpointService": "vpc-endpoint-service",
				"AWS::EC2::VPCEndpointServicePermissions": "vpc-endpoint-service",
			}[typ]
			for _, a := range want {
				if (resource == "" || len(allowing(statements, a, "arn:aws:ec2:us-west-2:111122223333:"+resource+"/x")) == 0) &&
					len(allowing(statements, a, "*")) == 0 {
					t.Errorf("%s %s (%s): the management role may not %s", stack, id, typ, a)
				}
			}
		}
	}
}
