// Command invite is the invite Lambda: see Handler.
package main

import (
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
)

func main() {
	log, awsCfg, conf := cloud.Boot(ConfigFromEnv)
	lambda.Start(New(awsCfg, os.Getenv(contract.EnvTableName), conf, log).Serve)
}
