// Command onboard is the onboard Lambda: see Handler.
package main

import (
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/store"
)

func main() {
	log, awsCfg, conf := cloud.Boot(ConfigFromEnv)
	h := &Handler{
		Store:     store.New(cloud.NewDynamoDB(awsCfg), os.Getenv(contract.EnvTableName)),
		Workflows: sfn.NewFromConfig(awsCfg),
		Config:    conf,
		Log:       log,
	}
	lambda.Start(h.Handle)
}
