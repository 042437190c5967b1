package main

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/customerstack"
	"github.com/byocloud/byoc/shared/store"
)

// Customers gives access to a customer's account through its management role.
type Customers struct {
	STS  cloud.STS
	Base aws.Config
	// NewCloudFormation builds the client from the assumed-role configuration;
	// cloudformation.NewFromConfig unless a test replaces it.
	NewCloudFormation func(aws.Config) cloud.CloudFormation
}

// Stacks returns the stack manager of the deployment's account and region, acting as the
// management role assumed with the deployment's ExternalId. A step opens it once.
func (c Customers) Stacks(ctx context.Context, d store.Deployment) (*customerstack.Manager, error) {
	return customerstack.Open(ctx, c.STS, c.Base, cloud.CustomerRole{
		AccountID:   d.Settings.AccountID,
		Region:      d.Settings.Region,
		ExternalID:  d.ExternalID,
		SessionName: "byoc-" + d.ID,
	}, c.NewCloudFormation)
}
