package pairing

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Files kept in the credentials directory.
const (
	KeyFile    = "device.key"
	CertFile   = "device.crt"
	BrokerFile = "broker_url"
)

// Credentials are what a device connects to the broker with.
type Credentials struct {
	Certificate tls.Certificate
	Leaf        *x509.Certificate
	BrokerURL   string
	// Obtained is when this process obtained the certificate from the
	// Pairing API; zero for one loaded from disk.
	Obtained time.Time
}

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	Client   *Client
	DeviceID string
	// Secret is the credentials secret; it is never logged.
	Secret string
	// Dir keeps the key (0600), the certificate and the broker URL; it is
	// created 0700. Empty keeps them in memory only.
	Dir    string
	Logger *slog.Logger
	// RenewFraction is the fraction of a certificate's validity after which
	// RenewAt says to renew it; 0 means 0.8.
	RenewFraction float64
}

// Manager obtains, keeps and renews the device's MQTT client certificate.
// It is safe for concurrent use.
type Manager struct {
	cfg ManagerConfig
	log *slog.Logger

	mu    sync.Mutex
	creds *Credentials
}

// NewManager returns a Manager; it does no I/O.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Client == nil {
		return nil, errors.New("pairing: manager without client")
	}
	if err := ValidateDeviceID(cfg.DeviceID); err != nil {
		return nil, err
	}
	if cfg.RenewFraction <= 0 || cfg.RenewFraction >= 1 {
		cfg.RenewFraction = 0.8
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{cfg: cfg, log: log}, nil
}

// identity is the certificate CN Astarte assigns: "<realm>/<device_id>".
func (m *Manager) identity() string { return m.cfg.Client.realm + "/" + m.cfg.DeviceID }

// Ensure returns usable credentials: the ones in memory or on disk when they
// belong to this device and have not expired, else new ones from the
// Pairing API. Stored credentials with a stored broker URL are returned
// without asking the Pairing API at all, as Astarte's guide has it: the
// device connects first, and goes to the Pairing API only when the broker
// refuses the certificate (Verify, Renew) or renewal is due. That keeps a
// fleet reconnecting after a broker outage off the Pairing API. Without a
// stored broker URL it asks the device info endpoint; a device whose
// credentials are inhibited then gets ErrCredentialsInhibited.
func (m *Manager) Ensure(ctx context.Context) (Credentials, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.creds == nil {
		if c, err := m.load(); err == nil {
			m.creds = c
		} else if !errors.Is(err, os.ErrNotExist) {
			m.log.Warn("discarding stored certificate", "reason", err)
		}
	}
	if m.creds != nil && m.usable(m.creds.Leaf) && m.creds.BrokerURL != "" {
		return *m.creds, nil
	}
	if m.creds != nil && m.usable(m.creds.Leaf) {
		if broker, err := m.brokerURL(ctx); err == nil {
			m.creds.BrokerURL = broker
			return *m.creds, nil
		} else if !IsRetryable(err) || m.creds.BrokerURL == "" {
			return Credentials{}, err
		}
		m.log.Warn("pairing API unreachable; using the stored broker URL")
		return *m.creds, nil
	}
	return m.obtain(ctx)
}

// usable reports whether a certificate is this device's and not expired.
func (m *Manager) usable(leaf *x509.Certificate) bool {
	return leaf != nil && leaf.Subject.CommonName == m.identity() && time.Now().Before(leaf.NotAfter)
}

// brokerURL asks the device info endpoint (which also reveals inhibition).
func (m *Manager) brokerURL(ctx context.Context) (string, error) {
	info, err := m.cfg.Client.Info(ctx, m.cfg.DeviceID, m.cfg.Secret)
	if err != nil {
		return "", err
	}
	if info.Status == StatusInhibited {
		return "", fmt.Errorf("%w: device %s", ErrCredentialsInhibited, m.cfg.DeviceID)
	}
	return info.BrokerURL, nil
}

// Renew discards the current certificate and obtains a new one (with a new
// key). The Pairing API revokes the previous certificate when it issues one,
// so call it only when needed.
func (m *Manager) Renew(ctx context.Context) (Credentials, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.obtain(ctx)
}

// Verify asks the Pairing API whether the current certificate is valid; it
// also checks the certificate locally (identity, expiry), which the API
// does not.
func (m *Manager) Verify(ctx context.Context) (Verification, error) {
	m.mu.Lock()
	creds := m.creds
	m.mu.Unlock()
	if creds == nil {
		return Verification{Cause: "MISSING"}, nil
	}
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: creds.Leaf.Raw})
	v, err := m.cfg.Client.Verify(ctx, m.cfg.DeviceID, m.cfg.Secret, pemCert)
	if err == nil && v.Valid && !m.usable(creds.Leaf) {
		v = Verification{Cause: "NAME_NOT_PERMITTED", Timestamp: v.Timestamp}
		if creds.Leaf.Subject.CommonName == m.identity() {
			v.Cause = "EXPIRED"
		}
	}
	return v, err
}

// RenewAt returns when a certificate should be renewed: after the
// configured fraction of its validity.
func (m *Manager) RenewAt(leaf *x509.Certificate) time.Time {
	validity := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotBefore.Add(time.Duration(float64(validity) * m.cfg.RenewFraction))
}

// obtain requests a certificate for a fresh key and persists both.
func (m *Manager) obtain(ctx context.Context) (Credentials, error) {
	broker, err := m.brokerURL(ctx)
	if err != nil {
		return Credentials{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Credentials{}, fmt.Errorf("pairing: key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:            pkix.Name{CommonName: m.identity()},
		SignatureAlgorithm: x509.ECDSAWithSHA256,
	}, key)
	if err != nil {
		return Credentials{}, fmt.Errorf("pairing: CSR: %w", err)
	}
	certPEM, err := m.cfg.Client.ObtainCertificate(ctx, m.cfg.DeviceID, m.cfg.Secret,
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))
	if err != nil {
		return Credentials{}, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return Credentials{}, fmt.Errorf("pairing: key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	creds, err := parseCredentials(certPEM, keyPEM)
	if err != nil {
		return Credentials{}, fmt.Errorf("%w: issued certificate: %v", ErrInvalidRequest, err)
	}
	if creds.Leaf.Subject.CommonName != m.identity() {
		return Credentials{}, fmt.Errorf("%w: issued certificate is for %q, not %q", ErrInvalidRequest, creds.Leaf.Subject.CommonName, m.identity())
	}
	creds.BrokerURL, creds.Obtained = broker, time.Now()
	if err := m.save(keyPEM, certPEM, broker); err != nil {
		return Credentials{}, err
	}
	m.creds = creds
	m.log.Info("obtained a client certificate", "not_after", creds.Leaf.NotAfter)
	return *creds, nil
}

func parseCredentials(certPEM, keyPEM []byte) (*Credentials, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &Credentials{Certificate: cert, Leaf: cert.Leaf}, nil
}

// load reads the stored key, certificate and broker URL.
func (m *Manager) load() (*Credentials, error) {
	if m.cfg.Dir == "" {
		return nil, os.ErrNotExist
	}
	certPEM, err := os.ReadFile(filepath.Join(m.cfg.Dir, CertFile))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(m.cfg.Dir, KeyFile))
	if err != nil {
		return nil, err
	}
	creds, err := parseCredentials(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("stored key and certificate do not match: %w", err)
	}
	if broker, err := os.ReadFile(filepath.Join(m.cfg.Dir, BrokerFile)); err == nil {
		creds.BrokerURL = string(broker)
	}
	return creds, nil
}

// save writes the key first, then the certificate, each atomically, so that
// a crash never leaves a certificate beside a key it does not match for
// long: load then discards the pair and pairs again.
func (m *Manager) save(keyPEM, certPEM []byte, broker string) error {
	if m.cfg.Dir == "" {
		return nil
	}
	if err := os.MkdirAll(m.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("pairing: %w", err)
	}
	if err := os.Chmod(m.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("pairing: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{KeyFile, keyPEM}, {CertFile, certPEM}, {BrokerFile, []byte(broker)}} {
		if err := writeFileAtomic(filepath.Join(m.cfg.Dir, f.name), f.data); err != nil {
			return err
		}
	}
	return nil
}

// writeFileAtomic writes data 0600 through a synced temporary file renamed
// into place.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("pairing: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("pairing: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("pairing: write %s: %w", filepath.Base(path), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("pairing: sync %s: %w", filepath.Base(path), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("pairing: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("pairing: %w", err)
	}
	return nil
}
