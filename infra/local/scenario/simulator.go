package scenario

import (
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/byocloud/byoc/infra/local/accounts"
	"github.com/byocloud/byoc/infra/local/dataplane"
	"github.com/byocloud/byoc/shared/servicestate"
)

// simulator is a data-plane simulator wired to the cloud. INTERIM until the cloud's own
// helper lands.
func (r *Runner) simulator(queueURL string) (*dataplane.Simulator, error) {
	return dataplane.New(dataplane.Config{SQS: sqs.NewFromConfig(r.Cloud.WatchConfig()), StateQueueURL: queueURL}), nil
}

func senderID(dp servicestate.DataPlane) string {
	return accounts.RoleID(dp.ExporterRoleARN) + ":state-exporter"
}
