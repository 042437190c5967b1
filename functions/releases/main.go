// Command releases publishes, shows and resumes releases and moves their rollouts on: see
// Handler.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/byocloud/byoc/shared/cloud"
)

func main() {
	log, awsCfg, conf := cloud.Boot(ConfigFromEnv)
	lambda.Start(New(awsCfg, conf, log).Handle)
}
