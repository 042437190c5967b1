package scenario

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/byocloud/byoc/infra/local/chaos"
	"github.com/byocloud/byoc/infra/local/localcloud"
)

// ChaosMatrix says which runs `byoc-local chaos` makes.
type ChaosMatrix struct {
	Scenarios []string
	Profiles  []chaos.Profile
	Seeds     []uint64
}

// ParseChaosMatrix reads the matrix flags: comma-separated scenarios and profiles ("all"
// for every one), seeds first..first+count-1, or the one seed when seed is set.
func ParseChaosMatrix(scenarios, profiles string, first uint64, count int, seed string) (ChaosMatrix, error) {
	var m ChaosMatrix
	if scenarios == "all" {
		m.Scenarios = ChaosScenarios
	} else {
		for s := range strings.SplitSeq(scenarios, ",") {
			if !slices.Contains(ChaosScenarios, s) {
				return m, fmt.Errorf("--scenario %q: must be all or a comma-separated list of %s", s, strings.Join(ChaosScenarios, ", "))
			}
			m.Scenarios = append(m.Scenarios, s)
		}
	}
	if profiles == "all" {
		m.Profiles = chaos.Profiles
	} else {
		for name := range strings.SplitSeq(profiles, ",") {
			p, err := chaos.ProfileNamed(name)
			if err != nil {
				return m, fmt.Errorf("--profile: %w (or all)", err)
			}
			m.Profiles = append(m.Profiles, p)
		}
	}
	if seed != "" {
		s, err := strconv.ParseUint(seed, 10, 64)
		if err != nil {
			return m, fmt.Errorf("--seed %q: must be a non-negative integer", seed)
		}
		m.Seeds = []uint64{s}
		return m, nil
	}
	if count < 1 {
		return m, fmt.Errorf("--seeds %d: must be at least 1", count)
	}
	for i := range count {
		m.Seeds = append(m.Seeds, first+uint64(i))
	}
	return m, nil
}

// ChaosSummary is one line of the report: a scenario under a profile over its seeds.
type ChaosSummary struct {
	Scenario, Profile string
	Runs, Faults      int
	Retries           int
	Violations        int
	Slowdown          float64 // mean run time over the fault-free run's
}

// RunMatrix runs every scenario fault-free, then under every profile and seed, telling
// progress of each run. It returns the runs and one summary per scenario and profile.
func (r *Runner) RunMatrix(ctx context.Context, m ChaosMatrix, progress func(ChaosRun)) ([]ChaosRun, []ChaosSummary, error) {
	var runs []ChaosRun
	var sums []ChaosSummary
	for _, scenario := range m.Scenarios {
		base, err := r.Baseline(ctx, scenario)
		if err != nil {
			return runs, sums, err
		}
		for _, p := range m.Profiles {
			sum := ChaosSummary{Scenario: scenario, Profile: p.Name}
			var total time.Duration
			for _, seed := range m.Seeds {
				if ctx.Err() != nil {
					return runs, sums, ctx.Err()
				}
				run := r.ChaosRun(ctx, base, p, seed)
				runs = append(runs, run)
				if progress != nil {
					progress(run)
				}
				sum.Runs++
				sum.Faults += run.Faults.Total()
				sum.Retries += run.Faults.Retries
				sum.Violations += len(run.Violations)
				total += run.Elapsed
			}
			if base.Elapsed > 0 && sum.Runs > 0 {
				sum.Slowdown = (total / time.Duration(sum.Runs)).Seconds() / base.Elapsed.Seconds()
			}
			sums = append(sums, sum)
		}
	}
	return runs, sums, nil
}

// Reproduce is the command that runs one chaos run again.
func (run ChaosRun) Reproduce() string {
	return fmt.Sprintf("make chaos SCENARIO=%s PROFILE=%s SEED=%d", run.Scenario, run.Profile, run.Seed)
}

// chaosMain is `byoc-local chaos`.
func chaosMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var f flags
	fs := newFlagSet("byoc-local chaos", stderr, &f)
	scenarios := fs.String("scenario", "all", "scenarios to run, comma-separated: "+strings.Join(ChaosScenarios, ", "))
	profiles := fs.String("profile", "all", "fault profiles, comma-separated: "+chaos.ProfileNames())
	count := fs.Int("seeds", 20, "how many seeds per scenario and profile")
	first := fs.Uint64("first-seed", 1, "the first seed")
	seed := fs.String("seed", "", "run only this seed, printing the timeline (reproduces a failing run)")
	fs.DurationVar(&f.stackDelay, "stack-delay", 20*time.Millisecond, "how long a customer stack operation stays *_IN_PROGRESS")
	fs.Float64Var(&f.speed, "speed", 1, "how much faster than real time the cloud's clock runs (workflow retry intervals, schedules)")
	f.addr = "127.0.0.1:0"
	fs.Usage = func() {
		fmt.Fprintf(stderr, `byoc-local chaos runs each scenario once without faults, then under each fault profile
with each seed, and checks after every run, from the local cloud's own state, that the
deployment ended as the fault-free run did: same outcome, each customer stack created once
per attempt, one workflow execution per trigger, each command applied once, no state
message lost, the same audit trail, nothing left half-done. A seed replays its faults:
a failing run prints the command that runs it again.

usage: byoc-local chaos [flags]

profiles:
`)
		for _, p := range chaos.Profiles {
			fmt.Fprintf(stderr, "  %-9s %s\n", p.Name, describeRates(p))
		}
		fmt.Fprintf(stderr, "\nflags:\n")
		fs.PrintDefaults()
	}
	if code, ok := parseArgs(fs, args, stderr); !ok {
		return code
	}
	m, err := ParseChaosMatrix(*scenarios, *profiles, *first, *count, *seed)
	if err != nil {
		fmt.Fprintf(stderr, "byoc-local chaos: %v\n", err)
		return ExitUsage
	}
	if f.speed <= 0 {
		fmt.Fprintf(stderr, "byoc-local chaos: --speed %g: must be positive\n", f.speed)
		return ExitUsage
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	// One seed: the whole timeline, faults marked "!". Many: one line per run.
	var hide []localcloud.Kind
	if *seed == "" {
		hide = []localcloud.Kind{localcloud.KindStack, localcloud.KindEvent, localcloud.KindInvoke, localcloud.KindExecution,
			localcloud.KindState, localcloud.KindBatch, localcloud.KindSchedule, localcloud.KindHealth, localcloud.KindDataPlane, localcloud.KindFault}
	}
	tl := NewTimeline(stdout, hide...)
	runner := &Runner{Progress: tl.Observe}
	env, err := start(ctx, f, tl, stderr, runner)
	if err != nil {
		fmt.Fprintf(stderr, "byoc-local chaos: %v\n", err)
		return ExitFailed
	}
	defer env.close()
	tl.Printf("chaos: %d scenario(s) x %d profile(s) x %d seed(s)\n", len(m.Scenarios), len(m.Profiles), len(m.Seeds))
	runs, sums, err := runner.RunMatrix(ctx, m, func(run ChaosRun) {
		tl.Printf("  %-18s %-9s seed %-4d %3d fault(s) %3d retries  %5.1fs  %s\n", run.Scenario, run.Profile, run.Seed,
			run.Faults.Total(), run.Faults.Retries, run.Elapsed.Seconds(), verdict(run))
	})
	printSummary(stdout, sums)
	failed := 0
	for _, run := range runs {
		if len(run.Violations) == 0 {
			continue
		}
		failed++
		fmt.Fprintf(stdout, "\nFAIL %s under %s, seed %d (faults: %s)\n", run.Scenario, run.Profile, run.Seed, run.Faults)
		for _, v := range run.Violations {
			fmt.Fprintf(stdout, "  - %s\n", v)
		}
		fmt.Fprintf(stdout, "  reproduce: %s\n", run.Reproduce())
	}
	if err != nil {
		fmt.Fprintf(stderr, "byoc-local chaos: %v\n", err)
		return ExitFailed
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "\nchaos: %d of %d run(s) broke an invariant\n", failed, len(runs))
		return ExitFailed
	}
	fmt.Fprintf(stdout, "\nchaos: %d run(s), 0 invariant violations\n", len(runs))
	return ExitOK
}

func verdict(run ChaosRun) string {
	if len(run.Violations) == 0 {
		return "ok"
	}
	return fmt.Sprintf("%d VIOLATION(S)", len(run.Violations))
}

func printSummary(out io.Writer, sums []ChaosSummary) {
	fmt.Fprintln(out)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "scenario\tprofile\truns\tfaults\tretries\tviolations\tslowdown\t")
	for _, s := range sums {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%.1fx\t\n", s.Scenario, s.Profile, s.Runs, s.Faults, s.Retries, s.Violations, s.Slowdown)
	}
	_ = w.Flush()
}

// describeRates lists a profile's faults and rates: "throttle 8%, lost-answer 5%".
func describeRates(p chaos.Profile) string {
	var parts []string
	for _, f := range chaos.Faults {
		if r := p.Rates[f]; r > 0 {
			parts = append(parts, fmt.Sprintf("%s %g%%", f, r*100))
		}
	}
	return strings.Join(parts, ", ")
}
