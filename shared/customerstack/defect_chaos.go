//go:build chaosdefect

package customerstack

// omitCreateToken: a deliberately broken test build (see defect.go).
const omitCreateToken = true
