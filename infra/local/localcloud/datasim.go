package localcloud

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"

	"github.com/byocloud/byoc/infra/local/datasim"
)

// The control-plane stack as the local cloud deploys it (cdk.out's ByocControlPlane), and the
// output that names the state queue.
const (
	ControlPlaneStack   = "ByocControlPlane"
	OutputStateQueueURL = "StateQueueUrl"
)

// DataPlane returns a data-plane simulator wired to this cloud: its components call the
// front door with sessions of their deployments' roles, issued as EKS Pod Identity issues
// them (Accounts.WorkloadCredentials), so the door stamps each state message with the
// exporter role's session and the queues' policies decide who may send and read; the
// command channels are looked up in the vendor account; the state queue is the
// control-plane stack's StateQueueUrl output (empty when the control plane is not deployed:
// the simulator's steps then fail saying so). configure adjusts the configuration (the
// exporters' clock, the logger, another state queue). The calls are counted as the data
// plane's AWS calls.
func (c *Cloud) DataPlane(configure ...func(*datasim.Config)) *datasim.Simulator {
	cfg := datasim.Config{
		AWS:           c.configWith(nil, nil), // credentials: each component's role session
		StateQueueURL: c.StateQueueURL(context.Background()),
		VendorAccount: VendorAccount,
		Credentials: func(roleArn, session string) (aws.Credentials, error) {
			return c.Accounts.WorkloadCredentials(roleArn, session, 0)
		},
		Log: c.logger,
		Now: c.Clock.Now, // the exporters report in the cloud's time, as the control plane reads it
	}
	for _, f := range configure {
		f(&cfg)
	}
	return datasim.New(cfg)
}

// StateQueueURL returns the state queue of the deployed control plane ("" when it is not
// deployed or has no such output).
func (c *Cloud) StateQueueURL(ctx context.Context) string {
	out, err := cloudformation.NewFromConfig(c.internalConfig()).DescribeStacks(ctx, &cloudformation.DescribeStacksInput{
		StackName: aws.String(ControlPlaneStack),
	})
	if err != nil || len(out.Stacks) != 1 {
		return ""
	}
	for _, o := range out.Stacks[0].Outputs {
		if aws.ToString(o.OutputKey) == OutputStateQueueURL {
			return aws.ToString(o.OutputValue)
		}
	}
	return ""
}
