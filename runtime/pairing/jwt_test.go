package pairing_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/astarte-gen/astarte-gen/runtime/pairing"
)

// RS256 tokens (RSA realm keys) verify with the realm's public key and carry
// the claims Pairing reads.
func TestAgentTokenRS256(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	token, err := pairing.AgentToken(keyPEM, []string{"POST::agent/devices"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q", token)
	}
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
		t.Errorf("signature does not verify: %v", err)
	}
	var h struct{ Alg string }
	var c struct {
		APA []string `json:"a_pa"`
		Iat int64
		Exp int64
	}
	if json.Unmarshal(header, &h) != nil || json.Unmarshal(payload, &c) != nil {
		t.Fatal("header or claims are not JSON")
	}
	if h.Alg != "RS256" || len(c.APA) != 1 || c.APA[0] != "POST::agent/devices" || c.Exp-c.Iat != 60 {
		t.Errorf("header %+v, claims %+v", h, c)
	}
	if _, err := pairing.AgentToken([]byte("not a key"), nil, 0); err == nil {
		t.Error("garbage key accepted")
	}
}
