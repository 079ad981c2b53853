package astartetest

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/astarte-gen/astarte-gen/runtime/model"
)

// ControlHandler returns the fake's control API, a small JSON HTTP API that
// lets a test in any language drive the fake and read what it saw
// (cmd/astartetest serves it). Requests and answers are JSON; errors are
// {"error": "..."} with status 400 (bad request) or 404 (unknown route).
//
//	POST /devices                            {"device_id"} → {"device_id","credentials_secret"}
//	POST /devices/{id}/datastream            {"interface","path","value","timestamp"?}
//	POST /devices/{id}/property              {"interface","path","value"}
//	POST /devices/{id}/unset                 {"interface","path"}
//	POST /devices/{id}/purge                 {"keys": ["<interface><path>", ...]}
//	POST /devices/{id}/drop                  {"keep_session": bool}
//	GET  /devices/{id}/received              → [{"topic","interface","path","qos","value","unset","timestamp","payload_hex","payload_base64"}]
//	GET  /devices/{id}/events                → {"events","errors","connections","introspection","device_properties"}
//
// Values are JSON in the shape of their Astarte type: numbers, booleans,
// strings, binaryblob as base64, datetime as RFC 3339, arrays as arrays,
// objects as {"<last level>": value}.
func (a *Astarte) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /devices", a.ctlRegister)
	mux.HandleFunc("POST /devices/{id}/datastream", a.ctlDatastream)
	mux.HandleFunc("POST /devices/{id}/property", a.ctlProperty)
	mux.HandleFunc("POST /devices/{id}/unset", a.ctlUnset)
	mux.HandleFunc("POST /devices/{id}/purge", a.ctlPurge)
	mux.HandleFunc("POST /devices/{id}/drop", a.ctlDrop)
	mux.HandleFunc("GET /devices/{id}/received", a.ctlReceived)
	mux.HandleFunc("GET /devices/{id}/events", a.ctlEvents)
	return mux
}

// ctlRequest is the body of the control API's POST requests.
type ctlRequest struct {
	DeviceID    string          `json:"device_id"`
	Interface   string          `json:"interface"`
	Path        string          `json:"path"`
	Value       json.RawMessage `json:"value"`
	Timestamp   time.Time       `json:"timestamp"`
	Keys        []string        `json:"keys"`
	KeepSession bool            `json:"keep_session"`
}

// ctl decodes the request body and writes the outcome of do.
func ctl(w http.ResponseWriter, r *http.Request, do func(req ctlRequest) (any, error)) {
	var req ctlRequest
	if r.ContentLength != 0 {
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
			ctlAnswer(w, nil, fmt.Errorf("astartetest: control request body: %w", err))
			return
		}
	}
	out, err := do(req)
	ctlAnswer(w, out, err)
}

func ctlAnswer(w http.ResponseWriter, out any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	if out == nil {
		out = map[string]bool{"ok": true}
	}
	_ = json.NewEncoder(w).Encode(out)
}

func (a *Astarte) ctlRegister(w http.ResponseWriter, r *http.Request) {
	ctl(w, r, func(req ctlRequest) (any, error) {
		if req.DeviceID == "" {
			return nil, errors.New("astartetest: device_id missing")
		}
		secret, err := a.registeredSecret(req.DeviceID)
		return map[string]string{"device_id": req.DeviceID, "credentials_secret": secret}, err
	})
}

func (a *Astarte) ctlDatastream(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ctl(w, r, func(req ctlRequest) (any, error) {
		v, err := a.valueFromJSON(req.Interface, req.Path, req.Value)
		if err != nil {
			return nil, deviceError(id, err)
		}
		return nil, a.SendDatastreamAt(id, req.Interface, req.Path, v, req.Timestamp)
	})
}

func (a *Astarte) ctlProperty(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ctl(w, r, func(req ctlRequest) (any, error) {
		v, err := a.valueFromJSON(req.Interface, req.Path, req.Value)
		if err != nil {
			return nil, deviceError(id, err)
		}
		return nil, a.SetProperty(id, req.Interface, req.Path, v)
	})
}

func (a *Astarte) ctlUnset(w http.ResponseWriter, r *http.Request) {
	ctl(w, r, func(req ctlRequest) (any, error) {
		return nil, a.UnsetProperty(r.PathValue("id"), req.Interface, req.Path)
	})
}

func (a *Astarte) ctlPurge(w http.ResponseWriter, r *http.Request) {
	ctl(w, r, func(req ctlRequest) (any, error) { return nil, a.SendPurge(r.PathValue("id"), req.Keys) })
}

func (a *Astarte) ctlDrop(w http.ResponseWriter, r *http.Request) {
	ctl(w, r, func(req ctlRequest) (any, error) {
		if !req.KeepSession {
			a.ClearSession(r.PathValue("id"))
		}
		a.DropConnection(r.PathValue("id"))
		return nil, nil
	})
}

// ReceivedJSON is one accepted device message as the control API shows it.
type ReceivedJSON struct {
	Topic         string    `json:"topic"`
	Interface     string    `json:"interface"`
	Path          string    `json:"path"`
	QoS           byte      `json:"qos"`
	Value         any       `json:"value"`
	Unset         bool      `json:"unset"`
	Timestamp     time.Time `json:"timestamp,omitzero"`
	PayloadHex    string    `json:"payload_hex"`
	PayloadBase64 string    `json:"payload_base64"`
}

func (a *Astarte) ctlReceived(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	out := []ReceivedJSON{}
	st := a.state(id)
	st.mu.Lock()
	received, payloads := slices.Clone(st.received), slices.Clone(st.payloads)
	st.mu.Unlock()
	for i, m := range received {
		out = append(out, ReceivedJSON{
			Topic: a.realm + "/" + id + "/" + m.Interface + m.Path, Interface: m.Interface, Path: m.Path, QoS: m.QoS,
			Value: m.Value, Unset: m.Unset, Timestamp: m.Timestamp,
			PayloadHex: hex.EncodeToString(payloads[i]), PayloadBase64: base64.StdEncoding.EncodeToString(payloads[i]),
		})
	}
	ctlAnswer(w, out, nil)
}

func (a *Astarte) ctlEvents(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ctlAnswer(w, map[string]any{
		"events": nonNil(a.Events(id)), "errors": nonNil(a.Errors(id)), "connections": a.Connections(id),
		"introspection": a.Introspection(id), "device_properties": a.DeviceProperties(id),
	}, nil)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// valueFromJSON converts a JSON value to the Go type of the mapping that
// path resolves to on iface (for an object, of each field).
func (a *Astarte) valueFromJSON(iface, path string, raw json.RawMessage) (any, error) {
	i, ok := a.ifaces[iface]
	if !ok {
		return nil, fmt.Errorf("interface %s not installed", iface)
	}
	m, err := i.Match(path)
	if err != nil {
		return nil, err
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("value: %w", err)
	}
	if i.Aggregation != model.Object {
		return fromJSON(i.Mappings[m.Index].Type, v)
	}
	fields, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s is an object interface: value must be a JSON object", iface)
	}
	out := map[string]any{}
	for k, x := range fields {
		idx := -1
		for j := range i.Mappings {
			if i.Mappings[j].LastLevel() == k {
				idx = j
			}
		}
		if idx < 0 {
			return nil, fmt.Errorf("%s has no object field %q", iface, k)
		}
		if out[k], err = fromJSON(i.Mappings[idx].Type, x); err != nil {
			return nil, fmt.Errorf("field %q: %w", k, err)
		}
	}
	return out, nil
}

// fromJSON converts one decoded JSON value (numbers as json.Number) to the
// Go type of an Astarte type.
func fromJSON(t model.ValueType, v any) (any, error) {
	if t.IsArray() {
		elems, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("%s needs a JSON array", t)
		}
		out := make([]any, len(elems))
		for i, e := range elems {
			x, err := fromJSON(t.Scalar(), e)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			out[i] = x
		}
		return out, nil
	}
	switch x := v.(type) {
	case json.Number:
		switch t {
		case model.Double:
			return x.Float64()
		case model.Integer, model.LongInteger:
			return x.Int64()
		}
	case string:
		switch t {
		case model.String:
			return x, nil
		case model.BinaryBlob:
			return base64.StdEncoding.DecodeString(x)
		case model.DateTime:
			return time.Parse(time.RFC3339Nano, x)
		case model.LongInteger: // JSON APIs write longinteger as a string
			return json.Number(x).Int64()
		}
	case bool:
		if t == model.Boolean {
			return x, nil
		}
	}
	return nil, fmt.Errorf("JSON %T does not fit %s", v, t)
}
