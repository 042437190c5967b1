package stacks

import (
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// applyNag runs cdk-nag's AwsSolutions pack over the stack when it is synthesized. Its
// findings become error annotations, which fail `cdk synth` and the tests; what it flags by
// design is suppressed next to the construct, with the reason.
func applyNag(stack awscdk.Stack) {
	awscdk.Aspects_Of(stack).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{
		Verbose: jsii.Bool(true),
		// The CSV reports would land in cdk.out/ beside the templates and be mistaken for
		// deployable artifacts; the annotations carry the same findings.
		Reports: jsii.Bool(false),
	}), nil)
}

// suppress records that the rule's finding on construct (and its children) is deliberate.
func suppress(construct constructs.IConstruct, rule, reason string, appliesTo ...string) {
	s := &cdknag.NagPackSuppression{Id: jsii.String(rule), Reason: jsii.String(reason)}
	if len(appliesTo) > 0 {
		applies := make([]any, len(appliesTo))
		for i, a := range appliesTo {
			applies[i] = a
		}
		s.AppliesTo = &applies
	}
	cdknag.NagSuppressions_AddResourceSuppressions(construct, &[]*cdknag.NagPackSuppression{s}, jsii.Bool(true))
}

// suppressWildcards suppresses AwsSolutions-IAM5 on a policy whose wildcard statements all
// carry a Sid with a written reason (wildcardReasons); TestEveryWildcardHasAWrittenReason
// fails any statement that does not, so the suppression cannot hide a new, unexplained one.
func suppressWildcards(construct constructs.IConstruct, grants []grant) {
	if reasons := reasonsOf(grants); reasons != "" {
		suppress(construct, "AwsSolutions-IAM5", "Every wildcard statement names its reason by Sid: "+reasons)
	}
}

// suppressManagedPolicies suppresses AwsSolutions-IAM4 for the AWS managed policies EKS
// documents for its cluster, node and EBS CSI roles: AWS keeps them in step with the
// services' API changes, which a copied inline policy would not be.
func suppressManagedPolicies(construct constructs.IConstruct, managed []string) {
	if len(managed) == 0 {
		return
	}
	applies := make([]string, len(managed))
	for i, m := range managed {
		applies[i] = "Policy::arn:<AWS::Partition>:iam::aws:policy/" + m
	}
	suppress(construct, "AwsSolutions-IAM4",
		"EKS's documented AWS managed policies ("+strings.Join(managed, ", ")+"): AWS maintains them as EKS, the VPC CNI and the EBS CSI driver change",
		applies...)
}
