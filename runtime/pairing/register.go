package pairing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SecretFile is the file, in a device's credentials directory, that keeps
// the credentials secret a device obtained by registering itself (0600).
const SecretFile = "credentials_secret"

// Registration lets a device register itself with the Pairing API on its
// first start.
type Registration struct {
	// Token is an agent JWT allowing POST::agent/devices (claim a_pa).
	Token string
	// RealmKeyPEM, used when Token is empty, is the realm's private key: a
	// token is signed with it for one minute. It grants every agent right,
	// so it belongs on a provisioning station rather than on a device.
	RealmKeyPEM []byte
	// Introspection is sent as the initial introspection (may be nil).
	Introspection map[string]Version
	// Approve, when set, is called just before the device registers; an
	// error refuses the registration and is returned (wrapped).
	Approve func(ctx context.Context, deviceID string) error
}

// ErrNoSecret is returned by EnsureSecret when dir holds no credentials
// secret and reg has neither a token nor a realm key to register with.
var ErrNoSecret = errors.New("pairing: no credentials secret stored, and no token or realm key to register the device with")

// ErrRegistrationRefused wraps the error of a Registration.Approve that
// refused to register.
var ErrRegistrationRefused = errors.New("pairing: registration refused by the application")

// EnsureSecret returns the device's credentials secret from dir, or, when
// dir has none, registers the device with reg, stores the secret in dir
// (0600) and returns it; registered says it did. A device the Pairing API
// already knows as registered (it obtained credentials before) gets an
// error wrapping ErrAlreadyRegistered that says how to recover.
func EnsureSecret(ctx context.Context, c *Client, dir, deviceID string, reg Registration) (secret string, registered bool, err error) {
	path := filepath.Join(dir, SecretFile)
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), false, nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("pairing: stored credentials secret: %w", err)
	}
	if reg.Token == "" && len(reg.RealmKeyPEM) == 0 {
		return "", false, fmt.Errorf("%w (in %s)", ErrNoSecret, dir)
	}
	if reg.Approve != nil {
		if err := reg.Approve(ctx, deviceID); err != nil {
			return "", false, fmt.Errorf("%w: %w", ErrRegistrationRefused, err)
		}
	}
	if reg.Token != "" {
		secret, err = c.Register(ctx, reg.Token, deviceID, reg.Introspection)
	} else {
		secret, err = c.RegisterWithKey(ctx, reg.RealmKeyPEM, deviceID, reg.Introspection)
	}
	if errors.Is(err, ErrAlreadyRegistered) {
		return "", false, fmt.Errorf("%w: device %s has obtained credentials before, but %s holds no credentials secret for it: "+
			"give the device its secret, or unregister it in Astarte so that it can register again", err, deviceID, dir)
	}
	if err != nil {
		return "", false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("pairing: %w", err)
	}
	if err := writeFileAtomic(path, []byte(secret)); err != nil {
		return "", false, err
	}
	return secret, true, nil
}
