// Command statewait registers workflow tasks waiting for a state condition: see Handler.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/servicestate"
)

func main() {
	log, cfg, table := cloud.Boot(cloud.TableName)
	h := &Handler{
		Repo:  servicestate.New(cloud.NewDynamoDB(cfg), table),
		Tasks: sfn.NewFromConfig(cfg),
		Log:   log,
	}
	lambda.Start(h.Handle)
}
