package asl

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"
)

// runner walks one sequence of states: the execution itself, a Parallel branch or a Map
// iteration. It remembers the last event it recorded, which is the previousEventId of the next.
type runner struct {
	x    *Execution
	ctx  context.Context
	last int64
}

func (r *runner) event(ev HistoryEvent) int64 {
	id := r.x.record(ev, r.last)
	if id != 0 {
		r.last = id
	}
	return id
}

var abortedFailure = &Failure{Name: "States.Aborted", aborted: true}

func (r *runner) runMachine(m *machine, input any) (any, *Failure) {
	name := m.startAt
	for {
		if r.ctx.Err() != nil {
			return nil, abortedFailure
		}
		st := m.states[name]
		out, next, fail := r.runState(st, input)
		if fail != nil {
			return nil, fail
		}
		if next == "" {
			return out, nil
		}
		name, input = next, out
	}
}

// stateCtx is one visit of a state.
type stateCtx struct {
	r          *runner
	st         *state
	entered    time.Time
	enteredID  int64
	retryCount int
	token      string
	mapItem    *mapItem
	ctxObj     any
}

type mapItem struct {
	index int
	value any
}

const timeLayout = "2006-01-02T15:04:05.000Z"

// context builds the context object ($$) on first use.
func (sc *stateCtx) context() any {
	if sc.ctxObj != nil && sc.mapItem == nil {
		return sc.ctxObj
	}
	x := sc.r.x
	var b ObjectBuilder
	b.Set("Execution", NewObject(
		Member{"Id", x.arn},
		Member{"Input", x.value},
		Member{"StartTime", x.start.UTC().Format(timeLayout)},
		Member{"Name", x.name},
		Member{"RoleArn", x.machine.RoleARN},
		Member{"RedriveCount", Number("0")},
	))
	b.Set("State", NewObject(
		Member{"EnteredTime", sc.entered.UTC().Format(timeLayout)},
		Member{"Name", sc.st.name},
		Member{"RetryCount", IntNumber(int64(sc.retryCount))},
	))
	b.Set("StateMachine", NewObject(Member{"Id", x.machine.ARN}, Member{"Name", x.machine.Name}))
	if sc.token != "" {
		b.Set("Task", NewObject(Member{"Token", sc.token}))
	}
	if sc.mapItem != nil {
		item := NewObject(
			Member{"Index", IntNumber(int64(sc.mapItem.index))},
			Member{"Value", sc.mapItem.value},
		)
		b.Set("Map", NewObject(Member{"Item", item}))
		return b.Object()
	}
	sc.ctxObj = b.Object()
	return sc.ctxObj
}

func (r *runner) runState(st *state, input any) (out any, next string, fail *Failure) {
	sc := &stateCtx{r: r, st: st, entered: r.x.engine.clock.Now()}
	sc.enteredID = r.event(HistoryEvent{Type: enteredEvent(st.typ), StateEnteredEventDetails: &StateEnteredEventDetails{
		Name: st.name, Input: MarshalJSON(input), InputDetails: notTruncated}})
	defer func() {
		if fail != nil && !fail.aborted && !fail.located {
			if fail.Name == ErrRuntime || fail.Name == ErrDataLimitExceeded {
				fail = &Failure{Name: fail.Name, Cause: fmt.Sprintf("An error occurred while executing the state '%s' (entered at the event id #%d). %s", st.name, sc.enteredID, fail.Cause)}
			}
			fail.located = true
		}
	}()
	switch st.typ {
	case typePass:
		out, fail = sc.pass(input)
	case typeWait:
		out, fail = sc.wait(input)
	case typeChoice:
		out, next, fail = sc.choice(input)
		if fail != nil {
			return nil, "", fail
		}
		return out, next, sc.exit(out)
	case typeSucceed:
		out, fail = sc.succeed(input)
		if fail != nil {
			return nil, "", fail
		}
		return out, "", sc.exit(out)
	case typeFail:
		return nil, "", sc.fail(input)
	case typeTask, typeParallel, typeMap:
		return sc.recoverable(input)
	}
	if fail != nil {
		return nil, "", fail
	}
	if f := sc.exit(out); f != nil {
		return nil, "", f
	}
	return out, st.next, nil
}

// exit records the state's Exited event, refusing outputs over the payload quota.
func (sc *stateCtx) exit(out any) *Failure {
	text := MarshalJSON(out)
	if len(text) > maxPayloadBytes {
		return &Failure{Name: ErrDataLimitExceeded, Cause: fmt.Sprintf("The state/task '%s' returned a result with a size exceeding the maximum number of bytes service limit.", sc.st.name)}
	}
	sc.r.event(HistoryEvent{Type: exitedEvent(sc.st.typ), StateExitedEventDetails: &StateExitedEventDetails{
		Name: sc.st.name, Output: text, OutputDetails: notTruncated}})
	return nil
}

// Input and output processing, in AWS's order: InputPath, Parameters, (the work),
// ResultSelector, ResultPath, OutputPath.

func (sc *stateCtx) inputPath(input any) (any, *Failure) {
	st := sc.st
	switch {
	case st.inputNull:
		return &Object{}, nil
	case st.inputPath == nil:
		return input, nil
	}
	v, err := st.inputPath.Eval(input)
	if err != nil {
		return nil, runtimeError("Invalid path '%s' : No results for path: %s", st.inputPath.src, st.inputPath.normalized())
	}
	return v, nil
}

func (sc *stateCtx) outputPath(output any) (any, *Failure) {
	st := sc.st
	switch {
	case st.outputNull:
		return &Object{}, nil
	case st.outputPath == nil:
		return output, nil
	}
	v, err := st.outputPath.Eval(output)
	if err != nil {
		return nil, runtimeError("Invalid path '%s' : No results for path: %s", st.outputPath.src, st.outputPath.normalized())
	}
	return v, nil
}

func (sc *stateCtx) applyTemplate(t *template, input any) (any, *Failure) {
	v, err := t.eval(input, sc.context)
	if err != nil {
		if f, ok := err.(*Failure); ok {
			return nil, f
		}
		return nil, runtimeError("%v", err)
	}
	return v, nil
}

func resultPath(p *Path, discard bool, input, result any) (any, *Failure) {
	switch {
	case discard:
		return input, nil
	case p == nil:
		return result, nil
	}
	v, err := p.Set(input, result)
	if err != nil {
		return nil, &Failure{Name: ErrResultPathMatchFailure, Cause: fmt.Sprintf("Unable to apply step \"%s\" to input %s", p.src, MarshalJSON(input))}
	}
	return v, nil
}

func (sc *stateCtx) pass(input any) (any, *Failure) {
	eff, f := sc.inputPath(input)
	if f != nil {
		return nil, f
	}
	if sc.st.parameters != nil {
		if eff, f = sc.applyTemplate(sc.st.parameters, eff); f != nil {
			return nil, f
		}
	}
	result := eff
	if sc.st.hasResult {
		result = sc.st.result
	}
	out, f := resultPath(sc.st.resultPath, sc.st.resultNull, input, result)
	if f != nil {
		return nil, f
	}
	return sc.outputPath(out)
}

func (sc *stateCtx) succeed(input any) (any, *Failure) {
	eff, f := sc.inputPath(input)
	if f != nil {
		return nil, f
	}
	return sc.outputPath(eff)
}

func (sc *stateCtx) choice(input any) (any, string, *Failure) {
	eff, f := sc.inputPath(input)
	if f != nil {
		return nil, "", f
	}
	next := ""
	for _, rule := range sc.st.choices {
		ok, err := rule.eval(eff, sc.context)
		if err != nil {
			return nil, "", err.(*Failure)
		}
		if ok {
			next = rule.next
			break
		}
	}
	if next == "" {
		next = sc.st.defaultState
	}
	if next == "" {
		return nil, "", &Failure{Name: ErrNoChoiceMatched, Cause: fmt.Sprintf("No Matches! The Choice state '%s' has no matching rule and no Default", sc.st.name)}
	}
	out, f := sc.outputPath(eff)
	return out, next, f
}

func (sc *stateCtx) wait(input any) (any, *Failure) {
	st := sc.st
	eff, f := sc.inputPath(input)
	if f != nil {
		return nil, f
	}
	clock := sc.r.x.engine.clock
	var d time.Duration
	switch {
	case st.hasWaitSeconds:
		d = time.Duration(st.waitSeconds) * time.Second
	case st.hasWaitTimestamp:
		d = st.waitTimestamp.Sub(clock.Now())
	case st.waitSecondsPath != nil:
		v, err := readPath(st.waitSecondsPath, eff, sc.context)
		n, isNum := v.(Number)
		secs, isInt := n.Int64()
		if err != nil || !isNum || !isInt || secs < 0 {
			return nil, runtimeError("The SecondsPath parameter does not reference a valid integer value: %s", st.waitSecondsPath.src)
		}
		d = time.Duration(min(secs, maxSeconds)) * time.Second
	case st.waitTimestampPath != nil:
		v, err := readPath(st.waitTimestampPath, eff, sc.context)
		s, isStr := v.(string)
		t, perr := parseTimestamp(s)
		if err != nil || !isStr || perr != nil {
			return nil, runtimeError("The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: %s", st.waitTimestampPath.src)
		}
		d = t.Sub(clock.Now())
	}
	if err := sleep(sc.r.ctx, clock, d); err != nil {
		sc.r.event(HistoryEvent{Type: abortedEvent(st.typ)})
		return nil, abortedFailure
	}
	return sc.outputPath(eff)
}

func readPath(p *Path, input any, context contextFn) (any, error) {
	doc := input
	if p.context {
		doc = context()
	}
	return p.Eval(doc)
}

func (sc *stateCtx) fail(input any) *Failure {
	st := sc.st
	f := &Failure{Name: st.errorName, Cause: st.cause, located: true}
	dyn := func(d *dynamic, what string) (string, *Failure) {
		var v any
		var err error
		if d.fn != nil {
			v, err = d.fn.eval(input, sc.context)
		} else {
			v, err = readPath(d.path, input, sc.context)
		}
		s, isStr := v.(string)
		if err != nil || !isStr {
			return "", runtimeError("The %s '%s' does not resolve to a string", what, d.src)
		}
		return s, nil
	}
	if st.errorPath != nil {
		s, rf := dyn(st.errorPath, "ErrorPath")
		if rf != nil {
			return rf
		}
		f.Name = s
	}
	if st.causePath != nil {
		s, rf := dyn(st.causePath, "CausePath")
		if rf != nil {
			return rf
		}
		f.Cause = s
	}
	return f
}

// recoverable runs a Task, Parallel or Map state with its Retry and Catch.
func (sc *stateCtx) recoverable(input any) (any, string, *Failure) {
	st := sc.st
	attempts := make([]int64, len(st.retry))
	for {
		var result any
		var fail *Failure
		switch st.typ {
		case typeTask:
			result, fail = sc.task(input)
		case typeParallel:
			result, fail = sc.parallel(input)
		case typeMap:
			result, fail = sc.mapState(input)
		}
		if fail == nil {
			out, f := sc.outputPath(result)
			if f != nil {
				return nil, "", f
			}
			if f := sc.exit(out); f != nil {
				return nil, "", f
			}
			return out, st.next, nil
		}
		if fail.aborted || !fail.recoverable() {
			return nil, "", fail
		}
		if delay, retry := sc.retryDelay(fail, attempts); retry {
			sc.retryCount++
			sc.ctxObj = nil // $$.State.RetryCount changed
			if err := sleep(sc.r.ctx, sc.r.x.engine.clock, delay); err != nil {
				return nil, "", abortedFailure
			}
			continue
		}
		for _, k := range st.catch {
			if !matchesErrorEquals(k.errorEquals, fail.Name) {
				continue
			}
			out, f := resultPath(k.resultPath, k.resultNull, input, fail.errorOutput())
			if f != nil {
				return nil, "", f
			}
			if f := sc.exit(out); f != nil {
				return nil, "", f
			}
			return out, k.next, nil
		}
		return nil, "", fail
	}
}

// retryDelay finds the first retrier naming the error; it retries while that retrier has
// attempts left, waiting IntervalSeconds * BackoffRate^(attempts so far), capped by
// MaxDelaySeconds, scaled by a random factor under FULL jitter.
func (sc *stateCtx) retryDelay(fail *Failure, attempts []int64) (time.Duration, bool) {
	for i, r := range sc.st.retry {
		if !matchesErrorEquals(r.errorEquals, fail.Name) {
			continue
		}
		if attempts[i] >= r.maxAttempts {
			return 0, false
		}
		secs := r.interval * math.Pow(r.backoffRate, float64(attempts[i]))
		if r.maxDelay > 0 && secs > r.maxDelay {
			secs = r.maxDelay
		}
		if r.jitterFull {
			secs *= sc.r.x.engine.random()
		}
		attempts[i]++
		return time.Duration(secs * float64(time.Second)), true
	}
	return 0, false
}

func (sc *stateCtx) parallel(input any) (any, *Failure) {
	st := sc.st
	eff, f := sc.inputPath(input)
	if f != nil {
		return nil, f
	}
	if st.parameters != nil {
		if eff, f = sc.applyTemplate(st.parameters, eff); f != nil {
			return nil, f
		}
	}
	startedID := sc.r.event(HistoryEvent{Type: "ParallelStateStarted"})
	ctx, cancel := context.WithCancel(sc.r.ctx)
	defer cancel()
	results := make([]any, len(st.branches))
	var once sync.Once
	var first *Failure
	var wg sync.WaitGroup
	for i, b := range st.branches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			br := &runner{x: sc.r.x, ctx: ctx, last: startedID}
			out, f := br.runMachine(b, eff)
			if f != nil {
				if !f.aborted {
					once.Do(func() { first = f; cancel() })
				}
				return
			}
			results[i] = out
		}()
	}
	wg.Wait()
	if sc.r.ctx.Err() != nil {
		return nil, abortedFailure
	}
	if first != nil {
		sc.r.event(HistoryEvent{Type: "ParallelStateFailed"})
		return nil, first
	}
	sc.r.event(HistoryEvent{Type: "ParallelStateSucceeded"})
	return sc.finishResult(input, results)
}

// finishResult applies ResultSelector and ResultPath to a state's result.
func (sc *stateCtx) finishResult(input, result any) (any, *Failure) {
	if sc.st.resultSelector != nil {
		var f *Failure
		if result, f = sc.applyTemplate(sc.st.resultSelector, result); f != nil {
			return nil, f
		}
	}
	return resultPath(sc.st.resultPath, sc.st.resultNull, input, result)
}

// nonNegativeInt reads an integer-valued path (MaxConcurrencyPath and friends).
func (sc *stateCtx) nonNegativeInt(p *Path, input any, field string) (int64, *Failure) {
	v, err := readPath(p, input, sc.context)
	n, isNum := v.(Number)
	i, isInt := n.Int64()
	if err != nil || !isNum || !isInt || i < 0 {
		return 0, runtimeError("The %s field '%s' must reference a non-negative integer", field, p.src)
	}
	return i, nil
}

func (sc *stateCtx) mapState(input any) (any, *Failure) {
	st := sc.st
	eff, f := sc.inputPath(input)
	if f != nil {
		return nil, f
	}
	itemsValue := eff
	if st.itemsPath != nil {
		v, err := readPath(st.itemsPath, eff, sc.context)
		if err != nil {
			return nil, runtimeError("Invalid path '%s' : No results for path: %s", st.itemsPath.src, st.itemsPath.normalized())
		}
		itemsValue = v
	}
	items, isArr := itemsValue.([]any)
	if !isArr {
		return nil, runtimeError("Item must be an array: the ItemsPath of the Map state selects %s", typeName(itemsValue))
	}
	limit := st.maxConcurrency
	if st.maxConcurrencyPath != nil {
		if limit, f = sc.nonNegativeInt(st.maxConcurrencyPath, eff, "MaxConcurrencyPath"); f != nil {
			return nil, f
		}
	}
	tolerance := st.hasToleratedCount || st.hasToleratedPct || st.toleratedCountPath != nil || st.toleratedPctPath != nil
	toleratedCount := int64(-1) // -1: not limited by count
	if st.hasToleratedCount {
		toleratedCount = st.toleratedCount
	}
	if st.toleratedCountPath != nil {
		if toleratedCount, f = sc.nonNegativeInt(st.toleratedCountPath, eff, "ToleratedFailureCountPath"); f != nil {
			return nil, f
		}
	}
	toleratedPct := -1.0
	if st.hasToleratedPct {
		toleratedPct = st.toleratedPercent
	}
	if st.toleratedPctPath != nil {
		v, err := readPath(st.toleratedPctPath, eff, sc.context)
		n, isNum := v.(Number)
		if err != nil || !isNum || n.Float() < 0 || n.Float() > 100 {
			return nil, runtimeError("The ToleratedFailurePercentagePath field '%s' must reference a number from 0 to 100", st.toleratedPctPath.src)
		}
		toleratedPct = n.Float()
	}
	if tolerance && toleratedCount < 0 && toleratedPct < 0 {
		toleratedCount = 0
	}

	startedID := sc.r.event(HistoryEvent{Type: "MapStateStarted", MapStateStartedEventDetails: &MapStateStartedEventDetails{Length: len(items)}})
	ctx, cancel := context.WithCancel(sc.r.ctx)
	defer cancel()
	if limit <= 0 || limit > int64(len(items)) {
		limit = int64(max(len(items), 1))
	}
	slots := make(chan struct{}, limit)
	results := make([]any, len(items))
	var mu sync.Mutex
	failed := 0
	var mapFailure *Failure
	exceeded := func() bool {
		if !tolerance {
			return failed > 0
		}
		if toleratedCount >= 0 && int64(failed) > toleratedCount {
			return true
		}
		return toleratedPct >= 0 && float64(failed)*100/float64(len(items)) > toleratedPct
	}
	var wg sync.WaitGroup
	for i, item := range items {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			it := &runner{x: sc.r.x, ctx: ctx, last: startedID}
			detail := &MapIterationEventDetails{Name: st.name, Index: i}
			it.event(HistoryEvent{Type: "MapIterationStarted", MapIterationStartedEventDetails: detail})
			itemInput := item
			if st.itemSelector != nil {
				isc := &stateCtx{r: sc.r, st: st, entered: sc.entered, retryCount: sc.retryCount, mapItem: &mapItem{i, item}}
				v, err := st.itemSelector.eval(eff, isc.context)
				if err != nil {
					mu.Lock()
					if mapFailure == nil {
						mapFailure = asFailure(err)
					}
					mu.Unlock()
					cancel()
					return
				}
				itemInput = v
			}
			out, f := it.runMachine(st.processor, itemInput)
			if f != nil && f.aborted {
				it.event(HistoryEvent{Type: "MapIterationAborted", MapIterationAbortedEventDetails: detail})
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if f != nil {
				it.event(HistoryEvent{Type: "MapIterationFailed", MapIterationFailedEventDetails: detail})
				failed++
				results[i] = f.errorOutput()
				if mapFailure == nil && exceeded() {
					mapFailure = f
					if tolerance {
						mapFailure = &Failure{Name: ErrExceedToleratedFailure, Cause: "The specified tolerated failure threshold was exceeded", located: true}
					}
					cancel()
				}
				return
			}
			it.event(HistoryEvent{Type: "MapIterationSucceeded", MapIterationSucceededEventDetails: detail})
			results[i] = out
		}()
	}
	wg.Wait()
	if sc.r.ctx.Err() != nil {
		return nil, abortedFailure
	}
	if mapFailure != nil {
		sc.r.event(HistoryEvent{Type: "MapStateFailed"})
		return nil, mapFailure
	}
	sc.r.event(HistoryEvent{Type: "MapStateSucceeded"})
	return sc.finishResult(input, results)
}

func asFailure(err error) *Failure {
	if f, ok := err.(*Failure); ok {
		return f
	}
	return runtimeError("%v", err)
}
