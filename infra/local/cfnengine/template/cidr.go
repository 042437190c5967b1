package template

import (
	"math/big"
	"net/netip"
	"strconv"
)

// cidrFn implements Fn::Cidr [ipBlock, count, cidrBits]: count consecutive subnets with
// cidrBits host bits each, from the start of ipBlock.
func (t *Template) cidrFn(env *Env, arg any) (any, error) {
	args, err := t.args(env, "Fn::Cidr", arg, 3)
	if err != nil {
		return nil, err
	}
	strs := make([]string, 3)
	for i, a := range args {
		s, err := scalarString(a)
		if err != nil {
			return nil, formatErrorf("Fn::Cidr arguments must be strings or numbers, got %v", a)
		}
		strs[i] = s
	}
	block, err := netip.ParsePrefix(strs[0])
	if err != nil {
		return nil, errorf("Template error: Fn::Cidr: %q is not a CIDR block", strs[0])
	}
	block = block.Masked()
	count, err1 := strconv.Atoi(strs[1])
	hostBits, err2 := strconv.Atoi(strs[2])
	total := block.Addr().BitLen()
	if err1 != nil || count < 1 || count > 256 {
		return nil, errorf("Template error: Fn::Cidr count %q must be between 1 and 256", strs[1])
	}
	if err2 != nil || hostBits < 0 || hostBits > total-block.Bits() {
		return nil, errorf("Template error: Fn::Cidr cidrBits %q must be between 0 and %d for %s", strs[2], total-block.Bits(), block)
	}
	subnetBits := total - hostBits
	available := new(big.Int).Lsh(big.NewInt(1), uint(subnetBits-block.Bits()))
	if big.NewInt(int64(count)).Cmp(available) > 0 {
		return nil, errorf("Template error: Fn::Cidr cannot fit %d subnets of /%d in %s", count, subnetBits, block)
	}
	start := new(big.Int).SetBytes(block.Addr().AsSlice())
	step := new(big.Int).Lsh(big.NewInt(1), uint(hostBits))
	out := make([]any, count)
	for i := 0; i < count; i++ {
		n := new(big.Int).Add(start, new(big.Int).Mul(step, big.NewInt(int64(i))))
		buf := make([]byte, total/8)
		n.FillBytes(buf)
		addr, _ := netip.AddrFromSlice(buf)
		out[i] = netip.PrefixFrom(addr, subnetBits).String()
	}
	return out, nil
}
