package cfnengine

import (
	"context"
	"fmt"
	"github.com/aws/aws-sdk-go-v2/aws"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/byocloud/byoc/infra/local/cfnengine/template"
)

// provider makes resources real. Customer accounts use customerBuckets (their buckets only);
// the vendor account uses the vendor deployer (kumo and the Step Functions engine).
type provider interface {
	create(ctx context.Context, s *stack, r *liveResource) error
	update(ctx context.Context, s *stack, old, r *liveResource) error
	delete(ctx context.Context, s *stack, r *liveResource) error
}

func (e *Engine) providerFor(account string) provider {
	if e.isVendor(account) {
		return e.vendor
	}
	return customerBuckets{e.vendor}
}

// customerBuckets simulates a customer account's resources, but for its S3 buckets: those
// exist in the local cloud's S3 (kumo), so what byoc does to a customer's bucket outside
// CloudFormation (a teardown deleting the data) meets a real bucket, and a retained one
// (DeletionPolicy Retain) outlives its stack there as on AWS.
type customerBuckets struct{ v *vendorDeployer }

// real says whether the resource exists beyond the record: a bucket, when the engine has an S3
// to create it in (an engine alone, in its unit tests, simulates every resource).
func (c customerBuckets) real(r *liveResource) bool {
	return r.typ == "AWS::S3::Bucket" && c.v.e.cfg.AWS.BaseEndpoint != nil
}

func (c customerBuckets) create(ctx context.Context, s *stack, r *liveResource) error {
	if !c.real(r) {
		return nil
	}
	return c.v.s3(ctx, http.MethodPut, "/"+r.physicalID, nil)
}

func (customerBuckets) update(context.Context, *stack, *liveResource, *liveResource) error {
	return nil
}

func (c customerBuckets) delete(ctx context.Context, s *stack, r *liveResource) error {
	if !c.real(r) {
		return nil
	}
	return c.v.s3(ctx, http.MethodDelete, "/"+r.physicalID, nil)
}

// plan is a validated template with its parameters, ready to apply to a stack.
type plan struct {
	body         []byte
	tpl          *template.Template
	params       map[string]template.ParamValue
	conditions   map[string]bool
	order        []string
	capabilities []string
	tags         []Tag
	token        string
}

// operation runs one stack operation in its own goroutine.
type operation struct {
	e     *Engine
	s     *stack
	p     provider
	token string
}

func (e *Engine) newOperation(s *stack, token string) *operation {
	return &operation{e: e, s: s, p: e.providerFor(s.account), token: token}
}

// start marks the stack busy and runs fn in a goroutine; the stack's done channel closes
// when it returns (and a DeleteStack that arrived meanwhile then runs).
func (e *Engine) start(s *stack, fn func()) {
	e.mu.Lock()
	s.busy = true
	s.done = make(chan struct{})
	e.mu.Unlock()
	e.ops.Add(1)
	go func() {
		defer e.ops.Done()
		fn()
		e.mu.Lock()
		s.busy = false
		done := s.done
		runDelete := s.pendingDelete && s.status != "DELETE_COMPLETE"
		token := s.pendingToken
		s.pendingDelete = false
		e.mu.Unlock()
		close(done)
		if runDelete {
			e.beginDelete(s, token)
		}
	}()
}

// delay holds a customer-account operation in progress for the configured time.
func (op *operation) delay() {
	if op.e.isVendor(op.s.account) || op.e.cfg.Delay <= 0 {
		return
	}
	<-op.e.clock.After(op.e.cfg.Delay)
}

func (op *operation) emitStack(status, reason string) {
	op.e.emit(op.s, StackEvent{
		Account: op.s.account, Region: op.s.region, StackID: op.s.id, StackName: op.s.name,
		EventID: uuid.NewString(), LogicalResourceID: op.s.name, PhysicalResourceID: op.s.id,
		ResourceType: stackResourceType, ResourceStatus: status, ResourceStatusReason: reason,
		Timestamp: op.e.clock.Now().UTC(), ClientRequestToken: op.token,
	})
}

func (op *operation) emitResource(r *liveResource, status, reason string) {
	now := op.e.clock.Now().UTC()
	op.e.mu.Lock()
	r.status, r.reason, r.updated = status, reason, now
	op.e.mu.Unlock()
	op.e.emit(op.s, StackEvent{
		Account: op.s.account, Region: op.s.region, StackID: op.s.id, StackName: op.s.name,
		EventID:           r.logicalID + "-" + status + "-" + now.Format("2006-01-02T15:04:05.000Z"),
		LogicalResourceID: r.logicalID, PhysicalResourceID: r.physicalID, ResourceType: r.typ,
		ResourceStatus: status, ResourceStatusReason: reason, Timestamp: now, ClientRequestToken: op.token,
	})
}

// newResource builds the live resource of a template resource: resolved properties,
// physical id and attributes. It is not created yet.
func (op *operation) newResource(p *plan, id string, env *template.Env) (*liveResource, error) {
	decl := p.tpl.Resources[id]
	props, err := p.tpl.ResolveProperties(env, decl)
	r := &liveResource{logicalID: id, typ: decl.Type, deletionPolicy: decl.DeletionPolicy, updateReplacePolicy: decl.UpdateReplacePolicy}
	if err != nil {
		return r, err
	}
	r.props = props
	seed := op.s.id + "/" + id
	r.physicalID = physicalIDFor(decl.Type, op.s.name, id, seed, props)
	r.facts = factsFor(decl.Type, &factContext{
		account: op.s.account, region: op.s.region, partition: partition(op.s.region),
		stackName: op.s.name, logicalID: id, physicalID: r.physicalID, props: props, seed: seed,
		endpoint: aws.ToString(op.e.cfg.AWS.BaseEndpoint),
	})
	if d, ok := decl.Metadata.(map[string]any); ok {
		r.description, _ = d["Description"].(string)
	}
	return r, nil
}

// createResource creates one resource, emitting its events. It returns the failure reason.
func (op *operation) createResource(ctx context.Context, p *plan, id string, env *template.Env) (*liveResource, string) {
	r, err := op.newResource(p, id, env)
	op.emitResource(r, "CREATE_IN_PROGRESS", "")
	if err != nil {
		return r, err.Error()
	}
	if reason, injected := op.e.takeInjection(op.s.account, op.s.name, id); injected {
		return r, reason
	}
	if err := op.e.claimName(op.s, r); err != nil {
		return r, err.Error()
	}
	if err := op.e.applyEffects(op.s, r); err != nil {
		op.e.releaseName(op.s, r)
		return r, err.Error()
	}
	if err := op.p.create(ctx, op.s, r); err != nil {
		op.e.undoEffects(op.s, r)
		op.e.releaseName(op.s, r)
		return r, err.Error()
	}
	op.emitResource(r, "CREATE_IN_PROGRESS", "Resource creation Initiated")
	op.e.mu.Lock()
	op.s.resources[id] = r
	op.s.order = append(op.s.order, id)
	op.e.mu.Unlock()
	op.emitResource(r, "CREATE_COMPLETE", "")
	return r, ""
}

// deleteResource deletes one resource (or skips it when retained), emitting its events. A
// retained resource keeps holding its name (claimName).
func (op *operation) deleteResource(ctx context.Context, r *liveResource, rollbackOfCreate bool) {
	retain := r.deletionPolicy == "Retain" || (r.deletionPolicy == "RetainExceptOnCreate" && !rollbackOfCreate)
	if retain {
		op.emitResource(r, "DELETE_SKIPPED", "")
		op.e.retainName(op.s, r)
	} else {
		op.e.releaseName(op.s, r)
		op.emitResource(r, "DELETE_IN_PROGRESS", "")
		if err := op.p.delete(ctx, op.s, r); err != nil {
			op.e.warn(op.s, fmt.Sprintf("deleting %s %s: %v", r.typ, r.logicalID, err))
		}
		op.e.undoEffects(op.s, r)
		op.emitResource(r, "DELETE_COMPLETE", "")
	}
	op.e.mu.Lock()
	delete(op.s.resources, r.logicalID)
	for i, id := range op.s.order {
		if id == r.logicalID {
			op.s.order = append(op.s.order[:i], op.s.order[i+1:]...)
			break
		}
	}
	op.e.mu.Unlock()
}

// runCreate creates every resource in order, then computes outputs; on failure it rolls
// back as OnFailure says.
func (op *operation) runCreate(p *plan) {
	ctx := context.Background()
	op.delay()
	env := op.e.templateEnv(op.s, p.params, resolver{op.e, op.s})
	env.Conditions = p.conditions
	var failed *liveResource
	for _, id := range p.order {
		if r, reason := op.createResource(ctx, p, id, env); reason != "" {
			op.emitResource(r, "CREATE_FAILED", reason)
			failed = r
			break
		}
	}
	if failed == nil {
		if err := op.finishOutputs(p, env); err != nil {
			op.rollbackCreate(ctx, err.Error(), nil)
			return
		}
		op.emitStack("CREATE_COMPLETE", "")
		return
	}
	reason := fmt.Sprintf("The following resource(s) failed to create: [%s]. ", failed.logicalID)
	if op.s.disableRollback || op.s.onFailure == "DO_NOTHING" {
		op.emitStack("CREATE_FAILED", reason)
		return
	}
	op.rollbackCreate(ctx, reason+"Rollback requested by user.", failed)
}

func (op *operation) rollbackCreate(ctx context.Context, reason string, failed *liveResource) {
	op.emitStack("ROLLBACK_IN_PROGRESS", reason)
	op.deleteAll(ctx, true)
	if failed != nil {
		op.emitResource(failed, "DELETE_COMPLETE", "")
	}
	op.emitStack("ROLLBACK_COMPLETE", "")
	if op.s.onFailure == "DELETE" {
		op.emitStack("DELETE_IN_PROGRESS", "User Initiated")
		op.finishDelete()
	}
}

// deleteAll deletes the live resources in reverse creation order.
func (op *operation) deleteAll(ctx context.Context, rollbackOfCreate bool) {
	op.e.mu.Lock()
	order := append([]string(nil), op.s.order...)
	op.e.mu.Unlock()
	for i := len(order) - 1; i >= 0; i-- {
		op.deleteResource(ctx, op.s.resources[order[i]], rollbackOfCreate)
	}
}

// deleteAllUntilFailure deletes a stack's resources in reverse creation order, as a stack
// deletion does; a resource whose deletion fails (an injected delete failure: AWS refusing,
// say, a security group still in use) stops it there: that resource and the ones before it
// stay, the stack is DELETE_FAILED with the reason, and a second DeleteStack carries on from
// there. It returns the failure, or "".
func (op *operation) deleteAllUntilFailure(ctx context.Context) string {
	op.e.mu.Lock()
	order := append([]string(nil), op.s.order...)
	op.e.mu.Unlock()
	for i := len(order) - 1; i >= 0; i-- {
		r := op.s.resources[order[i]]
		if reason, injected := op.e.takeDeleteInjection(op.s.account, op.s.name, r.logicalID); injected {
			op.emitResource(r, "DELETE_IN_PROGRESS", "")
			op.emitResource(r, "DELETE_FAILED", reason)
			return "The following resource(s) failed to delete: [" + r.logicalID + "]. "
		}
		op.deleteResource(ctx, r, false)
	}
	return ""
}

// finishOutputs computes outputs and registers exports. An export name taken by another
// stack fails the operation, as on AWS.
func (op *operation) finishOutputs(p *plan, env *template.Env) error {
	var outputs []Output
	names := make([]string, 0, len(p.tpl.Outputs))
	for n := range p.tpl.Outputs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		o := p.tpl.Outputs[n]
		ok, err := p.tpl.Included(env, o.Condition)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		v, err := p.tpl.Resolve(env, o.Value)
		if err != nil {
			return fmt.Errorf("output %s: %w", n, err)
		}
		value, isString := scalar(v)
		if !isString {
			return fmt.Errorf("Template format error: Output %s: every Value must be a String, got %v", n, v)
		}
		out := Output{Key: n, Value: value, Description: o.Description}
		if o.ExportName != nil {
			ev, err := p.tpl.Resolve(env, o.ExportName)
			if err != nil {
				return fmt.Errorf("output %s export name: %w", n, err)
			}
			out.ExportName, _ = scalar(ev)
		}
		outputs = append(outputs, out)
	}
	key := regionKey{op.s.account, op.s.region}
	op.e.mu.Lock()
	defer op.e.mu.Unlock()
	for _, o := range outputs {
		if o.ExportName == "" {
			continue
		}
		if ex, taken := op.e.exports[key][o.ExportName]; taken && ex.stackID != op.s.id {
			return fmt.Errorf("Export with name %s is already exported by stack %s", o.ExportName, stackNameOf(ex.stackID))
		}
	}
	if op.e.exports[key] == nil {
		op.e.exports[key] = map[string]exportRef{}
	}
	for name, ex := range op.e.exports[key] {
		if ex.stackID == op.s.id {
			delete(op.e.exports[key], name)
		}
	}
	for _, o := range outputs {
		if o.ExportName != "" {
			op.e.exports[key][o.ExportName] = exportRef{stackID: op.s.id, value: o.Value}
		}
	}
	op.s.outputs = outputs
	op.s.imports = importsOf(p.tpl)
	return nil
}

func stackNameOf(id string) string {
	parts := strings.Split(id, "/")
	if len(parts) >= 2 {
		return parts[1]
	}
	return id
}

// importsOf lists the literal export names a template imports.
func importsOf(t *template.Template) []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if name, ok := x["Fn::ImportValue"].(string); ok && len(x) == 1 {
				out = append(out, name)
				return
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	for _, r := range t.Resources {
		walk(r.Properties)
	}
	for _, o := range t.Outputs {
		walk(o.Value)
	}
	return out
}

func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return fmt.Sprint(x), true
	case interface{ String() string }:
		return x.String(), true
	}
	return "", false
}

// runUpdate applies a new template: new resources are created, changed ones updated, and
// removed ones deleted in the cleanup phase. On failure the previous template is restored.
func (op *operation) runUpdate(p *plan, previous *plan) {
	ctx := context.Background()
	op.delay()
	env := op.e.templateEnv(op.s, p.params, resolver{op.e, op.s})
	env.Conditions = p.conditions
	type change struct {
		old     *liveResource // nil for a created resource
		current *liveResource
	}
	var changes []change
	var failedID, failedVerb string
	var eks eksVersions
	for _, id := range p.order {
		old := op.s.resources[id]
		if old == nil || old.typ != p.tpl.Resources[id].Type {
			if old != nil {
				op.deleteResource(ctx, old, false)
			}
			r, why := op.createResource(ctx, p, id, env)
			if why != "" {
				op.emitResource(r, "CREATE_FAILED", why)
				failedID, failedVerb = id, "create"
				break
			}
			changes = append(changes, change{current: r})
			continue
		}
		r, err := op.newResource(p, id, env)
		if err == nil && r.typ == "AWS::EKS::Cluster" {
			eks.cluster = fmt.Sprint(r.props["Version"])
		}
		if err == nil && reflect.DeepEqual(r.props, old.props) {
			continue // unchanged: CloudFormation leaves it alone
		}
		op.emitResource(old, "UPDATE_IN_PROGRESS", "")
		why := ""
		// A new name is a replacement under that name: it must be free (the old one is let go
		// once the update completes, or kept if the update rolls back).
		claimed := false
		if err == nil && renamed(old, r) {
			if cerr := op.e.claimName(op.s, r); cerr != nil {
				why = cerr.Error()
			} else {
				claimed = true
			}
		}
		if why == "" && err == nil {
			why = eks.check(old, r)
		}
		if why == "" {
			why = op.updateResource(ctx, id, old, r, err)
		}
		if why != "" {
			if claimed {
				op.e.releaseName(op.s, r)
			}
			op.emitResource(old, "UPDATE_FAILED", why)
			failedID, failedVerb = id, "update"
			break
		}
		op.e.mu.Lock()
		op.s.resources[id] = r
		op.e.mu.Unlock()
		op.emitResource(r, "UPDATE_COMPLETE", "")
		changes = append(changes, change{old: old, current: r})
	}
	if failedID == "" {
		if err := op.finishOutputs(p, env); err != nil {
			op.e.warn(op.s, "outputs: "+err.Error())
			failedID, failedVerb = "Outputs", "update"
		}
	}
	if failedID != "" {
		op.emitStack("UPDATE_ROLLBACK_IN_PROGRESS", fmt.Sprintf("The following resource(s) failed to %s: [%s]. ", failedVerb, failedID))
		for i := len(changes) - 1; i >= 0; i-- {
			c := changes[i]
			if c.old == nil {
				continue
			}
			op.emitResource(c.current, "UPDATE_IN_PROGRESS", "")
			if renamed(c.old, c.current) {
				op.e.releaseName(op.s, c.current) // the old name, still held, is the name again
			}
			op.e.undoEffects(op.s, c.current)
			_ = op.e.applyEffects(op.s, c.old)
			if err := op.p.update(ctx, op.s, c.current, c.old); err != nil {
				op.e.warn(op.s, fmt.Sprintf("rolling back %s: %v", c.old.logicalID, err))
			}
			op.e.mu.Lock()
			op.s.resources[c.old.logicalID] = c.old
			op.e.mu.Unlock()
			op.emitResource(c.old, "UPDATE_COMPLETE", "")
		}
		op.emitStack("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "")
		for i := len(changes) - 1; i >= 0; i-- {
			if changes[i].old == nil {
				op.deleteResource(ctx, changes[i].current, true)
			}
		}
		op.e.mu.Lock()
		op.s.tpl, op.s.body, op.s.params, op.s.tags = previous.tpl, previous.body, previous.params, previous.tags
		op.s.description = previous.tpl.Description
		op.e.mu.Unlock()
		op.emitStack("UPDATE_ROLLBACK_COMPLETE", "")
		return
	}
	op.emitStack("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "")
	// Replaced resources with a custom name: the old one goes (or stays, retained, with its
	// name) as its UpdateReplacePolicy says.
	for _, c := range changes {
		if c.old != nil && renamed(c.old, c.current) {
			if c.old.updateReplacePolicy == "Retain" {
				op.e.retainName(op.s, c.old)
			} else {
				op.e.releaseName(op.s, c.old)
			}
		}
	}
	keep := map[string]bool{}
	for _, id := range p.order {
		keep[id] = true
	}
	op.e.mu.Lock()
	order := append([]string(nil), op.s.order...)
	op.e.mu.Unlock()
	for i := len(order) - 1; i >= 0; i-- {
		if !keep[order[i]] {
			op.deleteResource(ctx, op.s.resources[order[i]], false)
		}
	}
	op.emitStack("UPDATE_COMPLETE", "")
}

// updateResource updates one resource in place (err: resolving its new properties failed)
// and returns the failure reason, or "".
func (op *operation) updateResource(ctx context.Context, id string, old, r *liveResource, err error) string {
	if err != nil {
		return err.Error()
	}
	if injected, ok := op.e.takeInjection(op.s.account, op.s.name, id); ok {
		return injected
	}
	op.e.undoEffects(op.s, old)
	if err := op.e.applyEffects(op.s, r); err != nil {
		_ = op.e.applyEffects(op.s, old)
		return err.Error()
	}
	if err := op.p.update(ctx, op.s, old, r); err != nil {
		op.e.undoEffects(op.s, r)
		_ = op.e.applyEffects(op.s, old)
		return err.Error()
	}
	return ""
}

// beginDelete starts deleting a stack, or queues the delete behind the running operation.
func (e *Engine) beginDelete(s *stack, token string) {
	e.mu.Lock()
	if s.status == "DELETE_COMPLETE" || s.status == "DELETE_IN_PROGRESS" {
		e.mu.Unlock()
		return
	}
	if s.busy {
		s.pendingDelete, s.pendingToken = true, token
		e.mu.Unlock()
		return
	}
	e.mu.Unlock()
	op := e.newOperation(s, token)
	op.emitStack("DELETE_IN_PROGRESS", "User Initiated")
	e.start(s, func() {
		op.delay()
		if hold := e.takeHold(s.account, s.name); hold != nil {
			<-hold
		}
		if user := e.exportInUse(s); user != "" {
			op.emitStack("DELETE_FAILED", user)
			return
		}
		if failed := op.deleteAllUntilFailure(context.Background()); failed != "" {
			op.emitStack("DELETE_FAILED", failed)
			return
		}
		op.finishDelete()
	})
}

func (op *operation) finishDelete() {
	key := regionKey{op.s.account, op.s.region}
	op.e.mu.Lock()
	for name, ex := range op.e.exports[key] {
		if ex.stackID == op.s.id {
			delete(op.e.exports[key], name)
		}
	}
	op.s.deleted = op.e.clock.Now().UTC()
	op.e.mu.Unlock()
	op.emitStack("DELETE_COMPLETE", "")
}

// exportInUse returns why a stack cannot be deleted: another stack imports one of its exports.
func (e *Engine) exportInUse(s *stack) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	for name, ex := range e.exports[regionKey{s.account, s.region}] {
		if ex.stackID != s.id {
			continue
		}
		for _, other := range e.stacks {
			if other == s || other.account != s.account || other.region != s.region || other.status == "DELETE_COMPLETE" {
				continue
			}
			for _, imp := range other.imports {
				if imp == name {
					return fmt.Sprintf("Export %s cannot be deleted as it is in use by %s", name, other.name)
				}
			}
		}
	}
	return ""
}

// waitDone blocks until the stack's current operation (if any) and a queued delete end.
func (e *Engine) waitDone(ctx context.Context, s *stack) error {
	for {
		e.mu.Lock()
		busy, done := s.busy, s.done
		e.mu.Unlock()
		if !busy {
			return nil
		}
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
