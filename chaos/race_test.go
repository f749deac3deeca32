//go:build race

package chaos_test

// Under -race the shop under test is built with the race detector too.
func init() { buildFlags = append(buildFlags, "-race") }
