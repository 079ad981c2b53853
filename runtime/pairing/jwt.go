package pairing

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// ErrKey is returned for a private key the token builder cannot use.
var ErrKey = errors.New("pairing: unusable private key")

// AgentToken builds a JWT for the Pairing agent API, signed with the realm's
// private key (PEM: PKCS#8, SEC 1 EC or PKCS#1 RSA): RS256 for RSA, and
// ES256/ES384/ES512 for P-256/P-384/P-521. claims are the a_pa
// authorizations ("METHOD_REGEX::PATH_REGEX"); none means all (".*::.*").
// ttl > 0 adds an expiry.
func AgentToken(keyPEM []byte, claims []string, ttl time.Duration) (string, error) {
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return "", err
	}
	alg, hash, err := algorithm(key)
	if err != nil {
		return "", err
	}
	if len(claims) == 0 {
		claims = []string{".*::.*"}
	}
	now := time.Now()
	body := map[string]any{"a_pa": claims, "iat": now.Unix()}
	if ttl > 0 {
		body["exp"] = now.Add(ttl).Unix()
	}
	header, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	payload, _ := json.Marshal(body)
	signing := b64(header) + "." + b64(payload)
	sig, err := sign(key, hash, []byte(signing))
	if err != nil {
		return "", err
	}
	return signing + "." + b64(sig), nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func parsePrivateKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrKey)
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, fmt.Errorf("%w: unsupported key type %T", ErrKey, k)
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("%w: not a PKCS#8, EC or RSA private key", ErrKey)
}

func algorithm(key crypto.Signer) (string, crypto.Hash, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return "RS256", crypto.SHA256, nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return "ES256", crypto.SHA256, nil
		case elliptic.P384():
			return "ES384", crypto.SHA384, nil
		case elliptic.P521():
			return "ES512", crypto.SHA512, nil
		}
	}
	return "", 0, fmt.Errorf("%w: %T", ErrKey, key)
}

func digest(h crypto.Hash, msg []byte) []byte {
	switch h {
	case crypto.SHA384:
		d := sha512.Sum384(msg)
		return d[:]
	case crypto.SHA512:
		d := sha512.Sum512(msg)
		return d[:]
	}
	d := sha256.Sum256(msg)
	return d[:]
}

// sign makes a JWS signature: PKCS#1 v1.5 for RSA, and for ECDSA the
// fixed-size r||s concatenation JWS requires (not ASN.1 DER).
func sign(key crypto.Signer, h crypto.Hash, msg []byte) ([]byte, error) {
	d := digest(h, msg)
	if k, ok := key.(*ecdsa.PrivateKey); ok {
		r, s, err := ecdsa.Sign(rand.Reader, k, d)
		if err != nil {
			return nil, fmt.Errorf("pairing: sign: %w", err)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out, nil
	}
	sig, err := key.Sign(rand.Reader, d, h)
	if err != nil {
		return nil, fmt.Errorf("pairing: sign: %w", err)
	}
	return sig, nil
}
