package cfnengine

import "fmt"

// Physical names a resource holds while it exists, whether a stack still manages it or
// CloudFormation left it behind (DeletionPolicy Retain, a rolled-back create's retained
// resources, a deleted stack's retained ones). AWS refuses a second resource of the same
// name within the name's scope: S3 bucket names are global, IAM role names are per account,
// EKS cluster names per account and region. Without this, a stack recreated after a rollback
// would create its fixed-name resources again locally, where AWS fails on the first one.

type heldName struct {
	scope, typ, name string
}

// nameScope is where a resource type's names must be unique (S3 bucket names are global),
// and whether its names can collide at all.
func nameScope(s *stack, typ string) (string, bool) {
	switch typ {
	case "AWS::S3::Bucket":
		return "", true
	case "AWS::IAM::Role":
		return s.account, true
	case "AWS::EKS::Cluster":
		return s.account + "/" + s.region, true
	}
	return "", false
}

// heldKey is the name r holds, and whether its type has names that can collide.
func heldKey(s *stack, r *liveResource) (heldName, bool) {
	scope, named := nameScope(s, r.typ)
	if !named || r.physicalID == "" {
		return heldName{}, false
	}
	return heldName{scope, r.typ, r.physicalID}, true
}

func holder(s *stack, r *liveResource) string { return s.id + "/" + r.logicalID }

// claimName records that r holds its name, or says, as CloudFormation's resource event
// would, that another resource holds it.
func (e *Engine) claimName(s *stack, r *liveResource) error {
	k, ok := heldKey(s, r)
	if !ok {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if h, taken := e.held[k]; taken && h != holder(s, r) {
		if k.typ == "AWS::S3::Bucket" {
			return fmt.Errorf("%s already exists", k.name)
		}
		return fmt.Errorf("Resource of type '%s' with identifier '%s' already exists.", k.typ, k.name)
	}
	e.held[k] = holder(s, r)
	return nil
}

// retainName hands r's name to the retained resource, which no stack manages any more: not
// even this stack, should its template declare the logical id again, may take it back.
func (e *Engine) retainName(s *stack, r *liveResource) { e.passName(s, r, "retained:"+holder(s, r)) }

// releaseName frees r's name: the resource is gone.
func (e *Engine) releaseName(s *stack, r *liveResource) { e.passName(s, r, "") }

// passName gives the name r holds to another holder, or to none (""), if r still holds it.
func (e *Engine) passName(s *stack, r *liveResource, to string) {
	k, ok := heldKey(s, r)
	if !ok {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.held[k] != holder(s, r):
	case to == "":
		delete(e.held, k)
	default:
		e.held[k] = to
	}
}

// renamed reports whether an update gives a resource of a named type another name.
func renamed(old, next *liveResource) bool {
	_, named := nameScope(&stack{}, old.typ)
	return named && old.physicalID != "" && next.physicalID != old.physicalID
}
