package gen

import (
	"go/token"
	"strings"
	"unicode"
)

// initialisms are written all upper case in Go identifiers.
var initialisms = map[string]bool{
	"API": true, "ASCII": true, "CPU": true, "CSS": true, "DNS": true, "GPS": true, "HTML": true, "HTTP": true,
	"HTTPS": true, "ID": true, "IO": true, "IP": true, "JSON": true, "LED": true, "MAC": true, "MQTT": true,
	"OS": true, "QOS": true, "RAM": true, "RSSI": true, "SMS": true, "SQL": true, "SSH": true, "TCP": true,
	"TLS": true, "TTL": true, "UDP": true, "UI": true, "URI": true, "URL": true, "UTC": true, "UUID": true,
	"VM": true, "XML": true,
}

// spelled overrides the upper-case form of initialisms with a conventional
// mixed spelling.
var spelled = map[string]string{"QOS": "QoS"}

// words splits snake, kebab, dotted and camel identifiers into words:
// "sensor_id" → [sensor id], "cpuTemperature" → [cpu Temperature],
// "HTTPServer" → [HTTP Server].
func words(s string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, string(cur))
			cur = cur[:0]
		}
	}
	rs := []rune(s)
	for i, r := range rs {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
			continue
		case unicode.IsUpper(r) && len(cur) > 0:
			prevLower := unicode.IsLower(cur[len(cur)-1]) || unicode.IsDigit(cur[len(cur)-1])
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if prevLower || (nextLower && unicode.IsUpper(cur[len(cur)-1])) {
				flush()
			}
		}
		cur = append(cur, r)
	}
	flush()
	return out
}

// exported turns an identifier into MixedCaps with initialisms:
// "sensor_id" → "SensorID", "cpu-temperature" → "CPUTemperature".
func exported(s string) string {
	var b strings.Builder
	for _, w := range words(s) {
		up := strings.ToUpper(w)
		switch {
		case spelled[up] != "":
			b.WriteString(spelled[up])
		case initialisms[up]:
			b.WriteString(up)
		default:
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	name := b.String()
	if name == "" {
		return "Value"
	}
	if unicode.IsDigit(rune(name[0])) {
		name = "N" + name
	}
	return name
}

// unexported turns an identifier into lowerCamel: "sensor_id" → "sensorID",
// "ID" → "id", "HTTPServer" → "httpServer".
func unexported(s string) string {
	ws := words(s)
	if len(ws) == 0 {
		return "param"
	}
	first := strings.ToLower(ws[0])
	rest := exported(strings.Join(ws[1:], "_"))
	if len(ws) == 1 {
		rest = ""
	}
	name := first + rest
	if unicode.IsDigit(rune(name[0])) {
		name = "n" + name
	}
	return name
}

// reservedArgs are names generated methods use for their own arguments and
// receivers, or Go's keywords and predeclared identifiers: a parameter
// named like one of them gets a suffix.
var reservedArgs = map[string]bool{
	"ctx": true, "value": true, "timestamp": true, "m": true, "s": true, "h": true, "d": true, "v": true,
	"in": true, "err": true, "ok": true, "runtime": true, "model": true, "context": true, "time": true,
}

var predeclared = map[string]bool{
	"any": true, "append": true, "bool": true, "byte": true, "cap": true, "clear": true, "close": true,
	"comparable": true, "complex": true, "complex64": true, "complex128": true, "copy": true, "delete": true,
	"error": true, "false": true, "float32": true, "float64": true, "imag": true, "int": true, "int8": true,
	"int16": true, "int32": true, "int64": true, "iota": true, "len": true, "make": true, "max": true,
	"min": true, "new": true, "nil": true, "panic": true, "print": true, "println": true, "real": true,
	"recover": true, "rune": true, "string": true, "true": true, "uint": true, "uint8": true, "uint16": true,
	"uint32": true, "uint64": true, "uintptr": true,
}

// argName returns a safe Go argument name for an endpoint parameter.
func argName(param string) string {
	name := unexported(param)
	if token.IsKeyword(name) || predeclared[name] || reservedArgs[name] {
		name += "Arg"
	}
	return name
}
