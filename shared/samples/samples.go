// Package samples gives tests the sample events of events/<function>/ (the ones
// `make invoke` runs), read from a package two directories below the repository root. It
// imports nothing heavy, so fuzz targets can seed their corpus from it without building the
// local cloud.
package samples

import (
	"os"
	"path/filepath"
	"testing"
)

// Read returns every sample of events/<function>/, by file name.
func Read(tb testing.TB, function string) map[string][]byte {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "events", function, "*.json"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no sample events in events/%s (%v)", function, err)
	}
	out := make(map[string][]byte, len(files))
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		out[filepath.Base(name)] = raw
	}
	return out
}
