package web

import (
	"encoding/json"
	"testing"
)

// TestMaskPersonal: the customer's email and address are masked at any
// depth of a recorded value, the rest kept as it was written.
func TestMaskPersonal(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`{"Email":"alice@example.com","Client":"203.0.113.7","Quantity":1}`:     `{"Client":"203.0.•••","Email":"a•••@example.com","Quantity":1}`,
		`{"Order":{"Email":"bob@shop.example","TotalCents":12345678901234567}}`: `{"Order":{"Email":"b•••@shop.example","TotalCents":12345678901234567}}`,
		`[{"client":"2001:db8:1:2::7"},{"email":"nobody"},{"Email":""}]`:        `[{"client":"2001:db8:•••"},{"email":"•••"},{"Email":""}]`,
		`{"Client":"session ABC"}`: `{"Client":"•••"}`,
		`"just text"`:              `"just text"`,
		`null`:                     `null`,
		`{not json`:                `"•••"`,
	} {
		got := maskPersonal(json.RawMessage(in))
		if string(got) != want {
			t.Errorf("maskPersonal(%s) = %s, want %s", in, got, want)
		}
	}
}
