// Command api is the byoc operator API: one IAM-authenticated HTTP API (API Gateway, payload
// format 2.0) in front of every operator action. docs/api.md
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/byocloud/byoc/shared/cloud"
)

func main() {
	log, awsCfg, conf := cloud.Boot(ConfigFromEnv)
	lambda.Start(New(awsCfg, conf, log).Handle)
}
