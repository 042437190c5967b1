package customerstack

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/byocloud/byoc/shared/cloud"
)

// Opener opens the stacks of a customer account; Customers is the real one.
type Opener interface {
	Stacks(ctx context.Context, role cloud.CustomerRole) (*Manager, error)
}

// Customers gives access to customers' accounts through their management roles.
type Customers struct {
	STS  cloud.STS
	Base aws.Config
	// NewCloudFormation builds the client from the assumed-role configuration;
	// cloudformation.NewFromConfig unless a test replaces it.
	NewCloudFormation func(aws.Config) cloud.CloudFormation
}

// Stacks returns the stack manager of a deployment's account and region, acting as the
// management role assumed with the deployment's ExternalId. A step opens it once.
// (store.Deployment.CustomerRole gives the role.)
func (c Customers) Stacks(ctx context.Context, role cloud.CustomerRole) (*Manager, error) {
	return Open(ctx, c.STS, c.Base, role, c.NewCloudFormation)
}
