// Command teardown is the byoc teardown function: the steps of the teardown workflow, which
// retires a deployment (its stacks, data if asked, channel, admissions, schedule and claim).
// docs/teardown.md
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/byocloud/byoc/shared/cloud"
)

func main() {
	log, awsCfg, conf := cloud.Boot(ConfigFromEnv)
	lambda.Start(New(awsCfg, conf, log).Handle)
}
