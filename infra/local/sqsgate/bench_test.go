package sqsgate

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/byocloud/byoc/infra/local/accounts"
	"github.com/byocloud/byoc/infra/local/frontdoor"
	"github.com/byocloud/byoc/shared/cloud/cloudtest"
)

// BenchmarkSend measures what the gate adds to a SendMessage of an admitted cross-account
// exporter (policy evaluation, the stamp), with the policy cached and read on every call,
// against a door without the gate.
var policyTTLs = []time.Duration{time.Minute, -1}

func BenchmarkSend(b *testing.B) {
	env := cloudtest.Start(b)
	a := accounts.New()
	exporter := exporterRole(customer, "bench")
	creds, err := a.WorkloadCredentials(exporter, "state-exporter", 0)
	if err != nil {
		b.Fatal(err)
	}
	proxy, err := frontdoor.Proxy(env.URL)
	if err != nil {
		b.Fatal(err)
	}
	gated := func(ttl int) *frontdoor.Door {
		g := New(Config{Accounts: a, Next: proxy, AWS: env.Config, Logger: slog.New(slog.DiscardHandler), PolicyTTL: policyTTLs[ttl]})
		d := frontdoor.New(proxy)
		d.HandleIf("sqs", IsRequest, g)
		return d
	}
	doors := []struct {
		name string
		door *frontdoor.Door
	}{{"no-gate", frontdoor.New(proxy)}, {"gate-cached", gated(0)}, {"gate-uncached", gated(1)}}
	ctx := context.Background()
	f := &fixture{env: env, accounts: a, kumo: sqs.NewFromConfig(env.Config)}
	for _, d := range doors {
		b.Run(d.name, func(b *testing.B) {
			srv := httptest.NewServer(d.door)
			defer srv.Close()
			f.url = srv.URL
			url := f.queue(b, "bench")
			f.admit(b, url, exporter)
			client := f.client(creds)
			if d.name == "no-gate" {
				client = f.client(aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"})
			}
			in := &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(`{"schemaVersion":1}`)}
			b.ResetTimer()
			for b.Loop() {
				if _, err := client.SendMessage(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
