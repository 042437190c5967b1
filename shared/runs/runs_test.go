package runs

import "testing"

func TestNamesAndNumbers(t *testing.T) {
	if got := Name("teardown", "abc", 3); got != "teardown-abc-3" {
		t.Fatal(got)
	}
	for exec, want := range map[string]int{
		"teardown-abc-3": 3,
		"arn:aws:states:us-east-1:1:execution:TeardownWorkflow-x:teardown-abc-12": 12,
		"provision-abc-2":  0, // another workflow's
		"teardown-abcd-2":  0, // another deployment's
		"teardown-abc-0":   0,
		"teardown-abc-two": 0,
		"":                 0,
	} {
		n, ok := Number("teardown", "abc", exec)
		if (want == 0) == ok || (ok && n != want) {
			t.Errorf("Number(%q) = %d %t, want %d", exec, n, ok, want)
		}
	}
	if got := ExecutionArn("arn:aws:states:r:1:stateMachine:M", "n"); got != "arn:aws:states:r:1:execution:M:n" {
		t.Fatal(got)
	}
	if got := NameOf("arn:aws:states:r:1:execution:M:n"); got != "n" || NameOf("n") != "n" {
		t.Fatal(got)
	}
	if got := MachineOf("arn:aws:states:r:1:execution:M:n"); got != "arn:aws:states:r:1:stateMachine:M" || MachineOf("n") != "" {
		t.Fatal(got)
	}
}
