package gen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/format"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/astarte-gen/astarte-gen/schema"
)

// descriptionParts are lines that descriptions in the wild contain, many of
// them things go/doc/comment rewrites: lists, headings, code, links,
// doubled quotes, URLs.
var descriptionParts = []string{
	"Temperature of the sensor, in degrees Celsius.",
	"Container status",
	"UPPER CASE TITLE",
	"- first item",
	"* starred item",
	"+ plus item",
	"• bullet item",
	"1. numbered item",
	"2) other numbered item",
	"# Heading",
	"## Subheading",
	"  indented code()",
	"\ttabbed code()",
	"see [Device.Send] and [the docs]",
	"[the docs]: https://docs.astarte-platform.org",
	"https://example.com/a?b=c",
	"Possible values are: ['', 'no', 'always']",
	"``quoted''",
	"it's the device's value",
	"Deprecated: use /v2 instead.",
	"TODO(me): something",
	"/%{sensor_id}/value is 100% sure",
	"température moyenne, 気温",
	"a line with trailing blanks   ",
	"a line with a carriage return\r",
	"a NUL \x00 and a byte order mark \ufeff, which Go source cannot hold",
	"ends with a colon:",
	"x := 1 // code-like",
	"",
}

// randomDescription joins 1–4 paragraphs of 1–3 lines from
// descriptionParts.
func randomDescription(r *rand.Rand) string {
	var paras []string
	for range 1 + r.IntN(4) {
		var lines []string
		for range 1 + r.IntN(3) {
			lines = append(lines, descriptionParts[r.IntN(len(descriptionParts))])
		}
		paras = append(paras, strings.Join(lines, "\n"))
	}
	sep := "\n\n"
	if r.IntN(4) == 0 {
		sep = "\n"
	}
	return strings.Join(paras, sep)
}

// TestPlainTextIsCanonical checks docLines' shortcut: whenever plainText
// says lines are already canonical, go/doc/comment agrees. It also checks
// that the texts tried include ones go/doc/comment does rewrite, so that
// the shortcut is really being tested against them.
func TestPlainTextIsCanonical(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	texts := slices.Clone(descriptionParts)
	for range 10000 {
		texts = append(texts, randomDescription(r))
	}
	var plain, rewritten int
	for _, text := range texts {
		lines := commentLines([]string{"Intro line of the generated comment.", text})
		want := canonical(lines)
		if !slices.Equal(want, lines) {
			rewritten++
		}
		if !plainText(lines) {
			continue
		}
		plain++
		if !slices.Equal(want, lines) {
			t.Errorf("plainText is true for %q, but go/doc/comment writes %q", lines, want)
		}
	}
	if plain < 500 || rewritten < 500 {
		t.Fatalf("texts tried: %d plain, %d rewritten; want both ≥ 500", plain, rewritten)
	}
}

// randomInterface is the JSON of a valid-looking interface: random type,
// ownership, aggregation, endpoints with parameters, value types,
// delivery options and descriptions.
func randomInterface(r *rand.Rand, n int) []byte {
	types := []string{"double", "integer", "boolean", "longinteger", "string", "binaryblob", "datetime",
		"doublearray", "integerarray", "booleanarray", "longintegerarray", "stringarray", "binaryblobarray", "datetimearray"}
	words := []string{"value", "temperature", "humidity", "status", "name", "count", "enabled", "payload", "issued_at", "level"}
	iface := map[string]any{
		"interface_name": fmt.Sprintf("org.astartegen.random.Iface%d", n),
		"version_major":  r.IntN(3),
		"version_minor":  1 + r.IntN(5),
		"type":           []string{"datastream", "properties"}[r.IntN(2)],
		"ownership":      []string{"device", "server"}[r.IntN(2)],
	}
	if r.IntN(2) == 0 {
		iface["description"] = randomDescription(r)
	}
	if r.IntN(3) == 0 {
		iface["doc"] = randomDescription(r)
	}
	object := iface["type"] == "datastream" && r.IntN(3) == 0
	prefix := ""
	if r.IntN(2) == 0 {
		prefix = "/%{sensor_id}"
	}
	if object {
		iface["aggregation"] = "object"
		prefix += "/obj"
	}
	reliability := []string{"unreliable", "guaranteed", "unique"}[r.IntN(3)]
	explicit := r.IntN(2) == 0
	var mappings []map[string]any
	for i, w := range r.Perm(len(words))[:1+r.IntN(5)] {
		m := map[string]any{"type": types[r.IntN(len(types))]}
		switch {
		case object:
			m["endpoint"] = prefix + "/" + words[w]
			m["reliability"] = reliability
			m["explicit_timestamp"] = explicit
		default:
			m["endpoint"] = prefix + "/" + words[w]
			if r.IntN(3) == 0 {
				m["endpoint"] = prefix + "/%{p" + fmt.Sprint(i) + "}/" + words[w]
			}
			if iface["type"] == "datastream" {
				m["reliability"] = []string{"unreliable", "guaranteed", "unique"}[r.IntN(3)]
				m["explicit_timestamp"] = r.IntN(2) == 0
				if iface["ownership"] == "device" && r.IntN(2) == 0 {
					m["retention"] = "stored"
					m["expiry"] = r.IntN(3) * 60
				}
			} else {
				m["allow_unset"] = r.IntN(2) == 0
			}
		}
		if r.IntN(2) == 0 {
			m["description"] = randomDescription(r)
		}
		mappings = append(mappings, m)
	}
	iface["mappings"] = mappings
	data, err := json.Marshal(iface)
	if err != nil {
		panic(err)
	}
	return data
}

// TestRandomInterfacesAreGofmtClean generates random interfaces, alone and
// in groups, and requires every file to be exactly what gofmt makes of it:
// the emitter writes gofmt's layout itself, and this holds it to that for
// shapes and comments beyond the corpus and the golden cases.
func TestRandomInterfacesAreGofmtClean(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var inputs []Input
	generated := 0
	for n := range 400 {
		data := randomInterface(r, n)
		iface, err := schema.Parse(fmt.Sprintf("random%d.json", n), data)
		if err != nil {
			continue // a combination Astarte refuses
		}
		inputs = append(inputs, Input{Source: "random.json", Interface: iface})
		if len(inputs) < 1+r.IntN(4) {
			continue
		}
		files, err := Generate(Config{Package: "p"}, inputs)
		inputs = nil
		if err != nil {
			continue // names that collide across the group
		}
		for name, src := range files {
			generated++
			formatted, err := format.Source(src)
			if err != nil {
				t.Fatalf("%s does not parse: %v\n%s", name, err, src)
			}
			if !bytes.Equal(formatted, src) {
				t.Fatalf("%s is not gofmt-clean:\n%s", name, lineDiff(src, formatted))
			}
		}
	}
	if generated < 200 {
		t.Fatalf("only %d files generated; the random interfaces are mostly invalid", generated)
	}
}

// lineDiff shows the first lines where got and want differ.
func lineDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return fmt.Sprintf("line %d:\n got  %q\n want %q", i+1, g[i], w[i])
		}
	}
	return fmt.Sprintf("lengths differ: %d vs %d lines", len(g), len(w))
}
