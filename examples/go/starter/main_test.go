package main

import "testing"

func TestRemovesByForce(t *testing.T) {
	for line, want := range map[string]bool{
		"rm -rf /":                              true,
		"rm -fr build":                          true,
		"rm -r -f build":                        true,
		"rm -Rf build":                          true,
		"rm build -rf":                          true,
		"sudo /bin/rm --recursive --force data": true,
		"ls; rm -rf ~":                          true,
		"rm a; rm -rf b":                        true,
		"rm -f notes.txt":                       false,
		"rm -r build":                           false,
		"ls -rf":                                false,
		"echo rm-rf":                            false,
		"":                                      false,
	} {
		if got := removesByForce(line); got != want {
			t.Errorf("removesByForce(%q) = %v, want %v", line, got, want)
		}
	}
}
