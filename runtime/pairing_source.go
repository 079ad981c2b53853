package runtime

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
)

// TEMPORARY until runtime/pairing lands.
type pairingSource struct{}

func newPairingSource(cfg Config, log *slog.Logger) (credentialSource, error) {
	return pairingSource{}, nil
}

func (pairingSource) credentials(ctx context.Context) (tls.Certificate, string, error) {
	return tls.Certificate{}, "", errors.New("pairing not implemented yet")
}

func (pairingSource) rejected(ctx context.Context, cause error) error { return nil }
