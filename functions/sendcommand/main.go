// Command sendcommand sends a command to a deployment's in-cluster agent: see Handler.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/servicestate"
)

func main() {
	log, cfg, table := cloud.Boot(cloud.TableName)
	h := &Handler{
		Sender: &channel.Sender{SQS: sqs.NewFromConfig(cfg), Recorder: servicestate.New(cloud.NewDynamoDB(cfg), table)},
		Log:    log,
	}
	lambda.Start(h.HandleJSON)
}
