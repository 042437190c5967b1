package stacks

import (
	"slices"

	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/settings"
)

// Names that the bootstrap template (which grants) and the infrastructure template (which
// creates) must agree on. The management role may only create and pass what these patterns
// name, so both templates derive their names from here and the tests check one against the
// other.

// Input rules of the customer templates. The binding length limit is the IAM role name (64
// characters): "<prefix>-<deploymentId>-cluster-autoscaler" with a 24-character prefix and a
// 20-character id is exactly 64. The same limits keep the bucket name
// "<prefix>-<id>-<account>" within S3's 63 characters and the node group names within EKS's.
const (
	resourcePrefixPattern = `^[a-z][a-z0-9-]{0,22}[a-z0-9]$`
	resourcePrefixRule    = "1 to 24 characters: lowercase letters, digits and '-', starting with a letter and not ending with '-'"
	deploymentIDPattern   = settings.DeploymentIDPattern
	deploymentIDRule      = settings.DeploymentIDRule
)

// Service principals the management role may pass roles to.
const (
	servicePodIdentity = "pods.eks.amazonaws.com"
	serviceEKS         = "eks.amazonaws.com"
)

// clusterRole is one IAM role of the infrastructure template. Its name is
// "<prefix>-<deploymentId>-<Suffix>", which is how the bootstrap template's PassRole
// statements recognise it.
type clusterRole struct {
	ID        string // construct id in the infrastructure stack
	Suffix    string
	OutputKey string
	// PassedTo is the service the management role passes the role to while CloudFormation
	// creates the stack ("" = the role is never passed).
	PassedTo string
	// Namespace and ServiceAccount bind a pod-identity role to one Kubernetes service
	// account; empty for roles assumed by AWS services or by the vendor.
	Namespace      string
	ServiceAccount string
}

// The in-cluster service accounts are those of the upstream Helm charts' defaults, so the
// data-plane installer needs no overrides; the state exporter is byoc's own component.
var (
	roleStateExporter = clusterRole{ID: "StateExporterRole", Suffix: "state-exporter", OutputKey: contract.InfraOutputStateExporterRoleArn,
		PassedTo: servicePodIdentity, Namespace: "byoc-system", ServiceAccount: "state-exporter"}
	roleLoadBalancerController = clusterRole{ID: "LoadBalancerControllerRole", Suffix: "lb-controller", OutputKey: contract.InfraOutputLoadBalancerControllerRoleArn,
		PassedTo: servicePodIdentity, Namespace: "kube-system", ServiceAccount: "aws-load-balancer-controller"}
	roleEbsCsiDriver = clusterRole{ID: "EbsCsiDriverRole", Suffix: "ebs-csi", OutputKey: contract.InfraOutputEbsCsiDriverRoleArn,
		PassedTo: servicePodIdentity, Namespace: "kube-system", ServiceAccount: "ebs-csi-controller-sa"}
	roleExternalDNS = clusterRole{ID: "ExternalDnsRole", Suffix: "external-dns", OutputKey: contract.InfraOutputExternalDNSRoleArn,
		PassedTo: servicePodIdentity, Namespace: "external-dns", ServiceAccount: "external-dns"}
	roleCertManager = clusterRole{ID: "CertManagerRole", Suffix: "cert-manager", OutputKey: contract.InfraOutputCertManagerRoleArn,
		PassedTo: servicePodIdentity, Namespace: "cert-manager", ServiceAccount: "cert-manager"}
	roleClusterAutoscaler = clusterRole{ID: "ClusterAutoscalerRole", Suffix: "cluster-autoscaler", OutputKey: contract.InfraOutputClusterAutoscalerRoleArn,
		PassedTo: servicePodIdentity, Namespace: "kube-system", ServiceAccount: "cluster-autoscaler"}
	roleK8sControlPlane = clusterRole{ID: "K8sControlPlaneRole", Suffix: "k8s-control-plane", OutputKey: contract.InfraOutputK8sControlPlaneRoleArn,
		PassedTo: serviceEKS}
	// The node role is passed to EKS with CreateNodegroup; EKS's own service-linked role then
	// builds the instance profile, so the management role never passes it to EC2.
	roleK8sWorker = clusterRole{ID: "K8sWorkerRole", Suffix: "k8s-worker", OutputKey: contract.InfraOutputK8sWorkerRoleArn,
		PassedTo: serviceEKS}
	roleDataPlaneMgmt = clusterRole{ID: "DataPlaneMgmtRole", Suffix: "data-plane-mgmt", OutputKey: contract.InfraOutputDataPlaneMgmtRoleArn}
	// The data plane's agent runs in the cluster and reads the deployment's command channel
	// (shared/channel); it is byoc's own component, beside the state exporter that reports
	// what the agent applied.
	roleAgent = clusterRole{ID: "AgentRole", Suffix: "agent", OutputKey: contract.InfraOutputAgentRoleArn,
		PassedTo: servicePodIdentity, Namespace: "byoc-system", ServiceAccount: "byoc-agent"}
)

// clusterRoles lists every role of the infrastructure template, in output order.
var clusterRoles = []clusterRole{
	roleStateExporter, roleLoadBalancerController, roleEbsCsiDriver, roleExternalDNS, roleCertManager,
	roleClusterAutoscaler, roleK8sControlPlane, roleK8sWorker, roleDataPlaneMgmt, roleAgent,
}

// rolesPassedTo returns the suffixes of the roles passed to service, in clusterRoles order.
func rolesPassedTo(service string) []string {
	var suffixes []string
	for _, r := range clusterRoles {
		if r.PassedTo == service {
			suffixes = append(suffixes, r.Suffix)
		}
	}
	return suffixes
}

// roleBoundaryArn (an Fn::Sub body) is the permissions boundary every infrastructure role
// carries and the management role requires on the roles it creates or changes.
const roleBoundaryArn = "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/" + contract.RoleBoundaryPolicyName

// Kubernetes group the data-plane-mgmt role is mapped to by its EKS access entry. The
// data-plane installer binds this group to exactly the custom resources the vendor reconciles
// (ClickHouseCluster, Istio gateways and virtual services); the access entry grants nothing by
// itself.
const dataPlaneMgmtGroup = "byoc-data-plane-mgmt"

// Managed AWS policies the infrastructure template attaches. The management role may attach
// exactly these and no other (iam:PolicyARN condition).
var (
	managedPolicyEKSCluster   = "AmazonEKSClusterPolicy"
	managedPolicyEKSWorker    = "AmazonEKSWorkerNodePolicy"
	managedPolicyEKSCNI       = "AmazonEKS_CNI_Policy"
	managedPolicyECRPull      = "AmazonEC2ContainerRegistryPullOnly"
	managedPolicyEBSCSI       = "service-role/AmazonEBSCSIDriverPolicy"
	attachableManagedPolicies = []string{managedPolicyEKSCluster, managedPolicyEKSWorker, managedPolicyEKSCNI, managedPolicyECRPull, managedPolicyEBSCSI}
)

// managedPolicyClusterActions are the ec2, elasticloadbalancing and autoscaling actions the
// attached AWS managed policies grant (AmazonEKSClusterPolicy v10, AmazonEKSWorkerNodePolicy
// v3, AmazonEKS_CNI_Policy v6, AmazonEBSCSIDriverPolicy v15; AmazonEC2ContainerRegistryPullOnly
// v1 grants none). The role boundary must allow them, or it would cut what EKS, the nodes, the
// CNI and the EBS CSI driver need. When AWS publishes a new version of one of these
// policies, compare and extend this list (docs/iam.md).
var managedPolicyClusterActions = []string{
	"ec2:AssignPrivateIpAddresses", "ec2:AttachNetworkInterface", "ec2:AttachVolume",
	"ec2:AuthorizeSecurityGroupIngress", "ec2:CopyVolumes", "ec2:CreateNetworkInterface", "ec2:CreateRoute",
	"ec2:CreateSecurityGroup", "ec2:CreateSnapshot", "ec2:CreateTags", "ec2:CreateVolume", "ec2:DeleteNetworkInterface",
	"ec2:DeleteRoute", "ec2:DeleteSecurityGroup", "ec2:DeleteSnapshot", "ec2:DeleteTags", "ec2:DeleteVolume",
	"ec2:DescribeAccountAttributes", "ec2:DescribeAddresses", "ec2:DescribeAvailabilityZones",
	"ec2:DescribeDhcpOptions", "ec2:DescribeInstanceTopology", "ec2:DescribeInstanceTypes", "ec2:DescribeInstances",
	"ec2:DescribeInternetGateways", "ec2:DescribeNetworkInterfaces", "ec2:DescribeRouteTables",
	"ec2:DescribeSecurityGroups", "ec2:DescribeSnapshots", "ec2:DescribeSubnets", "ec2:DescribeTags",
	"ec2:DescribeVolumeStatus", "ec2:DescribeVolumes", "ec2:DescribeVolumesModifications", "ec2:DescribeVpcs",
	"ec2:DetachNetworkInterface", "ec2:DetachVolume", "ec2:EnableFastSnapshotRestores", "ec2:LockSnapshot",
	"ec2:ModifyInstanceAttribute", "ec2:ModifyNetworkInterfaceAttribute", "ec2:ModifyVolume",
	"ec2:RevokeSecurityGroupIngress", "ec2:UnassignPrivateIpAddresses", "elasticloadbalancing:AddTags",
	"elasticloadbalancing:ApplySecurityGroupsToLoadBalancer", "elasticloadbalancing:AttachLoadBalancerToSubnets",
	"elasticloadbalancing:ConfigureHealthCheck", "elasticloadbalancing:CreateListener",
	"elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateLoadBalancerListeners",
	"elasticloadbalancing:CreateLoadBalancerPolicy", "elasticloadbalancing:CreateTargetGroup",
	"elasticloadbalancing:DeleteListener", "elasticloadbalancing:DeleteLoadBalancer",
	"elasticloadbalancing:DeleteLoadBalancerListeners", "elasticloadbalancing:DeleteTargetGroup",
	"elasticloadbalancing:DeregisterInstancesFromLoadBalancer", "elasticloadbalancing:DeregisterTargets",
	"elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeLoadBalancerAttributes",
	"elasticloadbalancing:DescribeLoadBalancerPolicies", "elasticloadbalancing:DescribeLoadBalancers",
	"elasticloadbalancing:DescribeTargetGroupAttributes", "elasticloadbalancing:DescribeTargetGroups",
	"elasticloadbalancing:DescribeTargetHealth", "elasticloadbalancing:DetachLoadBalancerFromSubnets",
	"elasticloadbalancing:ModifyListener", "elasticloadbalancing:ModifyLoadBalancerAttributes",
	"elasticloadbalancing:ModifyTargetGroup", "elasticloadbalancing:ModifyTargetGroupAttributes",
	"elasticloadbalancing:RegisterInstancesWithLoadBalancer", "elasticloadbalancing:RegisterTargets",
	"elasticloadbalancing:SetLoadBalancerPoliciesForBackendServer",
	"elasticloadbalancing:SetLoadBalancerPoliciesOfListener", "autoscaling:DescribeAutoScalingGroups",
	"autoscaling:UpdateAutoScalingGroup",
}

// componentClusterActions are the ec2, elasticloadbalancing and autoscaling actions the
// in-cluster components' own policies use beyond the managed ones (the load-balancer
// controller's listener rules and tags, the cluster autoscaler's scaling).
// TestRoleBoundaryAllowsWhatTheRolesUse checks the boundary covers every inline grant.
var componentClusterActions = []string{
	"ec2:DescribeImages", "ec2:DescribeLaunchTemplateVersions", "ec2:GetInstanceTypesFromInstanceRequirements",
	"elasticloadbalancing:CreateRule", "elasticloadbalancing:DeleteRule", "elasticloadbalancing:DescribeListenerAttributes",
	"elasticloadbalancing:DescribeListenerCertificates", "elasticloadbalancing:DescribeRules", "elasticloadbalancing:DescribeSSLPolicies",
	"elasticloadbalancing:DescribeTags", "elasticloadbalancing:ModifyListenerAttributes", "elasticloadbalancing:ModifyRule",
	"elasticloadbalancing:RemoveTags", "elasticloadbalancing:SetIpAddressType", "elasticloadbalancing:SetSecurityGroups",
	"elasticloadbalancing:SetSubnets",
	"autoscaling:DescribeAutoScalingInstances", "autoscaling:DescribeLaunchConfigurations", "autoscaling:DescribeScalingActivities",
	"autoscaling:DescribeTags", "autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup",
}

// clusterServiceActions are what the role boundary allows of ec2, elasticloadbalancing and
// autoscaling: no wildcard, exactly what the managed policies and the components use.
func clusterServiceActions() []string {
	all := append(slices.Clone(managedPolicyClusterActions), componentClusterActions...)
	slices.Sort(all)
	return slices.Compact(all)
}
