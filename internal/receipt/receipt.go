package receipt

import (
	"bytes"
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode"

	gomail "github.com/wneessen/go-mail"

	"github.com/widgetstore/widgetstore/internal/shop"
)

// Stage is the moment of an order's life that a receipt tells of.
type Stage string

const (
	StagePaid       Stage = "paid"
	StageDispatched Stage = "dispatched"
	StageRefunded   Stage = "refunded"
)

// ParseStage validates a stage's name.
func ParseStage(s string) (Stage, error) {
	switch Stage(s) {
	case StagePaid, StageDispatched, StageRefunded:
		return Stage(s), nil
	}
	return "", fmt.Errorf("unknown receipt stage %q: want paid, dispatched or refunded", s)
}

// Receipt is what one email tells a customer. Money is integer cents.
type Receipt struct {
	OrderID int64  `json:"order_id"`
	Stage   Stage  `json:"stage"`
	To      string `json:"to"`
	Lines   []Line `json:"lines"`
	// TotalCents is what the order cost; RefundCents what was given back
	// (a refunded receipt's).
	TotalCents  int64 `json:"total_cents"`
	RefundCents int64 `json:"refund_cents,omitempty"`
	// At is when the order reached Stage.
	At time.Time `json:"at"`
	// OrderURL is the customer's page of the order; optional.
	OrderURL string `json:"order_url,omitempty"`
	// MessageID is the email's Message-ID, brackets included; Enqueue
	// fixes it, so that every attempt to send the receipt sends the same
	// message.
	MessageID string `json:"message_id"`
}

// Line is one product of an order.
type Line struct {
	Product   string `json:"product"`
	Quantity  int    `json:"quantity"`
	UnitCents int64  `json:"unit_cents"`
}

// SubtotalCents is the line's price.
func (l Line) SubtotalCents() int64 { return int64(l.Quantity) * l.UnitCents }

// validate checks what Enqueue stores, so that what it stores can be sent.
// The address is checked only as far as a message's safety needs (see
// checkRecipient), not by ValidateAddress: Enqueue runs in the transaction
// of an order's change, which must not fail for an address that a checkout
// accepted, perhaps under an older or looser rule. An address that the
// mail server then refuses stays unsent, with its error, in Pending.
func (r Receipt) validate() error {
	if r.OrderID <= 0 {
		return fmt.Errorf("receipt for order %d: the order id must be positive", r.OrderID)
	}
	if _, err := ParseStage(string(r.Stage)); err != nil {
		return fmt.Errorf("receipt for order %d: %w", r.OrderID, err)
	}
	if err := checkRecipient(r.To); err != nil {
		return fmt.Errorf("receipt for order %d: %w", r.OrderID, err)
	}
	if r.At.IsZero() {
		return fmt.Errorf("receipt for order %d: no time given", r.OrderID)
	}
	return nil
}

// checkRecipient refuses what could not be a message's one recipient: an
// empty address, one with a display name or several addresses, and any
// control character, such as the CR LF that would start a header of its
// own.
func checkRecipient(to string) error {
	if strings.ContainsFunc(to, unicode.IsControl) {
		return fmt.Errorf("the recipient %q holds a control character", to)
	}
	if addr, err := mail.ParseAddress(to); err != nil || addr.Name != "" || addr.Address != to {
		return fmt.Errorf("the recipient %q is not one bare email address", to)
	}
	return nil
}

// maxAddressLength is RFC 5321's limit on a forward path (256 octets with
// its brackets), so that every server takes the address.
const maxAddressLength = 254

// ValidateAddress checks a customer's email address, for the API that takes
// it: one bare address
// (local@domain, no display name, no comment, no angle brackets), in ASCII,
// of at most 254 characters, and returns it. The error is a shop.ErrInvalid
// that says what is wrong, for the API to answer 400. A quoted local part
// ("a b"@example.com) is refused too: net/mail would unquote it, and the
// address is kept exactly as given. Enqueue asks less (checkRecipient), so
// this rule may be tightened without failing orders placed before.
func ValidateAddress(s string) (string, error) {
	if s == "" {
		return "", shop.Errorf(shop.ErrInvalid, "the email address is empty")
	}
	if len(s) > maxAddressLength {
		return "", shop.Errorf(shop.ErrInvalid, "the email address is %d characters long; at most %d are allowed", len(s), maxAddressLength)
	}
	for _, c := range s {
		if c <= ' ' || c >= 0x7f {
			// Also what keeps CR and LF, and so extra headers, out of To.
			return "", shop.Errorf(shop.ErrInvalid, "the email address %q may hold only printable ASCII, without spaces", s)
		}
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return "", shop.Errorf(shop.ErrInvalid, "%q is not an email address of the form name@example.com", s)
	}
	local, domain, _ := strings.Cut(s, "@")
	if len(local) > 64 {
		return "", shop.Errorf(shop.ErrInvalid, "the email address's part before the @ is %d characters long; at most 64 are allowed", len(local))
	}
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, "[") {
		return "", shop.Errorf(shop.ErrInvalid, "the email address %q must end in a domain name such as example.com", s)
	}
	return s, nil
}

// FormatCents writes an amount of integer cents as dollars, as the shop's
// page does: 123456 is "$1,234.56", -5 is "-$0.05".
func FormatCents(cents int64) string {
	sign := ""
	// Through uint64, so that the most negative int64 has a magnitude.
	magnitude := uint64(cents)
	if cents < 0 {
		sign = "-"
		magnitude = -magnitude
	}
	dollars := strconv.FormatUint(magnitude/100, 10)
	var grouped strings.Builder
	for i, digit := range dollars {
		if i > 0 && (len(dollars)-i)%3 == 0 {
			grouped.WriteByte(',')
		}
		grouped.WriteRune(digit)
	}
	return fmt.Sprintf("%s$%s.%02d", sign, grouped.String(), magnitude%100)
}

// Subject is the email's subject line.
func (r Receipt) Subject() string {
	switch r.Stage {
	case StageDispatched:
		return fmt.Sprintf("Your order #%d is on its way", r.OrderID)
	case StageRefunded:
		return fmt.Sprintf("Your order #%d has been refunded", r.OrderID)
	default:
		return fmt.Sprintf("Receipt for your order #%d", r.OrderID)
	}
}

var bodyTemplate = template.Must(template.New("receipt").Funcs(template.FuncMap{
	"money": FormatCents,
}).Parse(`Hello,
{{if eq .Stage "paid"}}
thank you for your order #{{.OrderID}}. We received your payment of {{money .TotalCents}} on {{.At.UTC.Format "2 January 2006 at 15:04 MST"}}.
{{- else if eq .Stage "dispatched"}}
your order #{{.OrderID}} left our warehouse on {{.At.UTC.Format "2 January 2006 at 15:04 MST"}}.
{{- else}}
we have refunded {{money .RefundCents}} for your order #{{.OrderID}} on {{.At.UTC.Format "2 January 2006 at 15:04 MST"}}. It could not be completed, and you keep nothing to pay for it. Depending on your bank, the money may take a few days to show on your account.
{{- end}}
{{range .Lines}}
  {{.Quantity}} x {{.Product}} at {{money .UnitCents}}: {{money .SubtotalCents}}
{{- end}}

  Total: {{money .TotalCents}}
{{- if .RefundCents}}
  Refunded: {{money .RefundCents}}
{{- end}}
{{if .OrderURL}}
Your order: {{.OrderURL}}
{{end}}
Thank you for shopping with us.
`))

// Body is the email's plain text.
func (r Receipt) Body() (string, error) {
	var b strings.Builder
	if err := bodyTemplate.Execute(&b, r); err != nil {
		return "", fmt.Errorf("rendering the receipt for order %d: %w", r.OrderID, err)
	}
	return b.String(), nil
}

// Message is the whole email, headers and body, with CRLF line ends, as
// SMTP's DATA takes it.
func (r Receipt) Message(from string) ([]byte, error) {
	m, err := r.mail(from)
	if err != nil {
		return nil, err
	}
	var msg bytes.Buffer
	if _, err := m.WriteTo(&msg); err != nil {
		return nil, fmt.Errorf("writing the receipt for order %d: %w", r.OrderID, err)
	}
	return msg.Bytes(), nil
}

// mail is the email of r, sent from from. go-mail writes its MIME: the body
// quoted-printable UTF-8, since product names may be anything, and every
// header encoded as it needs. The Message-ID and the Date are r's own, so
// that every attempt to send r sends the same message.
func (r Receipt) mail(from string) (*gomail.Msg, error) {
	if r.MessageID == "" {
		return nil, fmt.Errorf("receipt for order %d (%s) has no Message-ID: Enqueue gives it one", r.OrderID, r.Stage)
	}
	// Checked again here, since a Receipt may come from elsewhere than
	// Enqueue, and its To becomes a header.
	if err := checkRecipient(r.To); err != nil {
		return nil, err
	}
	body, err := r.Body()
	if err != nil {
		return nil, err
	}
	m := gomail.NewMsg(gomail.WithNoDefaultUserAgent(), gomail.WithCharset(gomail.CharsetUTF8), gomail.WithEncoding(gomail.EncodingQP))
	if err := m.From(from); err != nil {
		return nil, fmt.Errorf("receipt for order %d: the sender %q: %w", r.OrderID, from, err)
	}
	if err := m.To(r.To); err != nil {
		return nil, fmt.Errorf("receipt for order %d: the recipient %q: %w", r.OrderID, r.To, err)
	}
	m.Subject(r.Subject())
	m.SetDateWithValue(r.At)
	m.SetMessageIDWithValue(strings.TrimSuffix(strings.TrimPrefix(r.MessageID, "<"), ">")) // it adds the brackets
	m.SetBodyString(gomail.TypeTextPlain, body)
	return m, nil
}
