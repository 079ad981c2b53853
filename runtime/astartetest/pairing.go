package astartetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// pairingSide is the Pairing API half of Astarte: an HTTPS server and the
// device registry.
type pairingSide struct {
	pmu          sync.Mutex
	devices      map[string]*deviceRecord
	realmKey     *ecdsa.PrivateKey
	certLifetime time.Duration
	httpServer   *httptest.Server
	brokerURL    string // handed out instead of our broker's, when set
	pairingAddr  string // where the Pairing API listens; empty: a free port
	pairingConns atomic.Int64
}

// deviceRecord is what the fake Pairing API knows of a device.
type deviceRecord struct {
	secret    string
	confirmed bool
	inhibited bool
	serial    string          // current certificate, decimal serial
	revoked   map[string]bool // superseded or revoked serials
	requests  map[string]int  // counts per endpoint, for tests
}

// ErrAlreadyRegistered is returned when registering a device that has
// already paired (Astarte's own wording; the API body says "Device already
// registered").
var ErrAlreadyRegistered = errors.New("device already registered")

// DefaultCertificateLifetime is the validity of issued client certificates.
const DefaultCertificateLifetime = 24 * time.Hour

func (a *Astarte) startPairing() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("astartetest: realm key: %w", err)
	}
	a.devices, a.realmKey, a.certLifetime = map[string]*deviceRecord{}, key, DefaultCertificateLifetime
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/{realm}/agent/devices", a.realmScoped(a.handleRegister))
	mux.HandleFunc("DELETE /v1/{realm}/agent/devices/{id}", a.realmScoped(a.handleUnregister))
	mux.HandleFunc("GET /v1/{realm}/devices/{id}", a.realmScoped(a.deviceAuth(a.handleInfo)))
	mux.HandleFunc("POST /v1/{realm}/devices/{id}/protocols/astarte_mqtt_v1/credentials", a.realmScoped(a.deviceAuth(a.handleCredentials)))
	mux.HandleFunc("POST /v1/{realm}/devices/{id}/protocols/astarte_mqtt_v1/credentials/verify", a.realmScoped(a.deviceAuth(a.handleVerify)))
	srv := httptest.NewUnstartedServer(mux)
	if a.pairingAddr != "" {
		ln, err := net.Listen("tcp", a.pairingAddr)
		if err != nil {
			return fmt.Errorf("astartetest: pairing API on %s: %w", a.pairingAddr, err)
		}
		_ = srv.Listener.Close()
		srv.Listener = ln
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{a.ca.ServerCertificate()}, MinVersion: tls.VersionTLS12}
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		switch state {
		case http.StateNew:
			a.pairingConns.Add(1)
		case http.StateClosed, http.StateHijacked:
			a.pairingConns.Add(-1)
		}
	}
	srv.StartTLS()
	a.httpServer = srv
	return nil
}

func (a *Astarte) stopPairing() {
	if a.httpServer != nil {
		a.httpServer.Close()
	}
}

// PairingConnections returns how many client connections the Pairing API
// has open now (devices should not keep one once paired).
func (a *Astarte) PairingConnections() int { return int(a.pairingConns.Load()) }

// PairingURL returns the Pairing API base URL (devices append
// /v1/<realm>/...).
func (a *Astarte) PairingURL() string { return a.httpServer.URL }

// RealmPrivateKeyPEM returns the realm's private key (PKCS#8 PEM, EC
// P-256), to sign agent tokens (ES256) as an operator would.
func (a *Astarte) RealmPrivateKeyPEM() []byte {
	der, _ := x509.MarshalPKCS8PrivateKey(a.realmKey)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// SetBrokerURL makes the Pairing API hand out another broker (one that
// trusts CA(), such as a mosquitto in an integration test) instead of the
// built-in one.
func (a *Astarte) SetBrokerURL(url string) {
	a.pmu.Lock()
	defer a.pmu.Unlock()
	a.brokerURL = url
}

// handedOutBroker is the broker URL of device info answers; pmu is held.
func (a *Astarte) handedOutBroker() string {
	if a.brokerURL != "" {
		return a.brokerURL
	}
	return a.BrokerURL()
}

// RegisterDevice registers a device, as an agent would, and returns its
// credentials secret. As in Astarte, registering again before the device
// paired issues a new secret (the old one stops working); after pairing it
// fails with ErrAlreadyRegistered.
func (a *Astarte) RegisterDevice(deviceID string) (string, error) {
	a.pmu.Lock()
	defer a.pmu.Unlock()
	secret, err := a.register(deviceID)
	if err != nil {
		return "", fmt.Errorf("astartetest: device %s: %w", deviceID, err)
	}
	return secret, nil
}

// registeredSecret returns the secret of a registered device, registering
// it first when unknown.
func (a *Astarte) registeredSecret(deviceID string) (string, error) {
	a.pmu.Lock()
	defer a.pmu.Unlock()
	if d, ok := a.devices[deviceID]; ok {
		return d.secret, nil
	}
	secret, err := a.register(deviceID)
	if err != nil {
		return "", fmt.Errorf("astartetest: device %s: %w", deviceID, err)
	}
	return secret, nil
}

func (a *Astarte) register(deviceID string) (string, error) {
	if d, ok := a.devices[deviceID]; ok && d.confirmed {
		return "", ErrAlreadyRegistered
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	secret := base64.StdEncoding.EncodeToString(raw)
	a.devices[deviceID] = &deviceRecord{secret: secret, revoked: map[string]bool{}, requests: map[string]int{}}
	return secret, nil
}

// InhibitCredentials blocks (or unblocks) credential requests of a device.
func (a *Astarte) InhibitCredentials(deviceID string, inhibit bool) {
	a.withDevice(deviceID, func(d *deviceRecord) { d.inhibited = inhibit })
}

// UnregisterDevice forgets a device: its secret and certificates stop
// working.
func (a *Astarte) UnregisterDevice(deviceID string) {
	a.pmu.Lock()
	defer a.pmu.Unlock()
	delete(a.devices, deviceID)
}

// SetCertificateLifetime sets the validity of certificates issued from now
// on (short lifetimes test expiry and rotation).
func (a *Astarte) SetCertificateLifetime(d time.Duration) {
	a.pmu.Lock()
	defer a.pmu.Unlock()
	a.certLifetime = d
}

// RevokeCertificates revokes every certificate issued to a device so far:
// the broker refuses them and verify reports REVOKED. (Astarte itself does
// not check revocation; the fake does so that tests can exercise the
// device's recovery.)
func (a *Astarte) RevokeCertificates(deviceID string) {
	a.withDevice(deviceID, func(d *deviceRecord) {
		if d.serial != "" {
			d.revoked[d.serial] = true
		}
	})
}

// PairingRequests returns how many requests of each kind ("info",
// "credentials", "verify") a device made.
func (a *Astarte) PairingRequests(deviceID string) map[string]int {
	out := map[string]int{}
	a.withDevice(deviceID, func(d *deviceRecord) {
		for k, v := range d.requests {
			out[k] = v
		}
	})
	return out
}

func (a *Astarte) withDevice(deviceID string, fn func(*deviceRecord)) {
	a.pmu.Lock()
	defer a.pmu.Unlock()
	if d, ok := a.devices[deviceID]; ok {
		fn(d)
	}
}

// brokerAllows reports whether a device may connect to the broker with the
// certificate of the given serial: nil when the device is registered and the
// certificate is its current, unrevoked one.
func (a *Astarte) brokerAllows(deviceID string, serial string) error {
	a.pmu.Lock()
	defer a.pmu.Unlock()
	d, ok := a.devices[deviceID]
	switch {
	case !ok:
		return errors.New("device not registered")
	case d.revoked[serial]:
		return errors.New("certificate revoked")
	case serial != d.serial:
		return errors.New("certificate superseded")
	}
	return nil
}

// writeJSON writes {"data": data} or an error body.
func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func writeError(w http.ResponseWriter, status int, detail string) {
	writeJSON(w, status, map[string]any{"errors": map[string]string{"detail": detail}})
}

func writeFieldError(w http.ResponseWriter, field, msg string) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"errors": map[string][]string{field: {msg}}})
}

// realmScoped answers 403 for another realm, as Astarte does.
func (a *Astarte) realmScoped(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("realm") != a.realm {
			writeError(w, http.StatusForbidden, "Forbidden")
			return
		}
		h(w, r)
	}
}

var bearerPattern = regexp.MustCompile(`(?i)^bearer:?\s+(.+)$`)

// deviceAuth checks the credentials secret: 401 without a well-formed
// header, 403 for a wrong one, 404 for an unknown device.
func (a *Astarte) deviceAuth(h func(http.ResponseWriter, *http.Request, *deviceRecord)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		m := bearerPattern.FindStringSubmatch(r.Header.Get("Authorization"))
		if m == nil {
			writeError(w, http.StatusUnauthorized, "Unauthorized")
			return
		}
		a.pmu.Lock()
		defer a.pmu.Unlock()
		d, ok := a.devices[r.PathValue("id")]
		switch {
		case !ok:
			writeError(w, http.StatusNotFound, "Device not found")
		case m[1] != d.secret:
			writeError(w, http.StatusForbidden, "Forbidden")
		default:
			h(w, r, d)
		}
	}
}

// readData decodes a {"data": …} request body.
func readData(r *http.Request, out any) error {
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20)).Decode(&env); err != nil || env.Data == nil {
		return errors.New("missing data")
	}
	return json.Unmarshal(env.Data, out)
}

func (a *Astarte) handleRegister(w http.ResponseWriter, r *http.Request) {
	if !a.agentAuthorized(w, r) {
		return
	}
	var req struct {
		HwID string `json:"hw_id"`
	}
	if err := readData(r, &req); err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	if req.HwID == "" {
		writeFieldError(w, "hw_id", "can't be blank")
		return
	}
	if b, err := base64.RawURLEncoding.DecodeString(req.HwID); err != nil || len(b) < 16 {
		writeFieldError(w, "hw_id", "is not a valid base64 encoded 128 bits id")
		return
	}
	a.pmu.Lock()
	secret, err := a.register(req.HwID)
	a.pmu.Unlock()
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "Device already registered")
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"data": map[string]string{"credentials_secret": secret}})
}

func (a *Astarte) handleUnregister(w http.ResponseWriter, r *http.Request) {
	if !a.agentAuthorized(w, r) {
		return
	}
	a.pmu.Lock()
	_, ok := a.devices[r.PathValue("id")]
	delete(a.devices, r.PathValue("id"))
	a.pmu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Device not found")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *Astarte) handleInfo(w http.ResponseWriter, _ *http.Request, d *deviceRecord) {
	d.requests["info"]++
	status := "pending"
	switch {
	case d.inhibited:
		status = "inhibited"
	case d.confirmed:
		status = "confirmed"
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
		"version": "1.4.0-astartetest", "status": status,
		"protocols": map[string]any{"astarte_mqtt_v1": map[string]string{"broker_url": a.handedOutBroker()}},
	}})
}

func (a *Astarte) handleCredentials(w http.ResponseWriter, r *http.Request, d *deviceRecord) {
	d.requests["credentials"]++
	var req struct {
		CSR string `json:"csr"`
	}
	if err := readData(r, &req); err != nil || req.CSR == "" {
		writeFieldError(w, "csr", "can't be blank")
		return
	}
	block, rest := pem.Decode([]byte(req.CSR))
	if block == nil || block.Type != "CERTIFICATE REQUEST" || strings.TrimSpace(string(rest)) != "" {
		writeFieldError(w, "csr", "is not a valid PEM CSR")
		return
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		writeFieldError(w, "csr", "is not a valid PEM CSR")
		return
	}
	if d.inhibited {
		// Astarte has no HTTP mapping for this case (spec §2.7); the fake
		// answers 403 with a detail naming the inhibition.
		writeError(w, http.StatusForbidden, "Credentials request inhibited")
		return
	}
	cert, err := a.ca.SignCSR(csr, a.realm+"/"+r.PathValue("id"), a.certLifetime)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if d.serial != "" {
		d.revoked[d.serial] = true // superseded
	}
	d.serial, d.confirmed = cert.SerialNumber.String(), true
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	writeJSON(w, http.StatusCreated, map[string]any{"data": map[string]string{"client_crt": string(certPEM)}})
}

// timeLayout is the Pairing API's timestamp format in verify answers.
const timeLayout = "2006-01-02 15:04:05.000Z07:00"

func (a *Astarte) handleVerify(w http.ResponseWriter, r *http.Request, d *deviceRecord) {
	d.requests["verify"]++
	var req struct {
		ClientCrt string `json:"client_crt"`
	}
	if err := readData(r, &req); err != nil || req.ClientCrt == "" {
		writeFieldError(w, "client_crt", "can't be blank")
		return
	}
	now := time.Now().UTC()
	answer := map[string]any{"valid": false, "timestamp": now.Format(timeLayout), "details": nil}
	cert, cause := a.verifyCertificate(req.ClientCrt, now, d)
	if cause == "" {
		answer["valid"], answer["until"] = true, cert.NotAfter.UTC().Format(timeLayout)
	} else {
		answer["cause"] = cause
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": answer})
}

// verifyCertificate does the path validation Astarte does, plus the
// revocation check of the fake; it returns "" for a valid certificate.
func (a *Astarte) verifyCertificate(certPEM string, now time.Time, d *deviceRecord) (*x509.Certificate, string) {
	block, _ := pem.Decode([]byte(certPEM))
	if block == nil {
		return nil, "INVALID"
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, "INVALID"
	}
	_, err = cert.Verify(x509.VerifyOptions{Roots: a.ca.Pool(), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return cert, "EXPIRED"
	case errors.As(err, new(x509.UnknownAuthorityError)):
		return cert, "INVALID_ISSUER"
	case err != nil:
		return cert, "INVALID"
	case d.revoked[cert.SerialNumber.String()]:
		return cert, "REVOKED"
	}
	return cert, ""
}

// agentAuthorized checks an agent JWT: ES256 signed with the realm key, and
// an a_pa claim whose anchored method and path regexes allow the request.
func (a *Astarte) agentAuthorized(w http.ResponseWriter, r *http.Request) bool {
	m := bearerPattern.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		writeError(w, http.StatusUnauthorized, "Missing authorization token")
		return false
	}
	claims, err := a.verifyJWT(m[1])
	if err != nil {
		writeError(w, http.StatusUnauthorized, "Invalid JWT token")
		return false
	}
	path := strings.TrimPrefix(r.URL.Path, "/v1/"+a.realm+"/")
	for _, auth := range claims.APA {
		parts := strings.SplitN(auth, ":", 3)
		if len(parts) != 3 {
			continue
		}
		method, errM := regexp.Compile("^(?:" + parts[0] + ")$")
		pathRE, errP := regexp.Compile("^(?:" + parts[2] + ")$")
		if errM == nil && errP == nil && method.MatchString(r.Method) && pathRE.MatchString(path) {
			return true
		}
	}
	writeError(w, http.StatusForbidden, fmt.Sprintf("Unauthorized access to %s %s. Please verify your permissions", r.Method, r.URL.Path))
	return false
}

type agentClaims struct {
	APA []string `json:"a_pa"`
	Exp int64    `json:"exp"`
}

func (a *Astarte) verifyJWT(token string) (agentClaims, error) {
	var claims agentClaims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return claims, errors.New("malformed token")
	}
	header, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	payload, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return claims, err
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(header, &h); err != nil || h.Alg != "ES256" || len(sig) != 64 {
		return claims, errors.New("unsupported algorithm")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(&a.realmKey.PublicKey, digest[:], r, s) {
		return claims, errors.New("bad signature")
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return claims, err
	}
	if claims.Exp != 0 && time.Now().Unix() > claims.Exp {
		return claims, errors.New("expired")
	}
	return claims, nil
}

// IssueCertificate registers the device if needed and issues it a client
// certificate directly (no Pairing API round trip), as its current one: for
// raw MQTT clients in tests and for other brokers trusting this CA.
func (a *Astarte) IssueCertificate(deviceID string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	a.pmu.Lock()
	defer a.pmu.Unlock()
	d, ok := a.devices[deviceID]
	if !ok {
		if _, err := a.register(deviceID); err != nil {
			return tls.Certificate{}, err
		}
		d = a.devices[deviceID]
	}
	cert, err := a.ca.SignCSR(csr, a.realm+"/"+deviceID, a.certLifetime)
	if err != nil {
		return tls.Certificate{}, err
	}
	if d.serial != "" {
		d.revoked[d.serial] = true
	}
	d.serial, d.confirmed = cert.SerialNumber.String(), true
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, nil
}
