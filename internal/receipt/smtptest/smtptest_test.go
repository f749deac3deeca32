package smtptest_test

import (
	"net/smtp"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/widgetstore/widgetstore/internal/receipt/smtptest"
)

func send(t *testing.T, server *smtptest.Server, messageID, body string) error {
	t.Helper()
	msg := "From: shop@example.com\r\nTo: ann@example.com\r\nMessage-ID: " + messageID +
		"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + body + "\r\n"
	return smtp.SendMail(server.Addr(), nil, "shop@example.com", []string{"ann@example.com"}, []byte(msg))
}

func TestServerKeepsWhatItAccepts(t *testing.T) {
	server := smtptest.Start(t, smtptest.Options{})
	waited := make(chan error, 1)
	go func() {
		_, err := server.WaitFor(2, time.Minute)
		waited <- err
	}()
	if err := send(t, server, "<one@example.com>", "caf=C3=A9"); err != nil {
		t.Fatal(err)
	}
	server.Refuse(&gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "busy"})
	if err := send(t, server, "<two@example.com>", "refused"); err == nil || !strings.Contains(err.Error(), "451") {
		t.Errorf("sending while refused: %v, want the 451", err)
	}
	server.Refuse(nil)
	if err := send(t, server, "<one@example.com>", "again"); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatal(err)
	}

	messages := server.Messages()
	if len(messages) != 2 {
		t.Fatalf("the server kept %d messages, want 2 (the refused one not)", len(messages))
	}
	m := messages[0]
	if m.From != "shop@example.com" || len(m.To) != 1 || m.To[0] != "ann@example.com" || m.Body != "café\r\n" || m.TLS {
		t.Errorf("the first message is %+v; want from shop@example.com to ann@example.com, body café decoded, without TLS", m)
	}
	byID := server.ByMessageID()
	if len(byID) != 1 || len(byID["<one@example.com>"]) != 2 {
		t.Errorf("ByMessageID has %d ids, <one@example.com> %d times; want 1 id, twice", len(byID), len(byID["<one@example.com>"]))
	}
	if got, err := server.WaitFor(3, 10*time.Millisecond); err == nil || len(got) != 2 {
		t.Errorf("WaitFor(3) with 2 messages = %d messages, %v; want 2 and an error", len(got), err)
	}
	// The copy of <one@example.com> counts once: WaitFor(2) was met, WaitForDistinct(2) is not.
	if got, err := server.WaitForDistinct(2, 10*time.Millisecond); err == nil || len(got) != 2 {
		t.Errorf("WaitForDistinct(2) with one message twice = %d messages, %v; want 2 and an error", len(got), err)
	}
	if _, err := server.WaitForDistinct(1, 10*time.Millisecond); err != nil {
		t.Errorf("WaitForDistinct(1) with one message twice: %v", err)
	}
}

func TestServerRequiresItsCredentials(t *testing.T) {
	server := smtptest.Start(t, smtptest.Options{Username: "shop", Password: "secret"})
	if err := send(t, server, "<one@example.com>", "no auth"); err == nil || !strings.Contains(err.Error(), "authenticate") {
		t.Errorf("sending without AUTH: %v, want the server to ask for it", err)
	}
	if want := "smtp://shop:secret@" + server.Addr() + "?from=shop%40example.com"; server.URL("shop@example.com") != want {
		t.Errorf("URL = %q, want %q", server.URL("shop@example.com"), want)
	}
}
