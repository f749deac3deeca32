package receipt_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/widgetstore/widgetstore/internal/receipt"
	"github.com/widgetstore/widgetstore/internal/receipt/smtptest"
	"github.com/widgetstore/widgetstore/internal/shop"
)

func TestValidateAddress(t *testing.T) {
	valid := []string{"ann@example.com", "a.b+tag@mail.example.co.uk", "x_y-z@sub-domain.example"}
	for _, s := range valid {
		got, err := receipt.ValidateAddress(s)
		if err != nil || got != s {
			t.Errorf("ValidateAddress(%q) = %q, %v; want it back, nil", s, got, err)
		}
	}
	invalid := []struct{ address, says string }{
		{"", "empty"},
		{"ann", "not an email address"},
		{"ann@", "not an email address"},
		{"@example.com", "not an email address"},
		{"Ann <ann@example.com>", "printable ASCII"},
		{"<ann@example.com>", "not an email address"},
		{"ann@example.com (Ann)", "printable ASCII"},
		{"ann@example.com\r\nBcc: all@example.com", "printable ASCII"},
		{"ann@example.com,bob@example.com", "not an email address"},
		{`"ann b"@example.com`, "printable ASCII"},
		{`"ann"@example.com`, "not an email address"},
		{"ann@localhost", "domain name"},
		{"ann@[127.0.0.1]", "domain name"},
		{"anné@example.com", "printable ASCII"},
		{strings.Repeat("a", 65) + "@example.com", "before the @"},
		{"a@" + strings.Repeat("b", 250) + ".com", "at most 254"},
	}
	for _, test := range invalid {
		_, err := receipt.ValidateAddress(test.address)
		if !errors.Is(err, shop.ErrInvalid) || !strings.Contains(err.Error(), test.says) {
			t.Errorf("ValidateAddress(%q) = %v; want a shop.ErrInvalid saying %q", test.address, err, test.says)
		}
	}
}

func TestFormatCents(t *testing.T) {
	tests := map[int64]string{
		0: "$0.00", 5: "$0.05", 9999: "$99.99", 100000: "$1,000.00", 123456789: "$1,234,567.89",
		-5: "-$0.05", -123456: "-$1,234.56", -9223372036854775808: "-$92,233,720,368,547,758.08",
	}
	for cents, want := range tests {
		if got := receipt.FormatCents(cents); got != want {
			t.Errorf("FormatCents(%d) = %q, want %q", cents, got, want)
		}
	}
}

func TestParseSMTPURL(t *testing.T) {
	valid := []struct {
		url  string
		want receipt.SMTPConfig
	}{
		{"smtp://mail.example.com?from=shop@example.com",
			receipt.SMTPConfig{Host: "mail.example.com", Port: 25, From: "shop@example.com"}},
		{"smtp://user:p%40ss@mail.example.com:587/?from=shop@example.com",
			receipt.SMTPConfig{Host: "mail.example.com", Port: 587, Username: "user", Password: "p@ss", From: "shop@example.com"}},
		{"smtps://user:secret@mail.example.com?from=shop@example.com",
			receipt.SMTPConfig{Host: "mail.example.com", Port: 465, ImplicitTLS: true, Username: "user", Password: "secret", From: "shop@example.com"}},
		{"smtp://[::1]:2525?from=shop@example.com",
			receipt.SMTPConfig{Host: "::1", Port: 2525, From: "shop@example.com"}},
	}
	for _, test := range valid {
		got, err := receipt.ParseSMTPURL(test.url)
		if err != nil || got != test.want {
			t.Errorf("ParseSMTPURL(%q) = %+v, %v; want %+v", test.url, got, err, test.want)
		}
	}
	invalid := []struct{ url, says string }{
		{"", "scheme"},
		{"mail.example.com:25", "scheme"},
		{"http://mail.example.com?from=shop@example.com", `scheme "http"`},
		{"smtp://?from=shop@example.com", "no host"},
		{"smtp://mail.example.com:0?from=shop@example.com", `port "0"`},
		{"smtp://mail.example.com:99999?from=shop@example.com", `port "99999"`},
		{"smtp://mail.example.com/inbox?from=shop@example.com", `path "/inbox"`},
		{"smtp://mail.example.com?from=shop@example.com&tls=off", `unknown parameter "tls"`},
		{"smtp://mail.example.com", "no sender"},
		{"smtp://mail.example.com?from=Shop+<shop@example.com>", "from="},
		{"smtp://:secret@mail.example.com?from=shop@example.com", "no user name"},
		{"smtp://user:secret@mail.example.com:bad?from=shop@example.com", "not a URL"},
	}
	for _, test := range invalid {
		_, err := receipt.ParseSMTPURL(test.url)
		if err == nil || !strings.Contains(err.Error(), test.says) {
			t.Errorf("ParseSMTPURL(%q) = %v; want an error saying %q", test.url, err, test.says)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseSMTPURL(%q)'s error shows the password: %v", test.url, err)
		}
	}
}

// paidReceipt is a receipt of two lines, one with a name beyond ASCII, as
// Enqueue would hand it to a sender.
func paidReceipt() receipt.Receipt {
	return receipt.Receipt{
		OrderID: 42, Stage: receipt.StagePaid, To: "ann@example.com",
		Lines: []receipt.Line{
			{Product: "Premium Quality Widget", Quantity: 2, UnitCents: 9999},
			{Product: "Widget Crème ✓", Quantity: 1, UnitCents: 123456},
		},
		TotalCents: 2*9999 + 123456,
		At:         time.Date(2026, 11, 27, 21, 30, 0, 0, time.UTC),
		OrderURL:   "https://shop.example.com/orders/abc",
		MessageID:  "<receipt-42-paid.test@shop.example.com>",
	}
}

func TestSMTPSendsTheReceipt(t *testing.T) {
	server := smtptest.Start(t, smtptest.Options{})
	config, err := receipt.ParseSMTPURL(server.URL("shop@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	r := paidReceipt()
	if err := (receipt.SMTP{Config: config}).Send(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	messages := server.Messages()
	if len(messages) != 1 {
		t.Fatalf("the server got %d messages, want 1", len(messages))
	}
	m := messages[0]
	if m.From != "shop@example.com" || len(m.To) != 1 || m.To[0] != "ann@example.com" {
		t.Errorf("envelope from %q to %q, want shop@example.com to [ann@example.com]", m.From, m.To)
	}
	headers := map[string]string{
		"Subject":                   "Receipt for your order #42",
		"Message-Id":                "<receipt-42-paid.test@shop.example.com>",
		"Date":                      "Fri, 27 Nov 2026 21:30:00 +0000",
		"Content-Transfer-Encoding": "quoted-printable",
	}
	for name, want := range headers {
		if got := m.Header.Get(name); got != want {
			t.Errorf("header %s: %q, want %q", name, got, want)
		}
	}
	// Addresses and the content type as a reader parses them: how the
	// writer spells them (<ann@example.com>, UTF-8) is its own.
	for name, want := range map[string]string{"From": "shop@example.com", "To": "ann@example.com"} {
		if addr, err := mail.ParseAddress(m.Header.Get(name)); err != nil || addr.Address != want || addr.Name != "" {
			t.Errorf("header %s: %q, want the bare address %s", name, m.Header.Get(name), want)
		}
	}
	if mediaType, params, err := mime.ParseMediaType(m.Header.Get("Content-Type")); err != nil || mediaType != "text/plain" || !strings.EqualFold(params["charset"], "utf-8") {
		t.Errorf("header Content-Type: %q, want text/plain in UTF-8", m.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		"payment of $1,434.54 on 27 November 2026 at 21:30 UTC",
		"2 x Premium Quality Widget at $99.99: $199.98",
		"1 x Widget Crème ✓ at $1,234.56: $1,234.56",
		"Total: $1,434.54",
		"Your order: https://shop.example.com/orders/abc",
	} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("the body lacks %q:\n%s", want, m.Body)
		}
	}
	if strings.Contains(m.Body, "Refunded") {
		t.Errorf("a paid receipt speaks of a refund:\n%s", m.Body)
	}
	for _, line := range bytes.Split(m.Raw, []byte("\r\n")) {
		if len(line) > 78 {
			t.Errorf("a line of the message is %d bytes long, more than RFC 5322's 78: %q", len(line), line)
		}
	}
}

func TestRefundedReceiptSaysTheRefund(t *testing.T) {
	r := paidReceipt()
	r.Stage, r.RefundCents = receipt.StageRefunded, r.TotalCents
	body, err := r.Body()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"we have refunded $1,434.54 for your order #42", "Refunded: $1,434.54"} {
		if !strings.Contains(body, want) {
			t.Errorf("the body lacks %q:\n%s", want, body)
		}
	}
	if got, want := r.Subject(), "Your order #42 has been refunded"; got != want {
		t.Errorf("subject %q, want %q", got, want)
	}
}

func TestSMTPOverTLSWithAuth(t *testing.T) {
	for _, mode := range []smtptest.TLSMode{smtptest.StartTLS, smtptest.ImplicitTLS} {
		server := smtptest.Start(t, smtptest.Options{TLS: mode, Username: "shop", Password: "secret"})
		config, err := receipt.ParseSMTPURL(server.URL("shop@example.com"))
		if err != nil {
			t.Fatal(err)
		}
		trusting := receipt.SMTP{Config: config, TLS: &tls.Config{RootCAs: server.RootCAs()}}
		if err := trusting.Send(context.Background(), paidReceipt()); err != nil {
			t.Fatalf("TLS mode %d: %v", mode, err)
		}
		if m := server.Messages(); len(m) != 1 || !m[0].TLS || m[0].User != "shop" {
			t.Fatalf("TLS mode %d: the server got %+v, want one message over TLS from user shop", mode, m)
		}

		// The server's certificate is its own: the system's roots refuse it.
		if err := (receipt.SMTP{Config: config}).Send(context.Background(), paidReceipt()); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("TLS mode %d, untrusted certificate: %v, want a certificate error", mode, err)
		}
		wrong := trusting
		wrong.Config.Password = "wrong"
		if err := wrong.Send(context.Background(), paidReceipt()); err == nil || !strings.Contains(err.Error(), "535") {
			t.Errorf("TLS mode %d, wrong password: %v, want the server's 535", mode, err)
		}
		if n := len(server.Messages()); n != 1 {
			t.Errorf("TLS mode %d: the server has %d messages after the failed sends, want still 1", mode, n)
		}
	}
}

func TestSMTPWithoutServer(t *testing.T) {
	server := smtptest.Start(t, smtptest.Options{})
	config, err := receipt.ParseSMTPURL(server.URL("shop@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	server.Close()
	err = (receipt.SMTP{Config: config}).Send(context.Background(), paidReceipt())
	if err == nil || !strings.Contains(err.Error(), "sending the paid receipt of order 42 to ann@example.com via "+server.Addr()) {
		t.Errorf("sending to a closed server: %v, want an error naming the receipt and the server", err)
	}
}

func TestLogSenderLogsTheReceipt(t *testing.T) {
	var logged bytes.Buffer
	sender, err := receipt.NewSender("", slog.New(slog.NewJSONHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := sender.Send(context.Background(), paidReceipt()); err != nil {
		t.Fatal(err)
	}
	var line map[string]any
	if err := json.Unmarshal(logged.Bytes(), &line); err != nil {
		t.Fatalf("the log is not one JSON line: %v\n%s", err, logged.Bytes())
	}
	want := map[string]any{
		"order_id": 42.0, "stage": "paid", "to": "ann@example.com",
		"message_id": "<receipt-42-paid.test@shop.example.com>", "subject": "Receipt for your order #42",
	}
	for key, value := range want {
		if line[key] != value {
			t.Errorf("logged %s = %v, want %v", key, line[key], value)
		}
	}
	if body, _ := line["body"].(string); !strings.Contains(body, "Total: $1,434.54") {
		t.Errorf("the logged body lacks the total: %q", body)
	}
}

func TestNewSender(t *testing.T) {
	sender, err := receipt.NewSender("smtps://mail.example.com?from=shop@example.com", slog.Default())
	if smtpSender, ok := sender.(receipt.SMTP); err != nil || !ok || !smtpSender.Config.ImplicitTLS {
		t.Errorf("NewSender(smtps URL) = %#v, %v; want an SMTP sender with implicit TLS", sender, err)
	}
	if _, err := receipt.NewSender("smtp://mail.example.com", slog.Default()); err == nil {
		t.Error("NewSender took an SMTP_URL without from=")
	}
}

func TestMessageNeedsItsID(t *testing.T) {
	r := paidReceipt()
	r.MessageID = ""
	if _, err := r.Message("shop@example.com"); err == nil || !strings.Contains(err.Error(), "no Message-ID") {
		t.Errorf("Message without an id: %v, want an error saying so", err)
	}
	r = paidReceipt()
	r.To = "ann@example.com\r\nBcc: all@example.com"
	if _, err := r.Message("shop@example.com"); err == nil || !strings.Contains(err.Error(), "control character") {
		t.Errorf("Message to an address with CR LF: %v, want an error saying so", err)
	}
	r = paidReceipt()
	msg, err := r.Message("shop@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mail.ReadMessage(bytes.NewReader(msg)); err != nil {
		t.Errorf("the message does not parse: %v", err)
	}
}
