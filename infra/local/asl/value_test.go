package asl

import (
	"strings"
	"testing"
)

func TestParseJSONRoundTrip(t *testing.T) {
	for _, doc := range []string{
		`{"b":1,"a":[true,false,null,-0.5e10,"x"],"c":{}}`,
		`"quote \" backslash \\ newline \n tab \t control \u0001 unicode é 𝄞 <>&"`,
		`12345678901234567890123`,
		`[]`,
	} {
		v, err := ParseJSON([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		again, err := ParseJSON([]byte(MarshalJSON(v)))
		if err != nil || !Equal(v, again) {
			t.Errorf("%s does not survive a round trip: %s", doc, MarshalJSON(v))
		}
	}
	if got := MarshalJSON(MustParseJSON(`"\ud834\udd1e<\u00e9>"`)); got != `"𝄞<é>"` {
		t.Errorf("escapes decode to %s; surrogate pairs must join and nothing beyond JSON's needs may be escaped", got)
	}
	if got := MarshalJSON(MustParseJSON(`{"z":1,"a":2,"z":3}`)); got != `{"z":3,"a":2}` {
		t.Errorf("a repeated member gives %s, want its first place and last value", got)
	}
}

func TestParseJSONRefusals(t *testing.T) {
	for _, doc := range []string{``, `{`, `{"a" 1}`, `[1,]`, `01`, `1.`, `"\x"`, `"a` + "\n" + `"`, `{"a":1} x`, `tru`, `"\ud834"x`, "\"\xff\""} {
		if _, err := ParseJSON([]byte(doc)); err == nil {
			t.Errorf("%q was accepted", doc)
		}
	}
	deep := strings.Repeat("[", maxJSONDepth+2) + strings.Repeat("]", maxJSONDepth+2)
	if _, err := ParseJSON([]byte(deep)); err == nil {
		t.Errorf("a document nested %d deep was accepted", maxJSONDepth+2)
	}
}

func TestEqualComparesNumbersByValue(t *testing.T) {
	if !Equal(Number("1"), Number("1.0")) || !Equal(Number("1e2"), Number("100")) {
		t.Error("numbers with the same value differ")
	}
	if Equal(Number("12345678901234567890"), Number("12345678901234567891")) {
		t.Error("large integers that float64 cannot tell apart compare equal")
	}
	if !Equal(MustParseJSON(`{"a":1,"b":[2]}`), MustParseJSON(`{"b":[2.0],"a":1}`)) {
		t.Error("objects with the same members in another order differ")
	}
}
