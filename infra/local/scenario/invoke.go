package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/byocloud/byoc/infra/local/localcloud"
	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/servicestate"
)

// SampleDataPlanes is the file of the data planes the state samples (events/state) speak
// for: `make invoke` registers them before it runs a service-state function, so the samples
// pass sender verification as they would for a provisioned deployment.
const SampleDataPlanes = "events/dataplanes.json"

// LoadDataPlanes reads a JSON array of data-plane records (servicestate.DataPlane) and checks
// each, so a bad file is refused before anything starts. The error names the record and
// the rule it breaks.
func LoadDataPlanes(path string) ([]servicestate.DataPlane, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var planes []servicestate.DataPlane
	if err := dec.Decode(&planes); err != nil {
		return nil, fmt.Errorf("must be a JSON array of data planes {deploymentId, accountId, exporterRoleArn, exporterRoleId, agentRoleArn}: %w", err)
	}
	if len(planes) == 0 {
		return nil, fmt.Errorf("holds no data plane")
	}
	seen := map[string]bool{}
	for i, d := range planes {
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("data plane %d: %w", i+1, err)
		}
		if seen[d.DeploymentID] {
			return nil, fmt.Errorf("data plane %d: deployment %q is listed twice", i+1, d.DeploymentID)
		}
		seen[d.DeploymentID] = true
	}
	return planes, nil
}

// registerDataPlanes records data planes in the control plane's table and opens their
// command channels, as provisioning's record step does for a deployment it built.
func registerDataPlanes(ctx context.Context, c *localcloud.Cloud, cp ControlPlane, planes []servicestate.DataPlane, tl *Timeline) error {
	repo := servicestate.New(cloud.NewDynamoDB(c.Config()), cp.Outputs[outTable])
	queues := sqs.NewFromConfig(c.Config())
	for _, d := range planes {
		if err := repo.RegisterDataPlane(ctx, d); err != nil {
			return fmt.Errorf("register data plane %s: %w", d.DeploymentID, err)
		}
		if _, err := channel.Open(ctx, queues, d.DeploymentID, d.AgentRoleARN); err != nil {
			return fmt.Errorf("open the command channel of %s: %w", d.DeploymentID, err)
		}
		tl.Printf("registered data plane %s (account %s, exporter role id %s) and opened its command channel\n", d.DeploymentID, d.AccountID, d.ExporterRoleID)
	}
	return nil
}
