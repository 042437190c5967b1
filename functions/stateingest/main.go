// Command stateingest is the state queue's Lambda: see Handler.
package main

import (
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/servicestate"
)

func main() {
	log, cfg, table := cloud.Boot(cloud.TableName)
	db := servicestate.CountWrites(cloud.NewDynamoDB(cfg))
	h := &Handler{
		Repo:      servicestate.New(db, table),
		Publisher: servicestate.Publisher{Bus: eventbridge.NewFromConfig(cfg), BusName: os.Getenv(contract.EnvEventBusName)},
		Tasks:     sfn.NewFromConfig(cfg),
		Log:       log,
		Writes:    db,
	}
	lambda.Start(h.Handle)
}
