package pairing_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/astarte-gen/astarte-gen/runtime/pairing"
)

const hostileSecret = "s3cr3t+Secret/Value=="

// hostileClient is a client of a TLS server run by handler.
func hostileClient(t *testing.T, handler http.HandlerFunc) (*pairing.Client, *httptest.Server) {
	t.Helper()
	srv := httptest.NewTLSServer(handler)
	t.Cleanup(srv.Close)
	c, err := pairing.NewClient(srv.URL+"/pairing", "test", pairing.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	return c, srv
}

// TestRedirectLeavingOriginRefused: a redirect to plain HTTP on the same
// host, or to another host, is an error naming the refusal, and the
// credentials secret never reaches the target.
func TestRedirectLeavingOriginRefused(t *testing.T) {
	var leaked atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("Authorization"), hostileSecret) {
			leaked.Add(1)
		}
		fmt.Fprint(w, `{"data":{"version":"1","status":"confirmed","protocols":{"astarte_mqtt_v1":{"broker_url":"mqtts://x:8883"}}}}`)
	}))
	defer target.Close()
	plain, _ := url.Parse(target.URL)
	_, port, _ := strings.Cut(plain.Host, ":")
	for name, location := range map[string]string{
		"https to http, same host": "http://" + plain.Host + "/pairing/v1/test/devices/x",
		"another host":             "https://localhost:" + port + "/pairing/v1/test/devices/x",
		"another host, http":       "http://localhost:" + port + "/pairing/v1/test/devices/x",
	} {
		t.Run(name, func(t *testing.T) {
			c, _ := hostileClient(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, location, http.StatusTemporaryRedirect)
			})
			_, err := c.Info(ctx, "AJInS0w3VpWpuOqkXhgZdA", hostileSecret)
			if !errors.Is(err, pairing.ErrRedirect) || !strings.Contains(err.Error(), "refusing redirect") {
				t.Errorf("Info after a redirect to %s = %v, want ErrRedirect", location, err)
			}
			if n := leaked.Load(); n != 0 {
				t.Errorf("the secret was sent %d times to the redirect target", n)
			}
		})
	}
	// A redirect within the same origin is still followed.
	c, srv := hostileClient(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/moved/") {
			http.Redirect(w, r, "/moved"+r.URL.Path, http.StatusTemporaryRedirect)
			return
		}
		fmt.Fprint(w, `{"data":{"version":"1","status":"confirmed","protocols":{"astarte_mqtt_v1":{"broker_url":"mqtts://x:8883"}}}}`)
	})
	if info, err := c.Info(ctx, "AJInS0w3VpWpuOqkXhgZdA", hostileSecret); err != nil || info.BrokerURL != "mqtts://x:8883" {
		t.Errorf("same-origin redirect on %s: %+v, %v", srv.URL, info, err)
	}
}

// TestServerEchoNeverLeaksSecret: whatever the server echoes (the header in
// an error detail, in a field list, in a broker URL, in a redirect
// location), no error text carries the secret, the token or a key, and the
// sentinels still match.
func TestServerEchoNeverLeaksSecret(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString([]byte(hostileSecret))
	cases := []struct {
		name    string
		handler http.HandlerFunc
		want    error
	}{
		{"401 detail echoes the header", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"errors":{"detail":"bad credentials: %s"}}`, r.Header.Get("Authorization"))
		}, pairing.ErrUnauthorized},
		{"422 field list echoes the secret", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusUnprocessableEntity)
			secret := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			fmt.Fprintf(w, `{"errors":{"token":["%s is invalid","%s","%s"]}}`, secret, url.QueryEscape(secret), b64)
		}, pairing.ErrInvalidRequest},
		{"500 echoes the header raw", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, `{"errors":{"detail":"upstream said authorization=%s"}}`, r.Header.Get("Authorization"))
		}, pairing.ErrUnavailable},
		{"broker URL echoes the secret", func(w http.ResponseWriter, r *http.Request) {
			secret := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			fmt.Fprintf(w, `{"data":{"version":"1","status":"confirmed","protocols":{"astarte_mqtt_v1":{"broker_url":"http://%s@x"}}}}`, secret)
		}, pairing.ErrInvalidRequest},
		{"redirect location echoes the secret", func(w http.ResponseWriter, r *http.Request) {
			secret := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			http.Redirect(w, r, "http://evil.example/?token="+url.QueryEscape(secret), http.StatusFound)
		}, pairing.ErrRedirect},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := hostileClient(t, tc.handler)
			_, err := c.Info(ctx, "AJInS0w3VpWpuOqkXhgZdA", hostileSecret)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Info = %v, want %v", err, tc.want)
			}
			assertNoSecretIn(t, err.Error(), hostileSecret)
			for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
				assertNoSecretIn(t, e.Error(), hostileSecret)
			}
		})
	}
	// Through the Manager, the error and the log both stay clean.
	c, _ := hostileClient(t, cases[0].handler)
	var logs bytes.Buffer
	m, err := pairing.NewManager(pairing.ManagerConfig{Client: c, DeviceID: "AJInS0w3VpWpuOqkXhgZdA", Secret: hostileSecret,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Ensure(ctx)
	if !errors.Is(err, pairing.ErrUnauthorized) {
		t.Fatalf("Ensure = %v", err)
	}
	assertNoSecretIn(t, err.Error()+logs.String(), hostileSecret)
	// An agent token echoed back is redacted as well.
	c, _ = hostileClient(t, cases[0].handler)
	if _, err := c.Register(ctx, "agent.jwt.token", "AJInS0w3VpWpuOqkXhgZdA", nil); err == nil || strings.Contains(err.Error(), "agent.jwt.token") {
		t.Errorf("Register error leaks the token: %v", err)
	}
}

func assertNoSecretIn(t *testing.T, text, secret string) {
	t.Helper()
	for _, spelling := range []string{secret, url.QueryEscape(secret), base64.StdEncoding.EncodeToString([]byte(secret))} {
		if strings.Contains(text, spelling) {
			t.Errorf("secret (as %q) in %q", spelling, text)
		}
	}
}
