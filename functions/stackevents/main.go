// Command stackevents is the stackevents Lambda: see Handler.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/store"
)

func main() {
	log, awsCfg, table := cloud.Boot(ConfigFromEnv)
	h := &Handler{Store: store.New(cloud.NewDynamoDB(awsCfg), table), Tasks: sfn.NewFromConfig(awsCfg), Log: log}
	lambda.Start(h.Handle)
}
