package network_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/quick"

	"github.com/byocloud/byoc/shared/network"
)

var zones = []string{"use1-az1", "use1-az2", "use1-az4"}

func TestPlanForDefaultVPC(t *testing.T) {
	plan, err := network.NewPlan("10.0.0.0/16", zones)
	if err != nil {
		t.Fatal(err)
	}
	want := network.Plan{VPCCIDR: "10.0.0.0/16", Subnets: []network.Subnet{
		{Tier: network.Private, ZoneID: "use1-az1", CIDR: "10.0.0.0/18", Index: 0},
		{Tier: network.Private, ZoneID: "use1-az2", CIDR: "10.0.64.0/18", Index: 1},
		{Tier: network.Private, ZoneID: "use1-az4", CIDR: "10.0.128.0/18", Index: 2},
		{Tier: network.Public, ZoneID: "use1-az1", CIDR: "10.0.192.0/20", Index: 0},
		{Tier: network.Public, ZoneID: "use1-az2", CIDR: "10.0.208.0/20", Index: 1},
		{Tier: network.Public, ZoneID: "use1-az4", CIDR: "10.0.224.0/20", Index: 2},
	}}
	if !reflect.DeepEqual(plan, want) {
		t.Fatalf("plan = %+v\nwant %+v", plan, want)
	}
	if got := plan.Spare(); got != "10.0.240.0/20" {
		t.Errorf("Spare() = %s, want 10.0.240.0/20", got)
	}
	if got := plan.Private(); !reflect.DeepEqual(got, want.Subnets[:3]) {
		t.Errorf("Private() = %+v", got)
	}
	if got := plan.Public(); !reflect.DeepEqual(got, want.Subnets[3:]) {
		t.Errorf("Public() = %+v", got)
	}
}

func TestPlanForSmallestVPC(t *testing.T) {
	plan, err := network.NewPlan("192.168.4.0/23", zones)
	if err != nil {
		t.Fatal(err)
	}
	got := cidrs(plan.Subnets)
	want := []string{"192.168.4.0/25", "192.168.4.128/25", "192.168.5.0/25", "192.168.5.128/27", "192.168.5.160/27", "192.168.5.192/27"}
	if !slices.Equal(got, want) {
		t.Fatalf("subnets = %v, want %v", got, want)
	}
	if plan.Spare() != "192.168.5.224/27" {
		t.Errorf("Spare() = %s", plan.Spare())
	}
}

// checkPlan asserts every property a plan must have whatever its input.
func checkPlan(t *testing.T, vpcCIDR string, zoneIDs []string, plan network.Plan) {
	t.Helper()
	vpc := netip.MustParsePrefix(vpcCIDR)
	if plan.VPCCIDR != vpc.String() {
		t.Fatalf("%s: plan VPC %s", vpcCIDR, plan.VPCCIDR)
	}
	if len(plan.Subnets) != 2*network.ZoneCount {
		t.Fatalf("%s: %d subnets, want %d", vpcCIDR, len(plan.Subnets), 2*network.ZoneCount)
	}
	blocks := make([]netip.Prefix, 0, len(plan.Subnets)+1)
	var total uint64
	for i, s := range plan.Subnets {
		wantTier, wantIndex := network.Private, i
		if i >= network.ZoneCount {
			wantTier, wantIndex = network.Public, i-network.ZoneCount
		}
		if s.Tier != wantTier || s.Index != wantIndex || s.ZoneID != zoneIDs[wantIndex] {
			t.Fatalf("%s: subnet %d = %+v, want tier %s zone %s index %d", vpcCIDR, i, s, wantTier, zoneIDs[wantIndex], wantIndex)
		}
		p, err := netip.ParsePrefix(s.CIDR)
		if err != nil || p != p.Masked() {
			t.Fatalf("%s: subnet %d CIDR %q is not a network", vpcCIDR, i, s.CIDR)
		}
		if p.Bits() < vpc.Bits() || !vpc.Contains(p.Addr()) {
			t.Fatalf("%s: subnet %s is outside the VPC", vpcCIDR, p)
		}
		// AWS accepts subnets from /16 to /28; load balancers need at least a /27.
		if p.Bits() < 16 || p.Bits() > 27 {
			t.Fatalf("%s: subnet %s is outside /16../27", vpcCIDR, p)
		}
		blocks = append(blocks, p)
		total += size(p)
	}
	spare := netip.MustParsePrefix(plan.Spare())
	if !vpc.Contains(spare.Addr()) || spare.Bits() < vpc.Bits() {
		t.Fatalf("%s: spare %s outside the VPC", vpcCIDR, spare)
	}
	blocks = append(blocks, spare)
	total += size(spare)
	for i := range blocks {
		for j := i + 1; j < len(blocks); j++ {
			if blocks[i].Overlaps(blocks[j]) {
				t.Fatalf("%s: %s overlaps %s", vpcCIDR, blocks[i], blocks[j])
			}
		}
	}
	// Non-overlapping and summing to the VPC's size means subnets plus spare tile the VPC.
	if total != size(vpc) {
		t.Fatalf("%s: subnets and spare cover %d addresses, VPC has %d", vpcCIDR, total, size(vpc))
	}
	priv, pub := plan.Private(), plan.Public()
	for i := range network.ZoneCount {
		pp, pu := netip.MustParsePrefix(priv[i].CIDR), netip.MustParsePrefix(pub[i].CIDR)
		if pp.Bits() >= pu.Bits() {
			t.Fatalf("%s: private %s is not larger than public %s", vpcCIDR, pp, pu)
		}
	}
	again, err := network.NewPlan(vpcCIDR, zoneIDs)
	if err != nil || !reflect.DeepEqual(again, plan) {
		t.Fatalf("%s: second plan differs: %+v, %v", vpcCIDR, again, err)
	}
}

func TestPlanPropertiesForEveryPrefixAndManyBases(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	private := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
	}
	for bits := network.LargestVPC; bits <= network.SmallestVPC; bits++ {
		for range 300 {
			vpc := randomNetwork(rng, private[rng.IntN(len(private))], bits)
			plan, err := network.NewPlan(vpc.String(), zones)
			if err != nil {
				t.Fatalf("NewPlan(%s) = %v", vpc, err)
			}
			checkPlan(t, vpc.String(), zones, plan)
		}
	}
}

// TestPlanPropertiesQuick lets testing/quick pick any IPv4 base and prefix in range, not only
// private ones: the plan's geometry must hold for every network.
func TestPlanPropertiesQuick(t *testing.T) {
	property := func(addr uint32, bitsSeed uint8, z1, z2, z3 uint8) bool {
		bits := network.LargestVPC + int(bitsSeed)%(network.SmallestVPC-network.LargestVPC+1)
		a := netip.AddrFrom4([4]byte{byte(addr >> 24), byte(addr >> 16), byte(addr >> 8), byte(addr)})
		vpc := netip.PrefixFrom(a, bits).Masked()
		zs := []string{fmt.Sprintf("z%d-a", z1), fmt.Sprintf("z%d-b", z2), fmt.Sprintf("z%d-c", z3)}
		plan, err := network.NewPlan(vpc.String(), zs)
		if err != nil {
			t.Logf("NewPlan(%s, %v) = %v", vpc, zs, err)
			return false
		}
		checkPlan(t, vpc.String(), zs, plan)
		return !t.Failed()
	}
	if err := quick.Check(property, &quick.Config{MaxCount: 2000, Rand: nil}); err != nil {
		t.Fatal(err)
	}
}

func TestPlanFollowsZoneOrder(t *testing.T) {
	a, _ := network.NewPlan("10.1.0.0/16", []string{"x", "y", "z"})
	b, _ := network.NewPlan("10.1.0.0/16", []string{"z", "y", "x"})
	if a.Private()[0].CIDR != b.Private()[0].CIDR || a.Private()[0].ZoneID != "x" || b.Private()[0].ZoneID != "z" {
		t.Fatalf("the first block must go to the first zone listed: %+v vs %+v", a.Private(), b.Private())
	}
}

func TestPlanRefusesBadInput(t *testing.T) {
	cases := []struct {
		name    string
		cidr    string
		zoneIDs []string
		mention []string
	}{
		{"unparsable", "10.0.0/16", zones, []string{"vpcCidr", `"10.0.0/16"`, "IPv4 CIDR"}},
		{"no prefix", "10.0.0.0", zones, []string{"vpcCidr", "IPv4 CIDR"}},
		{"IPv6", "fd00::/56", zones, []string{"vpcCidr", "IPv4 CIDR"}},
		{"host bits", "10.0.0.1/16", zones, []string{"vpcCidr", "host bits", "10.0.0.0/16"}},
		{"too large", "10.0.0.0/15", zones, []string{"vpcCidr", "/16 to /23"}},
		{"too small", "10.0.0.0/24", zones, []string{"vpcCidr", "/16 to /23"}},
		{"two zones", "10.0.0.0/16", zones[:2], []string{"zoneIds", "exactly 3"}},
		{"four zones", "10.0.0.0/16", append(slices.Clone(zones), "use1-az5"), []string{"zoneIds", "exactly 3"}},
		{"no zones", "10.0.0.0/16", nil, []string{"zoneIds", "exactly 3"}},
		{"empty zone", "10.0.0.0/16", []string{"a", "", "c"}, []string{"zoneIds[1]", "empty"}},
		{"repeated zone", "10.0.0.0/16", []string{"a", "b", "a"}, []string{"zoneIds[2]", `"a"`, "repeat"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			plan, err := network.NewPlan(c.cidr, c.zoneIDs)
			if err == nil {
				t.Fatalf("NewPlan(%q, %v) = %+v, want an error", c.cidr, c.zoneIDs, plan)
			}
			if !reflect.DeepEqual(plan, network.Plan{}) {
				t.Errorf("failed NewPlan returned a partial plan %+v", plan)
			}
			for _, m := range c.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %s", err, m)
				}
			}
		})
	}
}

func TestZeroPlanHasNoSpare(t *testing.T) {
	var p network.Plan
	if p.Spare() != "" || len(p.Private()) != 0 || len(p.Public()) != 0 {
		t.Fatalf("zero plan: spare %q, private %v, public %v", p.Spare(), p.Private(), p.Public())
	}
}

func TestPlanDoesNotAliasZoneSlice(t *testing.T) {
	zs := slices.Clone(zones)
	plan, _ := network.NewPlan("10.0.0.0/16", zs)
	zs[0] = "changed"
	if plan.Subnets[0].ZoneID != zones[0] {
		t.Fatal("plan changed when the caller's zone slice did")
	}
}

func FuzzNewPlan(f *testing.F) {
	f.Add("10.0.0.0/16", "a", "b", "c")
	f.Add("192.168.254.0/23", "use1-az1", "use1-az2", "use1-az4")
	f.Add("10.0.0.1/16", "a", "a", "c")
	f.Add("::/16", "", "b", "c")
	f.Fuzz(func(t *testing.T, cidr, z1, z2, z3 string) {
		zs := []string{z1, z2, z3}
		plan, err := network.NewPlan(cidr, zs)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "network: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			return
		}
		checkPlan(t, cidr, zs, plan)
	})
}

func BenchmarkNewPlan(b *testing.B) {
	for b.Loop() {
		if _, err := network.NewPlan("10.0.0.0/16", zones); err != nil {
			b.Fatal(err)
		}
	}
}

func randomNetwork(rng *rand.Rand, within netip.Prefix, bits int) netip.Prefix {
	base := within.Addr().As4()
	v := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	v |= rng.Uint32() & (1<<(32-within.Bits()) - 1)
	a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	return netip.PrefixFrom(a, bits).Masked()
}

func size(p netip.Prefix) uint64 { return 1 << (32 - p.Bits()) }

func cidrs(ss []network.Subnet) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.CIDR
	}
	return out
}
