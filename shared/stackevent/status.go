package stackevent

// Operation is the stack operation a status belongs to. A waiter remembers which operation it
// waits for, so a late event from an earlier operation on the same stack (a duplicate
// ROLLBACK_COMPLETE arriving while the stack is being deleted) cannot end the wrong wait.
type Operation string

const (
	Create Operation = "create"
	Update Operation = "update"
	Delete Operation = "delete"
	Import Operation = "import"
)

// Outcome says whether a status ends its operation, and how.
type Outcome string

const (
	InProgress Outcome = "in-progress"
	Succeeded  Outcome = "succeeded"
	Failed     Outcome = "failed"
)

type class struct {
	op      Operation
	outcome Outcome
}

// statuses is every CloudFormation stack status (StackStatus in the CloudFormation API).
// CREATE_FAILED and UPDATE_FAILED are final only when rollback is disabled; otherwise the
// stack moves on to a rollback status, which is final too.
var statuses = map[string]class{
	"CREATE_IN_PROGRESS":   {Create, InProgress},
	"REVIEW_IN_PROGRESS":   {Create, InProgress},
	"ROLLBACK_IN_PROGRESS": {Create, InProgress},
	"CREATE_COMPLETE":      {Create, Succeeded},
	"CREATE_FAILED":        {Create, Failed},
	"ROLLBACK_COMPLETE":    {Create, Failed},
	"ROLLBACK_FAILED":      {Create, Failed},

	"UPDATE_IN_PROGRESS":                           {Update, InProgress},
	"UPDATE_COMPLETE_CLEANUP_IN_PROGRESS":          {Update, InProgress},
	"UPDATE_ROLLBACK_IN_PROGRESS":                  {Update, InProgress},
	"UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS": {Update, InProgress},
	"UPDATE_COMPLETE":                              {Update, Succeeded},
	"UPDATE_FAILED":                                {Update, Failed},
	"UPDATE_ROLLBACK_COMPLETE":                     {Update, Failed},
	"UPDATE_ROLLBACK_FAILED":                       {Update, Failed},

	"DELETE_IN_PROGRESS": {Delete, InProgress},
	"DELETE_COMPLETE":    {Delete, Succeeded},
	"DELETE_FAILED":      {Delete, Failed},

	"IMPORT_IN_PROGRESS":          {Import, InProgress},
	"IMPORT_ROLLBACK_IN_PROGRESS": {Import, InProgress},
	"IMPORT_COMPLETE":             {Import, Succeeded},
	"IMPORT_ROLLBACK_COMPLETE":    {Import, Failed},
	"IMPORT_ROLLBACK_FAILED":      {Import, Failed},
}

// Known reports whether status is a CloudFormation stack status.
func Known(status string) bool {
	_, ok := statuses[status]
	return ok
}

// Classify returns the operation a status belongs to and whether it ends it. ok is false for
// an unknown status.
func Classify(status string) (op Operation, outcome Outcome, ok bool) {
	c, ok := statuses[status]
	return c.op, c.outcome, ok
}

// Terminal reports whether status ends an operation (successfully or not): the stack is
// stable and no event will follow until the next operation.
func Terminal(status string) bool {
	c, ok := statuses[status]
	return ok && c.outcome != InProgress
}

// IsFailed reports whether status ends an operation unsuccessfully.
func IsFailed(status string) bool {
	c, ok := statuses[status]
	return ok && c.outcome == Failed
}

// Ends reports whether status is a terminal status of operation op; an empty op accepts any
// terminal status.
func Ends(op Operation, status string) bool {
	c, ok := statuses[status]
	return ok && c.outcome != InProgress && (op == "" || c.op == op)
}
