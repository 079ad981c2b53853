package astartetest_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/astarte-gen/astarte-gen/runtime/astartetest"
)

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestControlAPI drives the fake through its JSON control API: register,
// set and unset a server property, purge, drop the connection, read events.
func TestControlAPI(t *testing.T) {
	a := astartetest.New(t, append(serverIfaces, values)...)
	srv := httptest.NewServer(a.ControlHandler())
	defer srv.Close()
	dev := srv.URL + "/devices/" + devA

	code, reg := post(t, srv.URL+"/devices", `{"device_id": "`+devA+`"}`)
	if code != http.StatusOK || reg["credentials_secret"] == "" {
		t.Fatalf("register: %d %v", code, reg)
	}
	c, err := dialClean(a, "", true, issue(t, a, devA))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(0)
	got := make(chan string, 10)
	c.Subscribe("test/"+devA+"/#", 2, func(_ mqtt.Client, m mqtt.Message) {
		got <- strings.TrimPrefix(m.Topic(), "test/"+devA+"/") + " " + string(m.Payload())
	}).Wait()

	props := serverIfaces[1].Name
	if code, out := post(t, dev+"/property", `{"interface": "`+props+`", "path": "/free", "value": 7}`); code != http.StatusOK {
		t.Fatalf("property: %d %v", code, out)
	}
	if code, out := post(t, dev+"/unset", `{"interface": "`+props+`", "path": "/fixed"}`); code != http.StatusBadRequest ||
		!strings.HasPrefix(out["error"].(string), "astartetest: device "+devA+": ") {
		t.Errorf("unset without allow_unset: %d %v", code, out)
	}
	if code, _ := post(t, dev+"/unset", `{"interface": "`+props+`", "path": "/free"}`); code != http.StatusOK {
		t.Errorf("unset: %d", code)
	}
	if code, _ := post(t, dev+"/purge", `{"keys": []}`); code != http.StatusOK {
		t.Errorf("purge: %d", code)
	}
	for _, want := range []string{props + "/free \x0c", props + "/free ", "control/consumer/properties "} {
		select {
		case m := <-got:
			if !strings.HasPrefix(m, want) {
				t.Errorf("device got %q, want %q…", m, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("device did not get %q", want)
		}
	}
	if code, _ := post(t, dev+"/drop", `{"keep_session": true}`); code != http.StatusOK {
		t.Errorf("drop: %d", code)
	}
	a.WaitFor(t, "connection dropped", func() bool { return !c.IsConnectionOpen() })

	resp, err := http.Get(dev + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ev struct {
		Events      []string `json:"events"`
		Connections int      `json:"connections"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ev); err != nil || ev.Connections != 1 || len(ev.Events) == 0 {
		t.Errorf("events: %+v %v", ev, err)
	}
}
