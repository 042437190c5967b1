// Command stateingest is the state queue's Lambda: see Handler.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/servicestate"
)

func main() {
	log, cfg, conf := cloud.Boot(ConfigFromEnv)
	db := servicestate.CountWrites(cloud.NewDynamoDB(cfg))
	h := &Handler{
		Repo:      servicestate.New(db, conf.Table),
		Publisher: servicestate.Publisher{Bus: eventbridge.NewFromConfig(cfg), BusName: conf.EventBusName},
		Tasks:     sfn.NewFromConfig(cfg),
		Log:       log,
		Writes:    db,
	}
	lambda.Start(h.Handle)
}
