package cfnengine

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/byocloud/byoc/infra/local/accounts"
)

// resourceFacts is what CloudFormation knows about one resource instance once it exists:
// its physical id, what Ref returns and what each Fn::GetAtt attribute returns.
type resourceFacts struct {
	PhysicalID string
	Ref        any
	Attrs      map[string]any
}

// naming describes one resource: what CloudFormation names it when the template gives no
// name, and the Ref/GetAtt values it returns (from the CloudFormation resource reference).
type typeSpec struct {
	nameProp  string // property with a custom name; "" when the type has no name
	nameStyle nameStyle
	maxLen    int
	idPrefix  string // for EC2-style ids ("vpc-"): the physical id is <prefix><17 hex>
	// facts computes Ref and attributes from the physical id and the resolved properties.
	facts func(c *factContext) resourceFacts
}

type nameStyle int

const (
	stackLogical      nameStyle = iota // <stack>-<logical>-<SUFFIX>
	logicalOnly                        // <logical>-<suffix> (state machines, EKS clusters)
	stackLogicalLower                  // lower case (S3 buckets)
)

type factContext struct {
	account, region, partition string
	stackName, logicalID       string
	physicalID                 string
	props                      map[string]any
	seed                       string // stable per resource instance: stack id + logical id
	endpoint                   string // the local cloud's one endpoint (an HTTP API's address)
}

func (c *factContext) arn(service, resource string) string {
	return fmt.Sprintf("arn:%s:%s:%s:%s:%s", c.partition, service, c.region, c.account, resource)
}

func (c *factContext) prop(name string) string {
	s, _ := c.props[name].(string)
	return s
}

// hexID returns n lowercase hex characters derived from the seed and a label.
func (c *factContext) hexID(label string, n int) string {
	sum := sha256.Sum256([]byte(c.seed + "/" + label))
	return hex.EncodeToString(sum[:])[:n]
}

func facts(ref any, attrs map[string]any) resourceFacts {
	return resourceFacts{Ref: ref, Attrs: attrs}
}

func nameFacts(c *factContext, attrs map[string]any) resourceFacts {
	return facts(c.physicalID, attrs)
}

// typeSpecs covers the types of byoc's three templates. Types not listed get a generic
// physical id and Ref; their attributes are placeholders, reported as warnings.
var typeSpecs = map[string]typeSpec{
	"AWS::SQS::Queue": {nameProp: "QueueName", maxLen: 80, facts: func(c *factContext) resourceFacts {
		url := fmt.Sprintf("https://sqs.%s.amazonaws.com/%s/%s", c.region, c.account, c.physicalID)
		return facts(url, map[string]any{"Arn": c.arn("sqs", c.physicalID), "QueueName": c.physicalID, "QueueUrl": url})
	}},
	"AWS::SQS::QueuePolicy": {facts: func(c *factContext) resourceFacts {
		return facts(c.physicalID, map[string]any{"Id": c.physicalID})
	}},
	"AWS::DynamoDB::Table":       {nameProp: "TableName", maxLen: 255, facts: dynamoFacts},
	"AWS::DynamoDB::GlobalTable": {nameProp: "TableName", maxLen: 255, facts: dynamoFacts},
	"AWS::Events::EventBus": {nameProp: "Name", maxLen: 256, facts: func(c *factContext) resourceFacts {
		return nameFacts(c, map[string]any{"Arn": c.arn("events", "event-bus/"+c.physicalID), "Name": c.physicalID, "Policy": ""})
	}},
	"AWS::Events::EventBusPolicy": {facts: func(c *factContext) resourceFacts { return facts(c.physicalID, nil) }},
	"AWS::Events::Rule": {nameProp: "Name", maxLen: 64, facts: func(c *factContext) resourceFacts {
		bus := busName(c.prop("EventBusName"))
		if bus == "default" {
			return facts(c.physicalID, map[string]any{"Arn": c.arn("events", "rule/"+c.physicalID)})
		}
		// On a custom bus, Ref is "<bus>|<rule>" and the ARN names the bus.
		return facts(bus+"|"+c.physicalID, map[string]any{"Arn": c.arn("events", "rule/"+bus+"/"+c.physicalID)})
	}},
	"AWS::Lambda::Function": {nameProp: "FunctionName", maxLen: 64, facts: func(c *factContext) resourceFacts {
		return nameFacts(c, map[string]any{"Arn": c.arn("lambda", "function:"+c.physicalID), "SnapStartResponse.ApplyOn": "None"})
	}},
	"AWS::Lambda::EventSourceMapping": {facts: func(c *factContext) resourceFacts {
		return facts(c.physicalID, map[string]any{"Id": c.physicalID, "EventSourceMappingArn": c.arn("lambda", "event-source-mapping:"+c.physicalID)})
	}},
	"AWS::Lambda::Permission": {facts: func(c *factContext) resourceFacts { return facts(c.physicalID, nil) }},
	"AWS::StepFunctions::StateMachine": {nameProp: "StateMachineName", nameStyle: logicalOnly, maxLen: 80, facts: func(c *factContext) resourceFacts {
		arn := c.arn("states", "stateMachine:"+c.physicalID)
		return facts(arn, map[string]any{"Arn": arn, "Name": c.physicalID, "StateMachineRevisionId": arn})
	}},
	"AWS::Scheduler::ScheduleGroup": {nameProp: "Name", maxLen: 64, facts: func(c *factContext) resourceFacts {
		return nameFacts(c, map[string]any{"Arn": c.arn("scheduler", "schedule-group/"+c.physicalID), "State": "ACTIVE",
			"CreationDate": "", "LastModificationDate": ""})
	}},
	"AWS::Scheduler::Schedule": {nameProp: "Name", maxLen: 64, facts: func(c *factContext) resourceFacts {
		group := c.prop("GroupName")
		if group == "" {
			group = "default"
		}
		return nameFacts(c, map[string]any{"Arn": c.arn("scheduler", "schedule/"+group+"/"+c.physicalID)})
	}},
	"AWS::S3::Bucket": {nameProp: "BucketName", nameStyle: stackLogicalLower, maxLen: 63, facts: func(c *factContext) resourceFacts {
		b := c.physicalID
		return nameFacts(c, map[string]any{
			"Arn":                 fmt.Sprintf("arn:%s:s3:::%s", c.partition, b),
			"DomainName":          b + ".s3.amazonaws.com",
			"RegionalDomainName":  b + ".s3." + c.region + ".amazonaws.com",
			"DualStackDomainName": b + ".s3.dualstack." + c.region + ".amazonaws.com",
			"WebsiteURL":          "http://" + b + ".s3-website-" + c.region + ".amazonaws.com",
			"MetadataTableConfiguration.S3TablesDestination.TableNamespace": "",
		})
	}},
	"AWS::S3::BucketPolicy": {facts: func(c *factContext) resourceFacts { return facts(c.physicalID, nil) }},
	"AWS::IAM::Role": {nameProp: "RoleName", maxLen: 64, facts: func(c *factContext) resourceFacts {
		arn := fmt.Sprintf("arn:%s:iam::%s:role%s%s", c.partition, c.account, iamPath(c.prop("Path")), c.physicalID)
		// RoleId is the id the local cloud's sessions of this role carry in their UserID
		// ("<role id>:<session>", SQS's SenderId), so a stack output of it identifies them.
		return nameFacts(c, map[string]any{"Arn": arn, "RoleId": accounts.RoleID(arn)})
	}},
	"AWS::IAM::Policy": {maxLen: 128, facts: func(c *factContext) resourceFacts {
		return facts(c.physicalID, map[string]any{"Id": c.physicalID})
	}},
	"AWS::IAM::ManagedPolicy": {nameProp: "ManagedPolicyName", maxLen: 128, facts: func(c *factContext) resourceFacts {
		arn := fmt.Sprintf("arn:%s:iam::%s:policy%s%s", c.partition, c.account, iamPath(c.prop("Path")), c.physicalID)
		return facts(arn, map[string]any{"PolicyArn": arn, "PolicyId": "ANPA" + strings.ToUpper(c.hexID("policyid", 17)),
			"AttachmentCount": "0", "DefaultVersionId": "v1", "IsAttachable": "true", "PermissionsBoundaryUsageCount": "0",
			"CreateDate": "", "UpdateDate": ""})
	}},
	"AWS::IAM::InstanceProfile": {nameProp: "InstanceProfileName", maxLen: 128, facts: func(c *factContext) resourceFacts {
		return nameFacts(c, map[string]any{"Arn": fmt.Sprintf("arn:%s:iam::%s:instance-profile%s%s", c.partition, c.account, iamPath(c.prop("Path")), c.physicalID)})
	}},
	"AWS::IAM::OIDCProvider": {facts: func(c *factContext) resourceFacts {
		host := strings.TrimPrefix(c.prop("Url"), "https://")
		arn := fmt.Sprintf("arn:%s:iam::%s:oidc-provider/%s", c.partition, c.account, host)
		return facts(arn, map[string]any{"Arn": arn})
	}},
	"AWS::Logs::LogGroup": {nameProp: "LogGroupName", maxLen: 512, facts: func(c *factContext) resourceFacts {
		return nameFacts(c, map[string]any{"Arn": c.arn("logs", "log-group:"+c.physicalID+":*")})
	}},
	"AWS::CloudWatch::Alarm": {nameProp: "AlarmName", maxLen: 255, facts: func(c *factContext) resourceFacts {
		return nameFacts(c, map[string]any{"Arn": c.arn("cloudwatch", "alarm:"+c.physicalID)})
	}},
	"AWS::SNS::Topic": {nameProp: "TopicName", maxLen: 256, facts: func(c *factContext) resourceFacts {
		arn := c.arn("sns", c.physicalID)
		return facts(arn, map[string]any{"TopicArn": arn, "TopicName": c.physicalID})
	}},
	"AWS::SNS::Subscription": {facts: func(c *factContext) resourceFacts {
		return facts(c.arn("sns", "subscription:"+c.hexID("sub", 32)), nil)
	}},
	"AWS::KMS::Key": {facts: func(c *factContext) resourceFacts {
		id := uuidFrom(c.hexID("key", 32))
		return facts(id, map[string]any{"Arn": c.arn("kms", "key/"+id), "KeyId": id})
	}},
	"AWS::KMS::Alias": {facts: func(c *factContext) resourceFacts { return facts(c.prop("AliasName"), nil) }},
	"AWS::SSM::Parameter": {nameProp: "Name", maxLen: 2048, facts: func(c *factContext) resourceFacts {
		return nameFacts(c, map[string]any{"Type": c.prop("Type"), "Value": c.prop("Value")})
	}},
	// An HTTP API is served at the local cloud's one endpoint (the front door routes
	// execute-api requests to it), which its ApiEndpoint says, as the CLI reads it.
	"AWS::ApiGatewayV2::Api": {idPrefix: "", facts: func(c *factContext) resourceFacts {
		id := c.seed
		return facts(apiID(id), map[string]any{"ApiId": apiID(id), "ApiEndpoint": c.endpoint})
	}},
	"AWS::ApiGatewayV2::Integration": {facts: func(c *factContext) resourceFacts {
		return facts(apiID(c.seed), map[string]any{"IntegrationId": apiID(c.seed)})
	}},
	"AWS::ApiGatewayV2::Route": {facts: func(c *factContext) resourceFacts {
		return facts(apiID(c.seed), map[string]any{"RouteId": apiID(c.seed)})
	}},
	"AWS::ApiGatewayV2::Stage": {facts: func(c *factContext) resourceFacts { return facts(c.prop("StageName"), nil) }},
	"AWS::CDK::Metadata":       {facts: func(c *factContext) resourceFacts { return facts(c.physicalID, nil) }},
	"AWS::EC2::VPC": {idPrefix: "vpc-", facts: func(c *factContext) resourceFacts {
		return facts(c.physicalID, map[string]any{"VpcId": c.physicalID, "CidrBlock": c.prop("CidrBlock"),
			"CidrBlockAssociations": []any{"vpc-cidr-assoc-" + c.hexID("assoc", 17)}, "DefaultNetworkAcl": "acl-" + c.hexID("acl", 17),
			"DefaultSecurityGroup": "sg-" + c.hexID("sg", 17), "Ipv6CidrBlocks": []any{}})
	}},
	"AWS::EC2::Subnet": {idPrefix: "subnet-", facts: func(c *factContext) resourceFacts {
		az, azID := c.prop("AvailabilityZone"), c.prop("AvailabilityZoneId")
		if az == "" && azID != "" {
			az = zoneNameForID(c.region, azID)
		}
		if azID == "" && az != "" {
			azID = zoneIDForName(c.region, az)
		}
		return facts(c.physicalID, map[string]any{"SubnetId": c.physicalID, "AvailabilityZone": az, "AvailabilityZoneId": azID,
			"CidrBlock": c.prop("CidrBlock"), "VpcId": c.prop("VpcId"), "NetworkAclAssociationId": "aclassoc-" + c.hexID("aclassoc", 17),
			"Ipv6CidrBlocks": []any{}, "OutpostArn": ""})
	}},
	"AWS::EC2::SecurityGroup": {idPrefix: "sg-", facts: func(c *factContext) resourceFacts {
		return facts(c.physicalID, map[string]any{"GroupId": c.physicalID, "VpcId": c.prop("VpcId")})
	}},
	"AWS::EC2::SecurityGroupIngress":        {idPrefix: "sgr-", facts: idFacts("Id")},
	"AWS::EC2::SecurityGroupEgress":         {idPrefix: "sgr-", facts: idFacts("Id")},
	"AWS::EC2::InternetGateway":             {idPrefix: "igw-", facts: idFacts("InternetGatewayId")},
	"AWS::EC2::NatGateway":                  {idPrefix: "nat-", facts: idFacts("NatGatewayId")},
	"AWS::EC2::RouteTable":                  {idPrefix: "rtb-", facts: idFacts("RouteTableId")},
	"AWS::EC2::SubnetRouteTableAssociation": {idPrefix: "rtbassoc-", facts: idFacts("Id")},
	"AWS::EC2::VPCEndpoint": {idPrefix: "vpce-", facts: func(c *factContext) resourceFacts {
		return facts(c.physicalID, map[string]any{"Id": c.physicalID, "CreationTimestamp": "", "DnsEntries": []any{}, "NetworkInterfaceIds": []any{}})
	}},
	"AWS::EC2::VPCPeeringConnection":          {idPrefix: "pcx-", facts: idFacts("Id")},
	"AWS::EC2::VPCEndpointService":            {idPrefix: "vpce-svc-", facts: idFacts("ServiceId")},
	"AWS::EC2::VPCEndpointServicePermissions": {facts: func(c *factContext) resourceFacts { return facts(c.physicalID, nil) }},
	"AWS::EC2::FlowLog":                       {idPrefix: "fl-", facts: idFacts("Id")},
	"AWS::EC2::NetworkAcl":                    {idPrefix: "acl-", facts: idFacts("Id")},
	"AWS::EC2::LaunchTemplate": {idPrefix: "lt-", facts: func(c *factContext) resourceFacts {
		return facts(c.physicalID, map[string]any{"LaunchTemplateId": c.physicalID, "LatestVersionNumber": "1", "DefaultVersionNumber": "1"})
	}},
	"AWS::EC2::EIP": {facts: func(c *factContext) resourceFacts {
		h := c.hexID("ip", 4)
		ip := fmt.Sprintf("3.%d.%d.%d", hexByte(h[0:2])%200+10, hexByte(h[2:4]), hexByte(h[0:2])^hexByte(h[2:4]))
		return facts(ip, map[string]any{"AllocationId": "eipalloc-" + c.hexID("alloc", 17), "PublicIp": ip})
	}},
	"AWS::EKS::Cluster": {nameProp: "Name", nameStyle: logicalOnly, maxLen: 100, facts: func(c *factContext) resourceFacts {
		id := strings.ToUpper(c.hexID("endpoint", 32))
		return nameFacts(c, map[string]any{
			"Arn":                      c.arn("eks", "cluster/"+c.physicalID),
			"Endpoint":                 "https://" + id + ".gr7." + c.region + ".eks.amazonaws.com",
			"CertificateAuthorityData": base64.StdEncoding.EncodeToString([]byte("local-cloud-ca-" + c.physicalID)),
			"ClusterSecurityGroupId":   "sg-" + c.hexID("clustersg", 17),
			"EncryptionConfigKeyArn":   "",
			"OpenIdConnectIssuerUrl":   "https://oidc.eks." + c.region + ".amazonaws.com/id/" + id,
			"Id":                       c.physicalID,
			"KubernetesNetworkConfig.ServiceIpv4Cidr": "172.20.0.0/16",
			"KubernetesNetworkConfig.ServiceIpv6Cidr": "",
		})
	}},
	"AWS::EKS::Nodegroup": {nameProp: "NodegroupName", nameStyle: logicalOnly, maxLen: 63, facts: func(c *factContext) resourceFacts {
		cluster := c.prop("ClusterName")
		return facts(cluster+"/"+c.physicalID, map[string]any{
			"Arn":           c.arn("eks", "nodegroup/"+cluster+"/"+c.physicalID+"/"+uuidFrom(c.hexID("ng", 32))),
			"ClusterName":   cluster,
			"NodegroupName": c.physicalID,
		})
	}},
	"AWS::EKS::Addon": {facts: func(c *factContext) resourceFacts {
		cluster, addon := c.prop("ClusterName"), c.prop("AddonName")
		return facts(cluster+"|"+addon, map[string]any{"Arn": c.arn("eks", "addon/"+cluster+"/"+addon+"/"+uuidFrom(c.hexID("addon", 32)))})
	}},
	"AWS::EKS::AccessEntry": {facts: func(c *factContext) resourceFacts {
		cluster := c.prop("ClusterName")
		return facts(cluster+"|"+c.prop("PrincipalArn"), map[string]any{"AccessEntryArn": c.arn("eks", "access-entry/"+cluster+"/"+uuidFrom(c.hexID("ae", 32)))})
	}},
	"AWS::EKS::PodIdentityAssociation": {facts: func(c *factContext) resourceFacts {
		id := "a-" + c.hexID("pia", 17)
		return facts(c.arn("eks", "podidentityassociation/"+c.prop("ClusterName")+"/"+id), map[string]any{
			"AssociationArn": c.arn("eks", "podidentityassociation/"+c.prop("ClusterName")+"/"+id), "AssociationId": id})
	}},
}

func dynamoFacts(c *factContext) resourceFacts {
	attrs := map[string]any{"Arn": c.arn("dynamodb", "table/"+c.physicalID)}
	if spec, ok := c.props["StreamSpecification"].(map[string]any); ok && spec["StreamViewType"] != nil {
		attrs["StreamArn"] = c.arn("dynamodb", "table/"+c.physicalID+"/stream/2026-01-01T00:00:00.000")
	}
	attrs["TableId"] = uuidFrom(c.hexID("tableid", 32))
	return nameFacts(c, attrs)
}

func idFacts(attr string) func(*factContext) resourceFacts {
	return func(c *factContext) resourceFacts {
		return facts(c.physicalID, map[string]any{attr: c.physicalID})
	}
}

func hexByte(s string) int {
	var n int
	fmt.Sscanf(s, "%02x", &n)
	return n
}

func uuidFrom(h string) string {
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func iamPath(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// busName accepts a bus name or ARN and returns the name ("default" when empty).
func busName(nameOrArn string) string {
	if i := strings.LastIndex(nameOrArn, ":event-bus/"); i >= 0 {
		return nameOrArn[i+len(":event-bus/"):]
	}
	if nameOrArn == "" {
		return "default"
	}
	return nameOrArn
}

const suffixAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// physicalName returns the name CloudFormation gives a resource whose template does not
// name it: "<stack>-<logical>-<suffix>" (or "<logical>-<suffix>"), cut to the type's limit.
// The suffix is derived from the stack id, so a recreated stack gets new names, as on AWS.
func physicalName(spec typeSpec, stackName, logicalID, seed string) string {
	sum := sha256.Sum256([]byte(seed))
	var suffix strings.Builder
	for i := 0; i < 12; i++ {
		alphabet := suffixAlphabet
		if spec.nameStyle == stackLogicalLower {
			alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
		} else if spec.nameStyle == stackLogical {
			alphabet = suffixAlphabet[:26] + suffixAlphabet[52:] // upper case and digits
		}
		suffix.WriteByte(alphabet[int(sum[i])%len(alphabet)])
	}
	prefix := stackName + "-" + logicalID
	if spec.nameStyle == logicalOnly {
		prefix = logicalID
	}
	maxLen := spec.maxLen
	if maxLen == 0 {
		maxLen = 128
	}
	if room := maxLen - suffix.Len() - 1; len(prefix) > room {
		prefix = prefix[:room]
	}
	name := prefix + "-" + suffix.String()
	if spec.nameStyle == stackLogicalLower {
		name = strings.ToLower(name)
	}
	return name
}

// physicalIDFor returns the physical id of a new resource: its custom name, its generated
// name, or an EC2-style id.
func physicalIDFor(typ, stackName, logicalID, seed string, props map[string]any) string {
	spec, known := typeSpecs[typ]
	if !known {
		spec = typeSpec{maxLen: 128}
	}
	if spec.nameProp != "" {
		if name, ok := props[spec.nameProp].(string); ok && name != "" {
			return name
		}
	}
	sum := sha256.Sum256([]byte(seed))
	switch {
	case spec.idPrefix != "":
		return spec.idPrefix + hex.EncodeToString(sum[:])[:17]
	case typ == "AWS::Lambda::EventSourceMapping":
		return uuidFrom(hex.EncodeToString(sum[:]))
	}
	name := physicalName(spec, stackName, logicalID, seed)
	if typ == "AWS::SQS::Queue" && isTrue(props["FifoQueue"]) {
		name = name[:min(len(name), 75)] + ".fifo"
	}
	return name
}

// apiID is an API Gateway id: 10 lowercase letters and digits, stable per resource.
func apiID(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return strings.ToLower(hex.EncodeToString(sum[:]))[:10]
}

func isTrue(v any) bool {
	switch t := v.(type) {
	case bool:
		return t
	case string:
		return strings.EqualFold(t, "true")
	}
	return false
}

// factsFor computes a resource's Ref and attributes. Types without a spec get their
// physical id as Ref and no attributes (GetAtt on them is answered with a placeholder by
// the caller, and reported).
func factsFor(typ string, c *factContext) resourceFacts {
	spec, ok := typeSpecs[typ]
	if !ok || spec.facts == nil {
		return resourceFacts{PhysicalID: c.physicalID, Ref: c.physicalID}
	}
	f := spec.facts(c)
	f.PhysicalID = c.physicalID
	return f
}

// zoneNameForID maps a zone id (use1-az1) to a zone name in the region (us-east-1a). On AWS
// the mapping differs per account; the local cloud uses the same one everywhere.
func zoneNameForID(region, zoneID string) string {
	i := strings.LastIndex(zoneID, "-az")
	if i < 0 {
		return ""
	}
	var n int
	if _, err := fmt.Sscanf(zoneID[i+3:], "%d", &n); err != nil || n < 1 || n > 26 {
		return ""
	}
	return region + string(rune('a'+n-1))
}

func zoneIDForName(region, zoneName string) string {
	letter := strings.TrimPrefix(zoneName, region)
	if len(letter) != 1 || letter[0] < 'a' || letter[0] > 'z' {
		return ""
	}
	return regionShort(region) + fmt.Sprintf("-az%d", letter[0]-'a'+1)
}

// regionShort abbreviates a region the way zone ids do: us-east-1 -> use1.
func regionShort(region string) string {
	parts := strings.Split(region, "-")
	if len(parts) != 3 {
		return region
	}
	dir := parts[1]
	abbrev := map[string]string{"east": "e", "west": "w", "north": "n", "south": "s", "central": "c",
		"northeast": "ne", "northwest": "nw", "southeast": "se", "southwest": "sw"}[dir]
	if abbrev == "" {
		abbrev = dir[:1]
	}
	return parts[0] + abbrev + parts[2]
}

// availabilityZones is what Fn::GetAZs returns: six zones in us-east-1, three elsewhere.
func availabilityZones(region string) []string {
	letters := "abc"
	if region == "us-east-1" {
		letters = "abcdef"
	}
	out := make([]string, 0, len(letters))
	for _, l := range letters {
		out = append(out, region+string(l))
	}
	return out
}
