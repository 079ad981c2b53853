package pairing

import (
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // UUIDv5 is defined on SHA-1 (RFC 4122 §4.3)
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidDeviceID is returned for text that is not a device ID.
var ErrInvalidDeviceID = errors.New("pairing: invalid device ID")

var idEncoding = base64.RawURLEncoding.Strict()

// RandomDeviceID returns a new random device ID: a UUIDv4 in raw URL-safe
// base64 (22 characters).
func RandomDeviceID() (string, error) {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return "", fmt.Errorf("pairing: %w", err)
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return idEncoding.EncodeToString(u[:]), nil
}

// DeviceIDFromNamespace derives a stable device ID from a namespace UUID
// (canonical text form) and unique data such as a serial number: the UUIDv5
// of (namespace, data) in raw URL-safe base64. The same inputs always give
// the same ID, so it survives reflashing.
func DeviceIDFromNamespace(namespace, data string) (string, error) {
	ns, err := hex.DecodeString(strings.ReplaceAll(namespace, "-", ""))
	if err != nil || len(ns) != 16 {
		return "", fmt.Errorf("pairing: namespace %q is not a UUID", namespace)
	}
	h := sha1.New() //nolint:gosec // see import
	h.Write(ns)
	h.Write([]byte(data))
	u := h.Sum(nil)[:16]
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80
	return idEncoding.EncodeToString(u), nil
}

// ValidateDeviceID checks that id is the canonical raw URL-safe base64 of
// exactly 16 bytes.
func ValidateDeviceID(id string) error {
	b, err := idEncoding.DecodeString(id)
	if err != nil || len(b) != 16 {
		return fmt.Errorf("%w %q: want 22 characters of URL-safe base64 encoding 16 bytes", ErrInvalidDeviceID, id)
	}
	return nil
}
