package astartetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"sync"
	"time"
)

// CA is a throwaway certificate authority. It signs the device certificates
// that the Pairing API hands out (forcing the subject CN, as Astarte's CFSSL
// profile does) and the loopback server certificate that the Pairing API and
// the broker present.
type CA struct {
	mu     sync.Mutex
	key    *ecdsa.PrivateKey
	cert   *x509.Certificate
	serial int64
	server tls.Certificate
}

// NewCA creates a CA and its server certificate for 127.0.0.1, ::1 and
// localhost.
func NewCA() (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("astartetest: CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "astartetest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("astartetest: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("astartetest: CA certificate: %w", err)
	}
	ca := &CA{key: key, cert: cert, serial: 1}
	if ca.server, err = ca.serverCertificate(); err != nil {
		return nil, err
	}
	return ca, nil
}

// Certificate returns the CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Pool returns a pool holding only the CA certificate: give it to devices as
// their root CAs, and to servers as the client CAs.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// ServerCertificate returns the loopback server certificate.
func (ca *CA) ServerCertificate() tls.Certificate { return ca.server }

func (ca *CA) nextSerial() *big.Int {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	ca.serial++
	return big.NewInt(ca.serial)
}

func (ca *CA) serverCertificate() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("astartetest: server key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: ca.nextSerial(),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("astartetest: server certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// SignCSR issues a client certificate for the CSR's public key with subject
// CN forced to cn, valid from now for lifetime.
func (ca *CA) SignCSR(csr *x509.CertificateRequest, cn string, lifetime time.Duration) (*x509.Certificate, error) {
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("astartetest: CSR signature: %w", err)
	}
	now := time.Now()
	// X.509 times have second precision: NotBefore is rounded down (at
	// most a second in the past, enough skew for loopback tests) and
	// NotAfter up, so that a client renewing after a fraction of the
	// validity counted from NotBefore never finds a seconds-long test
	// certificate due for renewal the moment it is issued. Long-lived
	// certificates are backdated a minute more for clock skew, as CAs do.
	notBefore := now.Truncate(time.Second)
	if lifetime >= 10*time.Minute {
		notBefore = notBefore.Add(-time.Minute)
	}
	notAfter := now.Add(lifetime + time.Second - 1).Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber: ca.nextSerial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("astartetest: sign: %w", err)
	}
	return x509.ParseCertificate(der)
}
