// Package smtptest runs a real SMTP server (github.com/emersion/go-smtp)
// on a free loopback port for tests, and keeps every message it accepts.
// The shop under test may run in the test's process or as a separate one:
// give it URL's SMTP_URL either way.
package smtptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// TLSMode is how the server offers TLS.
type TLSMode int

const (
	// NoTLS: plain SMTP, no STARTTLS.
	NoTLS TLSMode = iota
	// StartTLS: plain SMTP that offers STARTTLS.
	StartTLS
	// ImplicitTLS: TLS from the first byte (smtps://).
	ImplicitTLS
)

// Options configure a Server. The zero value is a plain server that takes
// mail from anyone.
type Options struct {
	TLS TLSMode
	// Username and Password, when set, are required (AUTH PLAIN, which the
	// server offers even without TLS, since it listens on loopback only).
	Username string
	Password string
}

// Message is one message the server accepted.
type Message struct {
	From string   // the envelope sender (MAIL FROM)
	To   []string // the envelope recipients (RCPT TO)
	// Header is the message's header; MessageID its Message-ID.
	Header    mail.Header
	MessageID string
	// Body is the body, decoded when it is quoted-printable; Raw the whole
	// message as it came.
	Body string
	Raw  []byte
	// TLS tells whether the session was encrypted; User who authenticated.
	TLS  bool
	User string
}

// Server is a running SMTP server.
type Server struct {
	server *smtp.Server
	// listener is closed by Close too: Serve, started in a goroutine,
	// might not have registered it with server yet.
	listener net.Listener
	addr     *net.TCPAddr
	roots    *x509.CertPool
	options  Options

	mu       sync.Mutex
	messages []Message
	refusal  *smtp.SMTPError
	stall    *stall
	changed  chan struct{} // closed and replaced at each new message
}

// Start starts a server on 127.0.0.1 at a free port, closed when the test
// ends.
func Start(t testing.TB, options Options) *Server {
	t.Helper()
	s, err := Listen(options)
	if err != nil {
		t.Fatalf("starting the SMTP server: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Listen starts a server on 127.0.0.1 at a free port; Close stops it.
func Listen(options Options) (*Server, error) {
	s := &Server{options: options, changed: make(chan struct{})}
	s.server = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, encrypted := c.TLSConnectionState()
		return &session{server: s, tls: encrypted}, nil
	}))
	s.server.Domain = "smtptest.localhost"
	s.server.AllowInsecureAuth = true
	s.server.ReadTimeout = time.Minute
	s.server.WriteTimeout = time.Minute
	s.server.ErrorLog = log.New(io.Discard, "", 0)
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if options.TLS != NoTLS {
		config, roots, err := selfSigned()
		if err != nil {
			listener.Close()
			return nil, err
		}
		s.roots = roots
		if options.TLS == ImplicitTLS {
			listener = tls.NewListener(listener, config)
		} else {
			s.server.TLSConfig = config
		}
	}
	s.listener = listener
	s.addr = listener.Addr().(*net.TCPAddr)
	go s.server.Serve(listener)
	return s, nil
}

// Close stops the server and drops its connections.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.stall != nil {
		s.stall.free()
	}
	s.mu.Unlock()
	err := s.server.Close()
	if errors.Is(err, smtp.ErrServerClosed) {
		err = nil
	}
	if lerr := s.listener.Close(); lerr != nil && !errors.Is(lerr, net.ErrClosed) && err == nil {
		err = lerr
	}
	return err
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.addr.String() }

// URL is an SMTP_URL for this server, with the sender address from and
// the server's credentials.
func (s *Server) URL(from string) string {
	u := url.URL{Scheme: "smtp", Host: s.Addr(), RawQuery: url.Values{"from": {from}}.Encode()}
	if s.options.TLS == ImplicitTLS {
		u.Scheme = "smtps"
	}
	if s.options.Username != "" {
		u.User = url.UserPassword(s.options.Username, s.options.Password)
	}
	return u.String()
}

// RootCAs holds the certificate of a TLS server's own authority (nil for
// NoTLS), for the client's tls.Config.
func (s *Server) RootCAs() *x509.CertPool { return s.roots }

// Refuse makes the server answer the end of every DATA with err (for
// example &smtp.SMTPError{Code: 451, Message: "try again"}) and keep
// nothing, until Refuse(nil).
func (s *Server) Refuse(err *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refusal = err
}

// stall holds the server's answers to the end of DATA.
type stall struct {
	arrived     chan struct{} // closed when the first message is held
	arrivedOnce sync.Once
	release     chan struct{} // closed to answer
	releaseOnce sync.Once
}

func (st *stall) free() { st.releaseOnce.Do(func() { close(st.release) }) }

// Stall makes the server, from now on, wait before it answers the end of
// a DATA (the message is in, the 250 not yet sent) until release is
// called; arrived is closed when a first message is waiting. Then it keeps
// the messages and answers, as a real server that has taken a message
// delivers it even if its client is gone by then. It is for killing a
// client between the server's taking a message and its knowing so.
func (s *Server) Stall() (arrived <-chan struct{}, release func()) {
	st := &stall{arrived: make(chan struct{}), release: make(chan struct{})}
	s.mu.Lock()
	s.stall = st
	s.mu.Unlock()
	return st.arrived, func() {
		s.mu.Lock()
		if s.stall == st {
			s.stall = nil
		}
		s.mu.Unlock()
		st.free()
	}
}

// Messages returns the messages accepted so far, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// ByMessageID groups the messages accepted so far by Message-ID: a key
// with two messages is a message sent twice.
func (s *Server) ByMessageID() map[string][]Message {
	byID := map[string][]Message{}
	for _, m := range s.Messages() {
		byID[m.MessageID] = append(byID[m.MessageID], m)
	}
	return byID
}

// WaitFor waits until the server has accepted at least n messages, or for
// timeout, and returns those accepted by then; the error says how many
// came when fewer than n did.
func (s *Server) WaitFor(n int, timeout time.Duration) ([]Message, error) {
	messages, ok := s.waitUntil(timeout, func(m []Message) bool { return len(m) >= n })
	if !ok {
		return messages, fmt.Errorf("the SMTP server got %d messages in %s, want %d", len(messages), timeout, n)
	}
	return messages, nil
}

// WaitForDistinct is WaitFor counting messages by their Message-ID: a
// message sent again (a sender killed between the server's acceptance and
// its own mark) counts once, so that it cannot stand in for one not yet
// sent.
func (s *Server) WaitForDistinct(n int, timeout time.Duration) ([]Message, error) {
	messages, ok := s.waitUntil(timeout, func(m []Message) bool { return distinct(m) >= n })
	if !ok {
		return messages, fmt.Errorf("the SMTP server got %d distinct messages (%d in all) in %s, want %d",
			distinct(messages), len(messages), timeout, n)
	}
	return messages, nil
}

// distinct counts the messages' Message-IDs.
func distinct(messages []Message) int {
	ids := map[string]bool{}
	for _, m := range messages {
		ids[m.MessageID] = true
	}
	return len(ids)
}

// waitUntil waits until done holds of the messages accepted, or for
// timeout, and returns them; ok says whether done held.
func (s *Server) waitUntil(timeout time.Duration, done func([]Message) bool) (messages []Message, ok bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		messages, changed := append([]Message(nil), s.messages...), s.changed
		s.mu.Unlock()
		if done(messages) {
			return messages, true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return messages, false
		}
	}
}

// accept keeps m, or answers with the refusal set; first it waits out a
// stall.
func (s *Server) accept(m Message) error {
	s.mu.Lock()
	st := s.stall
	s.mu.Unlock()
	if st != nil {
		st.arrivedOnce.Do(func() { close(st.arrived) })
		<-st.release
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refusal != nil {
		return s.refusal
	}
	s.messages = append(s.messages, m)
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

// session is one SMTP connection's transaction.
type session struct {
	server *Server
	tls    bool
	user   string
	from   string
	to     []string
}

var _ smtp.AuthSession = (*session)(nil)

func (se *session) AuthMechanisms() []string {
	if se.server.options.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (se *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain || se.server.options.Username == "" {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != se.server.options.Username || password != se.server.options.Password {
			return smtp.ErrAuthFailed
		}
		se.user = username
		return nil
	}), nil
}

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	if se.server.options.Username != "" && se.user == "" {
		return smtp.ErrAuthRequired
	}
	se.from = from
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	se.to = append(se.to, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	parsed, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "unreadable message: " + err.Error()}
	}
	var body []byte
	if strings.EqualFold(parsed.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body, err = io.ReadAll(quotedprintable.NewReader(parsed.Body))
	} else {
		body, err = io.ReadAll(parsed.Body)
	}
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "unreadable body: " + err.Error()}
	}
	return se.server.accept(Message{
		From: se.from, To: append([]string(nil), se.to...),
		Header: parsed.Header, MessageID: parsed.Header.Get("Message-ID"),
		Body: string(body), Raw: raw, TLS: se.tls, User: se.user,
	})
}

func (se *session) Reset() { se.from, se.to = "", nil }

func (se *session) Logout() error { return nil }

// selfSigned makes a certificate for 127.0.0.1 and localhost, signed by
// itself, and the pool that trusts it.
func selfSigned() (*tls.Config, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "smtptest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, roots, nil
}
