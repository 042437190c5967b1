// Command statesweep is the scheduled sweep of service state: see Handler.
package main

import (
	"time"

	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/servicestate"
)

func main() {
	log, cfg, staleAfter := cloud.Boot(func(getenv func(string) string) (time.Duration, error) {
		return ParseStaleAfter(getenv(contract.EnvStateStaleAfter))
	})
	h := &Handler{
		Repo:          servicestate.New(cloud.NewDynamoDB(cfg), os.Getenv(contract.EnvTableName)),
		Publisher:     servicestate.Publisher{Bus: eventbridge.NewFromConfig(cfg), BusName: os.Getenv(contract.EnvEventBusName)},
		SQS:           sqs.NewFromConfig(cfg),
		StateQueueURL: os.Getenv(contract.EnvStateQueueURL),
		StaleAfter:    staleAfter,
		Log:           log,
	}
	lambda.Start(h.Handle)
}
