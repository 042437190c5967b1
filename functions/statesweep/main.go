// Command statesweep is the scheduled sweep of service state: see Handler.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/store"
)

func main() {
	log, cfg, conf := cloud.Boot(ConfigFromEnv)
	db := cloud.NewDynamoDB(cfg)
	h := &Handler{
		Repo:          servicestate.New(db, conf.Table),
		Deployments:   store.New(db, conf.Table),
		Executions:    sfn.NewFromConfig(cfg),
		Publisher:     servicestate.Publisher{Bus: eventbridge.NewFromConfig(cfg), BusName: conf.EventBusName},
		SQS:           sqs.NewFromConfig(cfg),
		StateQueueURL: conf.StateQueueURL,
		StaleAfter:    conf.StaleAfter,
		Log:           log,
	}
	lambda.Start(h.Handle)
}
