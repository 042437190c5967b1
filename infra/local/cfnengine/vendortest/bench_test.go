package vendortest

import (
	"context"
	"strings"
	"testing"

	"github.com/byocloud/byoc/infra/local/accounts"
)

// BenchmarkDeployControlPlane deploys the real control-plane template into kumo: the stack
// engine's share of the local cloud's start time (target: start under 2 s).
func BenchmarkDeployControlPlane(b *testing.B) {
	c := newCloud(b)
	body := string(cdkTemplate(b, "ByocControlPlane.template.json"))
	b.ReportAllocs()
	for b.Loop() {
		suffix := uniqueSuffix()
		tpl := strings.ReplaceAll(body, "VendorBus", "VendorBus"+suffix)
		if _, _, err := c.engine.DeployTemplate(context.Background(), accounts.VendorAccount, "ByocControlPlane"+suffix, []byte(tpl), nil); err != nil {
			b.Fatal(err)
		}
	}
}
