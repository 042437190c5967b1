//go:build !chaosdefect

package customerstack

// omitCreateToken is false in every real build. The chaos test builds provision with
// `-tags chaosdefect`, which sets it, to prove that the chaos invariants catch a create sent
// without its ClientRequestToken (infra/local/e2e, TestChaosCatchesACreateWithoutItsToken).
const omitCreateToken = false
