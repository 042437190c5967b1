package cloudtest

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// SampleEvents reads a function's sample events, events/<function>/*.json, from a test in
// functions/<function>. It fails the test unless the folder holds exactly the files named,
// so a sample added without a case in the test (or a case whose sample is gone) is caught.
func SampleEvents(t testing.TB, function string, names ...string) map[string][]byte {
	t.Helper()
	dir := filepath.Join("..", "..", "events", function)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, e := range entries {
		found = append(found, e.Name())
	}
	want := slices.Sorted(slices.Values(names))
	if !slices.Equal(found, want) {
		t.Fatalf("events/%s holds %v, the test has cases for %v: each sample needs exactly one case", function, found, want)
	}
	out := make(map[string][]byte, len(names))
	for _, name := range names {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = raw
	}
	return out
}
