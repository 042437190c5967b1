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

// heldKey is the name r holds, and whether its type has names that can collide.
func heldKey(s *stack, r *liveResource) (heldName, bool) {
	if r.physicalID == "" {
		return heldName{}, false
	}
	switch r.typ {
	case "AWS::S3::Bucket":
		return heldName{"", r.typ, r.physicalID}, true
	case "AWS::IAM::Role":
		return heldName{s.account, r.typ, r.physicalID}, true
	case "AWS::EKS::Cluster":
		return heldName{s.account + "/" + s.region, r.typ, r.physicalID}, true
	}
	return heldName{}, false
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
func (e *Engine) retainName(s *stack, r *liveResource) {
	k, ok := heldKey(s, r)
	if !ok {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.held[k] == holder(s, r) {
		e.held[k] = "retained:" + holder(s, r)
	}
}

// renamed reports whether an update gives a resource of a named type another name.
func renamed(old, next *liveResource) bool {
	_, named := heldKey(&stack{}, old)
	return named && next.physicalID != old.physicalID
}

// releaseName frees r's name: the resource is gone.
func (e *Engine) releaseName(s *stack, r *liveResource) {
	k, ok := heldKey(s, r)
	if !ok {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.held[k] == holder(s, r) {
		delete(e.held, k)
	}
}
