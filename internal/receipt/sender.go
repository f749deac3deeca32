package receipt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Sender sends one receipt. It returns nil only once the mail server has
// taken the message (its 250 to the end of DATA).
type Sender interface {
	Send(ctx context.Context, r Receipt) error
}

// SMTPConfig is where and how receipts are submitted, as an SMTP_URL says.
type SMTPConfig struct {
	// Host and Port name the server; Addr joins them.
	Host string
	Port int
	// ImplicitTLS is smtps://: TLS from the first byte. Otherwise the
	// sender upgrades with STARTTLS whenever the server offers it.
	ImplicitTLS bool
	// Username and Password, when set, authenticate with AUTH PLAIN.
	Username string
	Password string
	// From is the envelope sender and the From header: a bare address.
	From string
}

// Addr is host:port.
func (c SMTPConfig) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// ParseSMTPURL reads an SMTP_URL:
//
//	smtp://[user:password@]host[:port]?from=shop@example.com
//	smtps://[user:password@]host[:port]?from=shop@example.com
//
// smtp:// defaults to port 25 and upgrades with STARTTLS when the server
// offers it; smtps:// (implicit TLS) to port 465. A password is sent only
// over TLS or to a loopback host (localhost, 127.0.0.0/8, ::1): with
// credentials, smtp:// to another host requires STARTTLS, and Send refuses
// to authenticate when the server does not offer it (as when an attacker
// strips it from the EHLO answer). Errors never repeat the password.
func ParseSMTPURL(raw string) (SMTPConfig, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error quotes the URL, password and all.
		return SMTPConfig{}, errors.New("SMTP_URL is not a URL: want smtp://[user:password@]host[:port]?from=address")
	}
	var c SMTPConfig
	switch u.Scheme {
	case "smtp":
		c.Port = 25
	case "smtps":
		c.Port, c.ImplicitTLS = 465, true
	default:
		return SMTPConfig{}, fmt.Errorf("SMTP_URL has scheme %q: want smtp:// or smtps://", u.Scheme)
	}
	c.Host = u.Hostname()
	if c.Host == "" {
		return SMTPConfig{}, errors.New("SMTP_URL names no host: want smtp://[user:password@]host[:port]?from=address")
	}
	if p := u.Port(); p != "" {
		port, err := strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return SMTPConfig{}, fmt.Errorf("SMTP_URL has port %q: want a number from 1 to 65535", p)
		}
		c.Port = port
	}
	if u.Path != "" && u.Path != "/" {
		return SMTPConfig{}, fmt.Errorf("SMTP_URL has a path %q: an SMTP server has none", u.Path)
	}
	if u.User != nil {
		c.Username = u.User.Username()
		c.Password, _ = u.User.Password()
		if c.Username == "" {
			return SMTPConfig{}, errors.New("SMTP_URL has a password but no user name")
		}
	}
	if c.From, err = smtpSender(u.Query()); err != nil {
		return SMTPConfig{}, err
	}
	return c, nil
}

// smtpSender is the sender SMTP_URL's query names in from=, its only
// parameter.
func smtpSender(query url.Values) (string, error) {
	for key := range query {
		if key != "from" {
			return "", fmt.Errorf("SMTP_URL has an unknown parameter %q: only from= is understood", key)
		}
	}
	from := query.Get("from")
	if from == "" {
		return "", errors.New("SMTP_URL says no sender: add ?from=shop@example.com")
	}
	if _, err := ValidateAddress(from); err != nil {
		return "", fmt.Errorf("SMTP_URL's from=: %w", err)
	}
	return from, nil
}

// isLoopback reports whether host is this machine, by name or address,
// without asking a resolver.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sendTimeout bounds one submission, connection to QUIT. It is well below
// claimLease, so a claim outlives the send it covers.
const sendTimeout = 20 * time.Second

// SMTP submits receipts to a mail server, one connection per receipt
// (receipts are few; a kept connection would need its own health checks),
// with go-mail's client: STARTTLS whenever the server offers it (its
// opportunistic policy) and required for a password sent to another
// machine, and AUTH PLAIN.
type SMTP struct {
	Config SMTPConfig
	// TLS is the base TLS configuration (nil: the system's roots); its
	// ServerName is set to Config.Host. Tests give their server's root.
	TLS *tls.Config
}

// Send submits r: it returns nil once the server answered 250 to the end
// of its DATA. A *gomail.SendError in the chain carries the server's code
// (ErrorCode) and whether it is temporary (IsTemp).
func (s SMTP) Send(ctx context.Context, r Receipt) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("sending the %s receipt of order %d to %s via %s: %w", r.Stage, r.OrderID, r.To, s.Config.Addr(), err)
		}
	}()
	msg, err := r.mail(s.Config.From)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	// The one connection, dialled here so that a cancelled ctx ends the
	// exchange at once (go-mail bounds each command by itself).
	var closeOnCancel func() bool
	defer func() {
		if closeOnCancel != nil {
			closeOnCancel()
		}
	}()
	tlsConfig := s.tlsConfig()
	dial := func(dialCtx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		var err error
		if s.Config.ImplicitTLS {
			conn, err = (&tls.Dialer{Config: tlsConfig}).DialContext(dialCtx, network, addr)
		} else {
			conn, err = (&net.Dialer{}).DialContext(dialCtx, network, addr)
		}
		if err == nil {
			closeOnCancel = context.AfterFunc(ctx, func() { conn.Close() })
		}
		return conn, err
	}
	options := []gomail.Option{
		gomail.WithPort(s.Config.Port), gomail.WithTLSConfig(tlsConfig), gomail.WithDialContextFunc(dial),
		gomail.WithTimeout(sendTimeout), gomail.WithHELO("localhost"),
	}
	switch {
	case s.Config.ImplicitTLS:
		options = append(options, gomail.WithSSL())
	case s.Config.Username != "" && !isLoopback(s.Config.Host):
		// A password for another machine goes only over TLS: no STARTTLS
		// offered (an attacker may strip it from the EHLO answer), no send.
		options = append(options, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default:
		options = append(options, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if s.Config.Username != "" {
		options = append(options, gomail.WithSMTPAuth(gomail.SMTPAuthPlain), gomail.WithUsername(s.Config.Username), gomail.WithPassword(s.Config.Password))
	}
	client, err := gomail.NewClient(s.Config.Host, options...)
	if err != nil {
		return err
	}
	err = client.DialAndSendWithContext(ctx, msg)
	if msg.IsDelivered() {
		// The server answered 250 to the end of DATA: it has the message,
		// and a failing RSET or QUIT after that changes nothing about it.
		return nil
	}
	return err
}

func (s SMTP) tlsConfig() *tls.Config {
	config := &tls.Config{}
	if s.TLS != nil {
		config = s.TLS.Clone()
	}
	config.ServerName = s.Config.Host
	return config
}

// Log "sends" receipts into the log, for a shop without a mail server
// (no SMTP_URL): the operator sees what the customer would have got.
type Log struct {
	Logger *slog.Logger
}

// Send logs r's headers and body at level Info.
func (l Log) Send(ctx context.Context, r Receipt) error {
	body, err := r.Body()
	if err != nil {
		return err
	}
	l.Logger.InfoContext(ctx, "receipt (no SMTP_URL, so logged, not sent)",
		slog.Int64("order_id", r.OrderID), slog.String("stage", string(r.Stage)),
		slog.String("to", r.To),
		slog.String("message_id", r.MessageID), slog.String("subject", r.Subject()),
		slog.String("body", body))
	return nil
}

// NewSender returns the sender that smtpURL configures: SMTP when it is
// set, else Log with logger. An invalid URL is an error, at startup.
func NewSender(smtpURL string, logger *slog.Logger) (Sender, error) {
	if smtpURL == "" {
		return Log{Logger: logger}, nil
	}
	config, err := ParseSMTPURL(smtpURL)
	if err != nil {
		return nil, err
	}
	return SMTP{Config: config}, nil
}
