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

	"github.com/astarte-gen/astarte-gen/runtime/pairing"
)

// pairingSource gets credentials from the Pairing API, keeping them in the
// store directory.
type pairingSource struct {
	m   *pairing.Manager
	log *slog.Logger
	// transport is closed after each use: the Pairing API is needed once
	// in a certificate's life, so an idle keep-alive connection would only
	// hold a file descriptor (thousands of them in a simulator).
	transport *http.Transport

	mu   sync.Mutex
	leaf *x509.Certificate // the certificate in use
	// obtained is when the certificate in use was obtained (zero: loaded
	// from disk).
	obtained time.Time
}

func newPairingSource(cfg Config, log *slog.Logger) (credentialSource, error) {
	if cfg.PairingURL == "" {
		return nil, fmt.Errorf("%w: no pairing URL", ErrConfig)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{
		MinVersion:         tls.VersionTLS12,
		RootCAs:            cfg.RootCAs,
		InsecureSkipVerify: cfg.InsecureSkipVerify, //nolint:gosec // explicit opt-in for test instances
	}
	opts := []pairing.ClientOption{pairing.WithHTTPClient(&http.Client{Transport: transport, Timeout: 30 * time.Second})}
	if cfg.AllowInsecurePairing {
		opts = append(opts, pairing.AllowInsecureHTTP())
	}
	client, err := pairing.NewClient(cfg.PairingURL, cfg.Realm, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	m, err := pairing.NewManager(pairing.ManagerConfig{
		Client: client, DeviceID: cfg.DeviceID, Secret: cfg.CredentialsSecret, Dir: cfg.StoreDir, Logger: log,
		RenewFraction: cfg.RenewFraction,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return &pairingSource{m: m, log: log, transport: transport}, nil
}

// permanentPairing marks the pairing errors that retrying cannot fix.
func permanentPairing(err error) error {
	if errors.Is(err, pairing.ErrUnauthorized) || errors.Is(err, pairing.ErrDeviceNotFound) || errors.Is(err, pairing.ErrNotFound) ||
		errors.Is(err, pairing.ErrCredentialsInhibited) || errors.Is(err, pairing.ErrInsecureURL) {
		return permanentError{err}
	}
	return err
}

func (s *pairingSource) credentials(ctx context.Context) (tls.Certificate, string, error) {
	defer s.transport.CloseIdleConnections()
	c, err := s.m.Ensure(ctx)
	if err != nil {
		return tls.Certificate{}, "", permanentPairing(err)
	}
	s.use(c)
	return c.Certificate, c.BrokerURL, nil
}

// use records the certificate in use.
func (s *pairingSource) use(c pairing.Credentials) {
	s.mu.Lock()
	s.leaf, s.obtained = c.Leaf, c.Obtained
	s.mu.Unlock()
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
	defer s.transport.CloseIdleConnections()
	c, err := s.m.Renew(ctx)
	if err != nil {
		return err
	}
	s.use(c)
	return nil
}

// rejected follows the Astarte guide: ask the Pairing API whether the
// certificate is still valid, and obtain a new one if it is not.
func (s *pairingSource) rejected(ctx context.Context, cause error) error {
	defer s.transport.CloseIdleConnections()
	v, err := s.m.Verify(ctx)
	if err != nil {
		return permanentPairing(err)
	}
	if v.Valid {
		return fmt.Errorf("certificate valid per the Pairing API, yet refused: %w", cause)
	}
	s.log.Info("certificate no longer valid; pairing again", "cause", v.Cause)
	c, err := s.m.Renew(ctx)
	if err != nil {
		return permanentPairing(err)
	}
	s.use(c)
	return nil
}
