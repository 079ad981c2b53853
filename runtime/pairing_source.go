package runtime

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/astarte-gen/astarte-gen/runtime/model"
	"github.com/astarte-gen/astarte-gen/runtime/pairing"
)

// pairingSource gets credentials from the Pairing API, keeping them in the
// store directory.
type pairingSource struct {
	cfg    *Config // the device's, never changed after New
	client *pairing.Client
	log    *slog.Logger
	// interfaces gives the initial introspection when the device registers
	// itself.
	interfaces func() []*model.Interface
	// m is created once the credentials secret is known (at once, or after
	// the device registered itself); only the owner loop sets it.
	m *pairing.Manager
	// transport is released after each use: the Pairing API is needed once
	// in a certificate's life, so an idle keep-alive connection would only
	// hold a file descriptor, and the transport memory (thousands of both in
	// a simulator).
	transport *lazyTransport

	mu   sync.Mutex
	leaf *x509.Certificate // the certificate in use
	// obtained is when the certificate in use was obtained (zero: loaded
	// from disk).
	obtained time.Time
	// inhibited: the Pairing API's last answer said so.
	inhibited bool
}

func newPairingSource(cfg *Config, log *slog.Logger, interfaces func() []*model.Interface) (credentialSource, error) {
	if cfg.PairingURL == "" {
		return nil, fmt.Errorf("%w: no pairing URL", ErrConfig)
	}
	transport := &lazyTransport{roots: cfg.RootCAs, insecure: cfg.InsecureSkipVerify}
	opts := []pairing.ClientOption{pairing.WithHTTPClient(&http.Client{Transport: transport, Timeout: 30 * time.Second})}
	if cfg.AllowInsecurePairing {
		opts = append(opts, pairing.AllowInsecureHTTP())
	}
	client, err := pairing.NewClient(cfg.PairingURL, cfg.Realm, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	s := &pairingSource{cfg: cfg, client: client, log: log, transport: transport, interfaces: interfaces}
	// Without a secret, the one the device stored when it registered itself
	// is read at Connect (register).
	if cfg.CredentialsSecret != "" || cfg.StoreDir == "" {
		if err := s.manage(cfg.CredentialsSecret); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	return s, nil
}

// manage creates the certificate manager for the device's secret.
func (s *pairingSource) manage(secret string) error {
	m, err := pairing.NewManager(pairing.ManagerConfig{
		Client: s.client, DeviceID: s.cfg.DeviceID, Secret: secret, Dir: s.cfg.StoreDir, Logger: s.log,
		RenewFraction: s.cfg.RenewFraction,
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.m = m
	s.mu.Unlock()
	return nil
}

// register obtains the credentials secret of a device that registers
// itself: the stored one, or a new one from the Pairing API.
func (s *pairingSource) register(ctx context.Context) error {
	introspection := map[string]pairing.Version{}
	for _, i := range s.interfaces() {
		introspection[i.Name] = pairing.Version{Major: i.Major, Minor: i.Minor}
	}
	secret, registered, err := pairing.EnsureSecret(ctx, s.client, s.cfg.StoreDir, s.cfg.DeviceID, pairing.Registration{
		Token: s.cfg.PairingToken, RealmKeyPEM: s.cfg.PairingRealmKey, Introspection: introspection, Approve: s.cfg.OnRegister,
	})
	if err != nil {
		return err
	}
	if registered {
		s.log.Info("device registered itself with the Pairing API; credentials secret stored", "dir", s.cfg.StoreDir)
	}
	return s.manage(secret)
}

// permanentPairing marks the pairing errors that retrying cannot fix.
func permanentPairing(err error) error {
	if errors.Is(err, pairing.ErrUnauthorized) || errors.Is(err, pairing.ErrDeviceNotFound) || errors.Is(err, pairing.ErrNotFound) ||
		errors.Is(err, pairing.ErrCredentialsInhibited) || errors.Is(err, pairing.ErrInsecureURL) ||
		errors.Is(err, pairing.ErrAlreadyRegistered) || errors.Is(err, pairing.ErrRegistrationRefused) || errors.Is(err, pairing.ErrKey) ||
		errors.Is(err, pairing.ErrNoSecret) {
		return permanentError{err}
	}
	return err
}

func (s *pairingSource) credentials(ctx context.Context) (tls.Certificate, string, error) {
	defer s.transport.release()
	if s.manager() == nil {
		if err := s.register(ctx); err != nil {
			return tls.Certificate{}, "", permanentPairing(err)
		}
	}
	c, err := s.m.Ensure(ctx)
	if err != nil {
		return tls.Certificate{}, "", permanentPairing(s.answered(err))
	}
	s.use(c)
	return c.Certificate, c.BrokerURL, nil
}

func (s *pairingSource) manager() *pairing.Manager {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m
}

// use records the certificate in use.
func (s *pairingSource) use(c pairing.Credentials) {
	s.mu.Lock()
	s.leaf, s.obtained, s.inhibited = c.Leaf, c.Obtained, false
	s.mu.Unlock()
}

// answered records whether a Pairing API error says the credentials are
// inhibited, and passes err on.
func (s *pairingSource) answered(err error) error {
	if errors.Is(err, pairing.ErrCredentialsInhibited) {
		s.mu.Lock()
		s.inhibited = true
		s.mu.Unlock()
	}
	return err
}

func (s *pairingSource) status() credentialStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := credentialStatus{inhibited: s.inhibited}
	if s.leaf != nil {
		cs.expiry = s.leaf.NotAfter
	}
	return cs
}

// renewAt is the renewal point of the certificate in use: the configured
// fraction of its validity. When that point had already passed when the
// Pairing API issued it (a validity window too short, or a NotBefore set
// far back for clock skew), the same fraction of what was left of its
// validity then: renewing at once would give a certificate just as due,
// and the device would renew without end.
func (s *pairingSource) renewAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leaf == nil {
		return time.Time{}
	}
	at := s.m.RenewAt(s.leaf)
	if s.obtained.IsZero() || at.After(s.obtained) {
		return at
	}
	validity := s.leaf.NotAfter.Sub(s.leaf.NotBefore)
	if validity <= 0 {
		return time.Time{}
	}
	fraction := float64(at.Sub(s.leaf.NotBefore)) / float64(validity)
	left := s.leaf.NotAfter.Sub(s.obtained)
	return s.obtained.Add(time.Duration(fraction * float64(left)))
}

func (s *pairingSource) renew(ctx context.Context) error {
	defer s.transport.release()
	c, err := s.m.Renew(ctx)
	if err != nil {
		return s.answered(err)
	}
	s.use(c)
	return nil
}

// rejected follows the Astarte guide: ask the Pairing API whether the
// certificate is still valid, and obtain a new one if it is not.
func (s *pairingSource) rejected(ctx context.Context, cause error) error {
	defer s.transport.release()
	v, err := s.m.Verify(ctx)
	if err != nil {
		return permanentPairing(s.answered(err))
	}
	if v.Valid {
		return fmt.Errorf("certificate valid per the Pairing API, yet refused: %w", cause)
	}
	s.log.Info("certificate no longer valid; pairing again", "cause", v.Cause)
	c, err := s.m.Renew(ctx)
	if err != nil {
		return permanentPairing(s.answered(err))
	}
	s.use(c)
	return nil
}

// lazyTransport is an http.RoundTripper that creates its http.Transport at
// the first request after a release, so that a device connecting with
// stored credentials never holds one.
type lazyTransport struct {
	roots    *x509.CertPool
	insecure bool
	mu       sync.Mutex
	t        *http.Transport
}

func (l *lazyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	l.mu.Lock()
	if l.t == nil {
		l.t = http.DefaultTransport.(*http.Transport).Clone()
		l.t.TLSClientConfig = &tls.Config{
			MinVersion:         tls.VersionTLS12,
			RootCAs:            l.roots,
			InsecureSkipVerify: l.insecure, //nolint:gosec // explicit opt-in for test instances
		}
	}
	t := l.t
	l.mu.Unlock()
	return t.RoundTrip(r)
}

// release closes the idle connections and drops the transport.
func (l *lazyTransport) release() {
	l.mu.Lock()
	t := l.t
	l.t = nil
	l.mu.Unlock()
	if t != nil {
		t.CloseIdleConnections()
	}
}
