// Command peering is the byoc peering function: a deployment's private connectivity
// (peering requests, PrivateLink, the public load balancer, IP access lists) and the steps of
// the peering workflow. docs/connectivity.md
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/byocloud/byoc/shared/cloud"
)

func main() {
	log, awsCfg, conf := cloud.Boot(ConfigFromEnv)
	lambda.Start(New(awsCfg, conf, log).Handle)
}
