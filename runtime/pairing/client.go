// Package pairing is the device side of Astarte's Pairing API v1: device
// registration (with an agent JWT or the realm's private key), device info
// (broker URL and status), MQTT client certificates from a CSR, certificate
// verification, device IDs, and the key and certificate files a device keeps.
// It uses the standard library only.
package pairing

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Errors a program can act on; returned errors wrap them with the server's
// explanation (never with a secret or a token).
var (
	// ErrCredentialsInhibited: an operator blocked credential requests for
	// this device.
	ErrCredentialsInhibited = errors.New("pairing: credentials inhibited")
	// ErrDeviceNotFound: the device is not registered in the realm (404
	// with Astarte's "device not found" answer).
	ErrDeviceNotFound = errors.New("pairing: device not registered")
	// ErrNotFound: HTTP 404 without Astarte's answer: the pairing URL (or
	// the realm in it) is wrong.
	ErrNotFound = errors.New("pairing: no Pairing API endpoint at this URL; check the pairing URL and realm")
	// ErrUnauthorized: wrong credentials secret, wrong realm, or an agent
	// token without the needed permission (401, 403).
	ErrUnauthorized = errors.New("pairing: unauthorized")
	// ErrAlreadyRegistered: the device already obtained credentials; it
	// must be unregistered before registering again.
	ErrAlreadyRegistered = errors.New("pairing: device already registered")
	// ErrInvalidRequest: the server rejected the request as malformed (4xx).
	ErrInvalidRequest = errors.New("pairing: invalid request")
	// ErrUnavailable: Pairing API unreachable or failing (5xx, network);
	// worth retrying with backoff.
	ErrUnavailable = errors.New("pairing: unavailable")
	// ErrInsecureURL: an http:// URL without the explicit opt-in.
	ErrInsecureURL = errors.New("pairing: refusing plain-HTTP pairing URL")
	// ErrRedirect: the Pairing API redirected to another host or from
	// HTTPS to plain HTTP. The client never follows such a redirect: the
	// request carries the credentials secret or an agent token.
	ErrRedirect = errors.New("pairing: refusing redirect")
)

// maxRedirects bounds the redirects followed within the configured origin.
const maxRedirects = 5

// IsRetryable reports whether err is worth retrying later.
func IsRetryable(err error) bool { return errors.Is(err, ErrUnavailable) }

// Client calls the Pairing API of one realm.
type Client struct {
	base  *url.URL
	realm string
	http  *http.Client
}

// ClientOption configures a Client.
type ClientOption func(*clientOptions)

type clientOptions struct {
	http     *http.Client
	insecure bool
}

// WithHTTPClient sets the HTTP client (its Transport carries the TLS
// configuration: root CAs, or an insecure test switch).
func WithHTTPClient(c *http.Client) ClientOption { return func(o *clientOptions) { o.http = c } }

// AllowInsecureHTTP accepts an http:// pairing URL. The credentials secret
// then crosses the network in clear: only for local test instances.
func AllowInsecureHTTP() ClientOption { return func(o *clientOptions) { o.insecure = true } }

// NewClient returns a client for the pairing base URL (e.g.
// "https://api.example.com/pairing") and realm.
func NewClient(baseURL, realm string, opts ...ClientOption) (*Client, error) {
	o := clientOptions{http: &http.Client{Timeout: 30 * time.Second}}
	for _, opt := range opts {
		opt(&o)
	}
	u, err := url.Parse(strings.TrimSuffix(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("pairing: URL %q: %w", baseURL, err)
	}
	switch {
	case u.Scheme == "http" && !o.insecure:
		return nil, fmt.Errorf("%w %q (set the explicit insecure option for test instances)", ErrInsecureURL, baseURL)
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("pairing: URL %q: scheme must be https", baseURL)
	case realm == "":
		return nil, errors.New("pairing: empty realm")
	}
	return &Client{base: u, realm: realm, http: guardRedirects(o.http, u)}, nil
}

// guardRedirects returns a copy of c that follows a redirect only when it
// stays on the configured scheme and host: Go's client keeps the
// Authorization header on a same-host redirect even from https:// to
// http://, which would send the secret in clear. A redirect elsewhere is an
// error saying so; the caller's own CheckRedirect still runs for the
// redirects this one allows.
func guardRedirects(c *http.Client, base *url.URL) *http.Client {
	guarded := *c
	next := c.CheckRedirect
	guarded.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		switch {
		case req.URL.Scheme != base.Scheme:
			return fmt.Errorf("%w from %s to a %s:// URL", ErrRedirect, base.Scheme, req.URL.Scheme)
		case !strings.EqualFold(req.URL.Host, base.Host):
			return fmt.Errorf("%w from %s to another host (%s)", ErrRedirect, base.Host, req.URL.Hostname())
		case len(via) >= maxRedirects:
			return fmt.Errorf("%w: more than %d redirects", ErrRedirect, maxRedirects)
		case next != nil:
			return next(req, via)
		}
		return nil
	}
	return &guarded
}

// Status is a device's registration status.
type Status string

// Device statuses reported by the Pairing API.
const (
	StatusPending   Status = "pending"
	StatusConfirmed Status = "confirmed"
	StatusInhibited Status = "inhibited"
)

// DeviceInfo is the answer of the device info endpoint.
type DeviceInfo struct {
	Version string
	Status  Status
	// BrokerURL is normalised to mqtts://host:port (port 8883 when absent).
	BrokerURL string
}

// Info returns the device's status and MQTT broker URL.
func (c *Client) Info(ctx context.Context, deviceID, secret string) (DeviceInfo, error) {
	var resp struct {
		Version   string `json:"version"`
		Status    Status `json:"status"`
		Protocols map[string]struct {
			BrokerURL string `json:"broker_url"`
		} `json:"protocols"`
	}
	if err := c.do(ctx, http.MethodGet, "devices/"+deviceID, secret, nil, &resp); err != nil {
		return DeviceInfo{}, err
	}
	info := DeviceInfo{Version: resp.Version, Status: resp.Status}
	mqtt, ok := resp.Protocols["astarte_mqtt_v1"]
	if !ok {
		return info, fmt.Errorf("%w: device info lists no astarte_mqtt_v1 transport", ErrInvalidRequest)
	}
	broker, err := normalizeBrokerURL(mqtt.BrokerURL)
	if err != nil {
		return info, scrub(err, secret)
	}
	info.BrokerURL = broker
	return info, nil
}

// normalizeBrokerURL accepts mqtts, ssl and tls schemes, always uses TLS
// and defaults the port to 8883 (spec §2.6).
func normalizeBrokerURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%w: broker URL %q", ErrInvalidRequest, raw)
	}
	switch u.Scheme {
	case "mqtts", "ssl", "tls":
	default:
		return "", fmt.Errorf("%w: broker URL %q: scheme must be mqtts", ErrInvalidRequest, raw)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "8883"
	}
	return "mqtts://" + net.JoinHostPort(host, port), nil
}

// ObtainCertificate sends a PEM CSR and returns the PEM client certificate.
func (c *Client) ObtainCertificate(ctx context.Context, deviceID, secret string, csrPEM []byte) ([]byte, error) {
	var resp struct {
		ClientCrt string `json:"client_crt"`
	}
	body := map[string]string{"csr": string(csrPEM)}
	if err := c.do(ctx, http.MethodPost, "devices/"+deviceID+"/protocols/astarte_mqtt_v1/credentials", secret, body, &resp); err != nil {
		return nil, err
	}
	if resp.ClientCrt == "" {
		return nil, fmt.Errorf("%w: empty certificate in answer", ErrInvalidRequest)
	}
	return []byte(resp.ClientCrt), nil
}

// Verification is the Pairing API's opinion of a certificate.
type Verification struct {
	Valid bool
	// Cause explains an invalid certificate: EXPIRED, INVALID_ISSUER,
	// INVALID_SIGNATURE, NAME_NOT_PERMITTED, MISSING_BASIC_CONSTRAINT,
	// INVALID_KEY_USAGE, REVOKED or INVALID.
	Cause     string
	Timestamp time.Time
	Until     time.Time
}

// Verify asks whether a PEM certificate is valid.
func (c *Client) Verify(ctx context.Context, deviceID, secret string, certPEM []byte) (Verification, error) {
	var resp struct {
		Valid     bool   `json:"valid"`
		Cause     string `json:"cause"`
		Timestamp string `json:"timestamp"`
		Until     string `json:"until"`
	}
	body := map[string]string{"client_crt": string(certPEM)}
	if err := c.do(ctx, http.MethodPost, "devices/"+deviceID+"/protocols/astarte_mqtt_v1/credentials/verify", secret, body, &resp); err != nil {
		return Verification{}, err
	}
	return Verification{Valid: resp.Valid, Cause: resp.Cause, Timestamp: parseTime(resp.Timestamp), Until: parseTime(resp.Until)}, nil
}

// TimeLayout is how the Pairing API writes timestamps in verify answers.
const TimeLayout = "2006-01-02 15:04:05.000Z07:00"

func parseTime(s string) time.Time {
	if t, err := time.Parse(TimeLayout, s); err == nil {
		return t
	}
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// Version is an interface version for an initial introspection.
type Version struct {
	Major int `json:"major"`
	Minor int `json:"minor"`
}

// Register registers a device with an agent token and returns its
// credentials secret. initialIntrospection may be nil.
func (c *Client) Register(ctx context.Context, agentToken, deviceID string, initialIntrospection map[string]Version) (string, error) {
	body := map[string]any{"hw_id": deviceID}
	if initialIntrospection != nil {
		body["initial_introspection"] = initialIntrospection
	}
	var resp struct {
		Secret string `json:"credentials_secret"`
	}
	if err := c.do(ctx, http.MethodPost, "agent/devices", agentToken, body, &resp); err != nil {
		return "", err
	}
	if resp.Secret == "" {
		return "", fmt.Errorf("%w: no credentials secret in answer", ErrInvalidRequest)
	}
	return resp.Secret, nil
}

// RegisterWithKey registers a device, signing an agent token with the
// realm's private key (PEM) valid for one minute.
func (c *Client) RegisterWithKey(ctx context.Context, realmKeyPEM []byte, deviceID string, initialIntrospection map[string]Version) (string, error) {
	token, err := AgentToken(realmKeyPEM, []string{"POST::agent/devices"}, time.Minute)
	if err != nil {
		return "", err
	}
	return c.Register(ctx, token, deviceID, initialIntrospection)
}

// Unregister unregisters a device so that it can be registered again.
func (c *Client) Unregister(ctx context.Context, agentToken, deviceID string) error {
	return c.do(ctx, http.MethodDelete, "agent/devices/"+deviceID, agentToken, nil, nil)
}

// do sends one request with the {"data": …} envelope and decodes the
// answer's data into out. bearer is a secret: it only goes in the header,
// and every error text is scrubbed of it, whatever the server echoes.
func (c *Client) do(ctx context.Context, method, path, bearer string, body, out any) error {
	if err := c.send(ctx, method, path, bearer, body, out); err != nil {
		return scrub(err, bearer)
	}
	return nil
}

func (c *Client) send(ctx context.Context, method, path, bearer string, body, out any) error {
	u := c.base.JoinPath("v1", c.realm, path)
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(map[string]any{"data": body})
		if err != nil {
			return fmt.Errorf("pairing: %w", err)
		}
		reader = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), reader)
	if err != nil {
		return fmt.Errorf("pairing: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := c.http.Do(req)
	if errors.Is(err, ErrRedirect) {
		return fmt.Errorf("%w: %s %s: %v", ErrRedirect, method, u.Path, redirectCause(err))
	}
	if err != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrUnavailable, method, u.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrUnavailable, method, u.Path, err)
	}
	if resp.StatusCode >= 300 {
		return statusError(method, u.Path, resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(data, &env); err != nil || env.Data == nil {
		return fmt.Errorf("%w: %s %s: answer is not a {\"data\": …} document", ErrInvalidRequest, method, u.Path)
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrInvalidRequest, method, u.Path, err)
	}
	return nil
}

// redirectCause is the guard's own message, without the redirect URL the
// server chose (which may carry anything).
func redirectCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// secretError is an error whose text had secrets removed. It unwraps to
// the sentinels of the original, never to the original itself, whose text
// may hold the secret.
type secretError struct {
	msg  string
	kind []error
}

func (e *secretError) Error() string   { return e.msg }
func (e *secretError) Unwrap() []error { return e.kind }

// sentinels lists what callers test with errors.Is.
var sentinels = []error{
	ErrCredentialsInhibited, ErrDeviceNotFound, ErrNotFound, ErrUnauthorized, ErrAlreadyRegistered,
	ErrInvalidRequest, ErrUnavailable, ErrInsecureURL, ErrRedirect, context.Canceled, context.DeadlineExceeded,
}

// scrub returns err with every spelling of secret in its text replaced
// (as is, URL-escaped, base64, and any "Bearer …" credential), keeping
// only the sentinels it wraps.
func scrub(err error, secret string) error {
	msg := redact(err.Error(), secret)
	var kind []error
	for _, s := range sentinels {
		if errors.Is(err, s) {
			kind = append(kind, s)
		}
	}
	return &secretError{msg: msg, kind: kind}
}

// bearerValue matches an Authorization credential echoed in text.
var bearerValue = regexp.MustCompile(`(?i)(bearer|basic)(\s+|%20|\+)[^\s"',;]+`)

func redact(text, secret string) string {
	if secret != "" {
		for _, spelling := range []string{secret, url.QueryEscape(secret), url.PathEscape(secret),
			base64.StdEncoding.EncodeToString([]byte(secret)), base64.RawURLEncoding.EncodeToString([]byte(secret))} {
			text = strings.ReplaceAll(text, spelling, "[redacted]")
		}
	}
	return bearerValue.ReplaceAllString(text, "$1 [redacted]")
}

// statusError maps an error status and its {"errors": …} body to a
// sentinel.
func statusError(method, path string, status int, body []byte) error {
	detail := errorDetail(body)
	var sentinel error
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		sentinel = ErrUnauthorized
		if strings.Contains(strings.ToLower(detail), "inhibit") {
			sentinel = ErrCredentialsInhibited
		}
	case status == http.StatusNotFound && strings.Contains(strings.ToLower(detail), "device"):
		sentinel = ErrDeviceNotFound
	case status == http.StatusNotFound:
		sentinel = ErrNotFound
	case status == http.StatusUnprocessableEntity && strings.Contains(detail, "already registered"):
		sentinel = ErrAlreadyRegistered
	case status >= 500:
		sentinel = ErrUnavailable
	default:
		sentinel = ErrInvalidRequest
	}
	return fmt.Errorf("%w: %s %s: HTTP %d: %s", sentinel, method, path, status, detail)
}

// errorDetail flattens {"errors": {"detail": "..."}} or a field map.
func errorDetail(body []byte) string {
	var env struct {
		Errors map[string]json.RawMessage `json:"errors"`
	}
	if json.Unmarshal(body, &env) != nil || len(env.Errors) == 0 {
		return "no details"
	}
	var parts []string
	for field, raw := range env.Errors {
		var s string
		var list []string
		switch {
		case json.Unmarshal(raw, &s) == nil:
			parts = append(parts, s)
		case json.Unmarshal(raw, &list) == nil:
			parts = append(parts, field+": "+strings.Join(list, ", "))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, "; ")
}
