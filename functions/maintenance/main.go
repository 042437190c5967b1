// Command maintenance is fired by each deployment's maintenance schedule and answers the
// window actions (show, set, defer): see Handler.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/byocloud/byoc/shared/cloud"
)

func main() {
	log, awsCfg, conf := cloud.Boot(ConfigFromEnv)
	lambda.Start(New(awsCfg, conf, log).Handle)
}
