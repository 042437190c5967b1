package main

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"

	"github.com/byocloud/byoc/shared/cloud"
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

// CloudFormation returns a CloudFormation client acting in the deployment's account and
// region as the management role, assumed with the deployment's ExternalId.
func (c Customers) CloudFormation(ctx context.Context, d store.Deployment) (cloud.CloudFormation, error) {
	cfg, err := cloud.AssumeRole(ctx, c.STS, c.Base, cloud.CustomerRole{
		AccountID:   d.Settings.AccountID,
		Region:      d.Settings.Region,
		ExternalID:  d.ExternalID,
		SessionName: "byoc-" + d.ID,
	})
	if err != nil {
		return nil, err
	}
	if c.NewCloudFormation != nil {
		return c.NewCloudFormation(cfg), nil
	}
	return cloudformation.NewFromConfig(cfg), nil
}
