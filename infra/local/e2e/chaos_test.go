package e2e

import (
	"context"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/byocloud/byoc/infra/local/chaos"
	"github.com/byocloud/byoc/infra/local/scenario"
	"github.com/byocloud/byoc/shared/contract"
)

// shortSeeds are the seeds of the short chaos profile `make test` runs: each scenario runs
// once, under the one its name picks (so adding a scenario changes no other's), and both
// seeds are exercised across the matrix while the profile stays within make test's budget.
// `make chaos` runs twenty seeds of every scenario and profile.
var shortSeeds = []uint64{1, 2}

func shortSeed(scenario string) uint64 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(scenario))
	return shortSeeds[h.Sum32()%uint32(len(shortSeeds))]
}

// Every scenario under the mixed profile (every kind of fault at once), each with one of the
// short seeds: each run ends as the fault-free one did, with no invariant broken.
func TestChaosShortProfile(t *testing.T) {
	shared.record(t)
	mixed, err := chaos.ProfileNamed("mixed")
	if err != nil {
		t.Fatal(err)
	}
	var runs []scenario.ChaosRun
	faults := 0
	for _, name := range scenario.ChaosScenarios {
		m := scenario.ChaosMatrix{Scenarios: []string{name}, Profiles: []chaos.Profile{mixed}, Seeds: []uint64{shortSeed(name)}}
		got, sums, err := shared.runner.RunMatrix(context.Background(), m, func(run scenario.ChaosRun) {
			t.Logf("%s %s seed %d: %s in %.1fs, %d violation(s)", run.Scenario, run.Profile, run.Seed, run.Faults, run.Elapsed.Seconds(), len(run.Violations))
		})
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, got...)
		for _, s := range sums {
			faults += s.Faults
		}
	}
	if want := len(scenario.ChaosScenarios); len(runs) != want || faults == 0 {
		t.Fatalf("%d runs with %d faults injected, want %d runs with faults", len(runs), faults, want)
	}
	for _, run := range runs {
		for _, v := range run.Violations {
			t.Errorf("%s under %s, seed %d: %s (reproduce: %s)", run.Scenario, run.Profile, run.Seed, v, run.Reproduce())
		}
	}
}

// Proof that the invariants can fail: provision built with its stack create sent without a
// ClientRequestToken (`-tags chaosdefect`), with the first CreateStack's answer lost. The SDK
// retries the create; without the token CloudFormation refuses it as a second stack of the
// name, and provision never records the create it made. The real build, under the same
// fault, retries with the same token and gets its stack back.
func TestChaosCatchesACreateWithoutItsToken(t *testing.T) {
	shared.record(t)
	ctx := context.Background()
	broken := filepath.Join(t.TempDir(), "bootstrap")
	build := exec.Command("go", "build", "-tags", "lambda.norpc,chaosdefect", "-o", broken, "./functions/"+contract.FunctionProvision)
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the broken provision: %v\n%s", err, out)
	}
	lose := chaos.Profile{Name: "lost-create", Rates: map[chaos.Fault]float64{chaos.LostAnswer: 1},
		Only: []string{"cloudformation CreateStack"}, FirstOnly: true}
	base, err := shared.runner.Baseline(ctx, scenario.Onboard)
	if err != nil {
		t.Fatal(err)
	}
	if run := shared.runner.ChaosRun(ctx, base, lose, 1); run.Faults.Injected[chaos.LostAnswer] != 1 || len(run.Violations) > 0 {
		t.Fatalf("the real build: %s, violations %v; want the one lost answer survived", run.Faults, run.Violations)
	}
	name, ok := shared.cloud.FunctionName(contract.FunctionProvision)
	if !ok {
		t.Fatal("provision does not run")
	}
	restore, err := shared.cloud.Host.Swap(ctx, name, broken)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := restore(); err != nil {
			t.Fatalf("restore provision: %v", err)
		}
	}()
	run := shared.runner.ChaosRun(ctx, base, lose, 1)
	if run.Faults.Injected[chaos.LostAnswer] != 1 {
		t.Fatalf("faults %s, want the first CreateStack's answer lost", run.Faults)
	}
	caught := false
	for _, v := range run.Violations {
		caught = caught || v.Invariant == scenario.AuditMatches
		t.Logf("caught: %s", v)
	}
	if !caught {
		t.Fatalf("the broken build broke no audit invariant: %v", run.Violations)
	}
}
