// Command byoc-local runs the byoc control plane on one machine with no AWS account and
// onboards a customer end to end (make local). See infra/local/scenario.
package main

import (
	"context"
	"os"

	"github.com/byocloud/byoc/infra/local/scenario"
)

func main() {
	os.Exit(scenario.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
