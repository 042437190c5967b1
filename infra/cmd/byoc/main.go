// Command byoc is the operator's command line: every action of the byoc operator API, and
// its local web console (byoc console). Run byoc --help.
package main

import (
	"os"

	"github.com/byocloud/byoc/infra/operator/cli"
)

func main() {
	os.Exit(cli.Execute(os.Args[1:], os.Stdout, os.Stderr, nil))
}
