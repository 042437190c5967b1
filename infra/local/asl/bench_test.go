package asl

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// passChain is a definition of n Pass states in a row, each doing the usual input and
// output processing.
func passChain(n int) string {
	var b strings.Builder
	b.WriteString(`{"StartAt":"S0","States":{`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		next := fmt.Sprintf(`"Next":"S%d"`, i+1)
		if i == n-1 {
			next = `"End":true`
		}
		fmt.Fprintf(&b, `"S%d":{"Type":"Pass","Parameters":{"step":%d,"id.$":"$.id"},"ResultPath":"$.last",%s}`, i, i, next)
	}
	b.WriteString(`}}`)
	return b.String()
}

// BenchmarkPassChain measures state transitions per second on one core (the target is at
// least 50,000): executions of a 1,000-state Pass chain, history recorded as always.
func BenchmarkPassChain(b *testing.B) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const states = 1000
	e := NewEngine(Options{})
	m, err := e.CreateStateMachine(CreateStateMachineInput{Name: "Chain", Definition: passChain(states), RoleARN: testRole})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		x, err := e.StartExecution(m.ARN, fmt.Sprintf("run-%d", i), `{"id":"abc","payload":{"a":[1,2,3],"b":"text"}}`)
		if err != nil {
			b.Fatal(err)
		}
		info, err := e.Wait(context.Background(), x.ARN)
		if err != nil || info.Status != StatusSucceeded {
			b.Fatalf("%v %v", info, err)
		}
	}
	b.ReportMetric(float64(b.N*states)/b.Elapsed().Seconds(), "transitions/s")
}

// BenchmarkMap1000 measures one Map state over 1,000 items with MaxConcurrency 40.
func BenchmarkMap1000(b *testing.B) {
	e := NewEngine(Options{})
	def := `{"StartAt":"M","States":{"M":{"Type":"Map","MaxConcurrency":40,"ItemsPath":"$.items",
	  "ItemSelector":{"n.$":"$$.Map.Item.Value","i.$":"$$.Map.Item.Index"},
	  "ItemProcessor":{"StartAt":"A","States":{"A":{"Type":"Pass","Parameters":{"v.$":"$.n"},"Next":"B"},"B":{"Type":"Pass","End":true}}},"End":true}}}`
	m, err := e.CreateStateMachine(CreateStateMachineInput{Name: "Map", Definition: def, RoleARN: testRole})
	if err != nil {
		b.Fatal(err)
	}
	items := make([]string, 1000)
	for i := range items {
		items[i] = fmt.Sprint(i)
	}
	input := `{"items":[` + strings.Join(items, ",") + `]}`
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		x, err := e.StartExecution(m.ARN, fmt.Sprintf("run-%d", i), input)
		if err != nil {
			b.Fatal(err)
		}
		info, err := e.Wait(context.Background(), x.ARN)
		if err != nil || info.Status != StatusSucceeded {
			b.Fatalf("%v %v", info, err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/map")
}
