package sqsgate

import (
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/byocloud/byoc/infra/local/accounts"
	"github.com/byocloud/byoc/infra/local/frontdoor"
)

// Door is the SQS part of the local cloud without the rest: a front door over kumo (at
// kumo.BaseEndpoint, kumo's configuration) with the gate on SQS. Tests of components that
// call SQS as data-plane workloads serve it (httptest.NewServer) and call it with sessions
// from a; the local cloud itself mounts the gate on its own door (package localcloud).
func Door(kumo aws.Config, a *accounts.Accounts, logger *slog.Logger) (*frontdoor.Door, *Gate, error) {
	proxy, err := frontdoor.Proxy(aws.ToString(kumo.BaseEndpoint))
	if err != nil {
		return nil, nil, err
	}
	g := New(Config{Accounts: a, Next: proxy, AWS: kumo, Logger: logger})
	d := frontdoor.New(proxy)
	d.HandleIf("sqs", IsRequest, g)
	return d, g, nil
}
