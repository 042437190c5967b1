package cfnengine

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/byocloud/byoc/infra/local/accounts"
	"github.com/byocloud/byoc/shared/contract"
)

// BenchmarkCustomerInfrastructureStack creates the real infrastructure stack in a customer
// account with no delay: the stack engine's share of the onboarding scenario's wall time.
func BenchmarkCustomerInfrastructureStack(b *testing.B) {
	body := []byte(cdkTemplateB(b, "ByocInfrastructure.template.json"))
	given := map[string]string{}
	for _, p := range infraParams("dep1abc") {
		given[*p.ParameterKey] = *p.ParameterValue
	}
	e := New(Config{Accounts: accounts.New(), Logger: slog.New(slog.DiscardHandler)})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, _, err := e.DeployTemplate(context.Background(), customer, fmt.Sprintf("%s-%d", contract.DefaultPrefix, i), body, given); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseAndPlanControlPlane parses the control-plane template and plans its
// deployment (parameters, conditions, rules, order), before any resource is created.
func BenchmarkParseAndPlanControlPlane(b *testing.B) {
	body := []byte(cdkTemplateB(b, "ByocControlPlane.template.json"))
	e := New(Config{Accounts: accounts.New(), Logger: slog.New(slog.DiscardHandler)})
	s := &stack{id: stackID(accounts.VendorAccount, "us-east-1", "ByocControlPlane", "x"), name: "ByocControlPlane", account: accounts.VendorAccount, region: "us-east-1"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.prepare(s, body, nil, allCapabilities); err != nil {
			b.Fatal(err)
		}
	}
}
