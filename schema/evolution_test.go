package schema

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/astarte-gen/astarte-gen/internal/testcorpus"
)

// edoc is an interface file being edited by a test.
type edoc map[string]any

// baseDoc is a valid device datastream whose two mappings share their
// attributes, so that it may also be turned into an object aggregation.
func baseDoc() edoc {
	return edoc{
		"interface_name": "org.x.Sensors", "version_major": 1, "version_minor": 1,
		"type": "datastream", "ownership": "device",
		"mappings": []any{
			map[string]any{"endpoint": "/%{sensor}/temp", "type": "double", "reliability": "guaranteed", "doc": "°C"},
			map[string]any{"endpoint": "/%{sensor}/name", "type": "string", "reliability": "guaranteed"},
		},
	}
}

// mapping returns mapping n of d for editing.
func (d edoc) mapping(n int) map[string]any { return d["mappings"].([]any)[n].(map[string]any) }

// each applies set to every mapping (object mappings must agree).
func (d edoc) each(set func(m map[string]any)) {
	for _, m := range d["mappings"].([]any) {
		set(m.(map[string]any))
	}
}

func (d edoc) add(m map[string]any) { d["mappings"] = append(d["mappings"].([]any), m) }

func (d edoc) bump() { d["version_minor"] = d["version_minor"].(int) + 1 }

// load parses d as file name, failing the test if it is invalid.
func (d edoc) load(t *testing.T, name string) Loaded {
	t.Helper()
	data, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	iface, err := Parse(name, data)
	if err != nil {
		t.Fatalf("test document is invalid: %v\n%s", err, data)
	}
	return Loaded{File: name, Interface: iface}
}

// rules returns "severity rule pointer" for each finding.
func rules(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s %s %s", f.Severity, f.Rule, f.Pointer))
	}
	return out
}

func TestCompareRules(t *testing.T) {
	objectDoc := func(d edoc) { d["aggregation"] = "object" }
	propertiesDoc := func(d edoc) {
		d["type"] = "properties"
		d.each(func(m map[string]any) { delete(m, "reliability") })
	}
	tests := []struct {
		name string
		old  func(edoc) // optional: how the old version differs from baseDoc
		edit func(edoc) // how the new version differs from the old one
		// want is "severity rule pointer" of every finding.
		want []string
	}{
		// E.4 1 and 6: the minor goes up when the content changes.
		{name: "1 accepted: edoc changed, minor raised", edit: func(d edoc) { d["doc"] = "new"; d.bump() }},
		{name: "1 accepted: nothing changed", edit: func(edoc) {}},
		{name: "1 refused: edoc changed, same minor", edit: func(d edoc) { d["doc"] = "new" },
			want: []string{"error minor_version_not_increased /version_minor"}},
		{name: "1 refused: minor lowered", edit: func(d edoc) { d["version_minor"] = 0 },
			want: []string{"error downgrade_not_allowed /version_minor"}},
		{name: "6 refused: mapping added, same minor", edit: func(d edoc) { d.add(map[string]any{"endpoint": "/%{sensor}/hum", "type": "double"}) },
			want: []string{"error minor_version_not_increased /version_minor"}},
		// E.4 2: type, ownership, aggregation.
		{name: "2 accepted: description changed", edit: func(d edoc) { d["description"] = "x"; d.bump() }},
		{name: "2 refused: ownership", edit: func(d edoc) { d["ownership"] = "server"; d.bump() },
			want: []string{"error invalid_update /ownership"}},
		{name: "2 refused: aggregation", edit: func(d edoc) { objectDoc(d); d.bump() },
			want: []string{"error invalid_update /aggregation"}},
		{name: "2 refused: type", old: propertiesDoc, edit: func(d edoc) { d["type"] = "datastream"; d.bump() },
			want: []string{"error invalid_update /type"}},
		// E.4 3: mappings stay, endpoints and placeholders unchanged.
		{name: "3 accepted: mapping added", edit: func(d edoc) { d.add(map[string]any{"endpoint": "/%{sensor}/hum", "type": "double"}); d.bump() }},
		{name: "3 refused: mapping removed", edit: func(d edoc) { d["mappings"] = d["mappings"].([]any)[:1]; d.bump() },
			want: []string{"error missing_endpoints /mappings"}},
		{name: "3 refused: placeholder renamed", edit: func(d edoc) { d.mapping(1)["endpoint"] = "/%{id}/name"; d.bump() },
			want: []string{"error missing_endpoints /mappings/1/endpoint"}},
		{name: "3 refused: case changed", edit: func(d edoc) { d.mapping(0)["endpoint"] = "/%{sensor}/Temp"; d.bump() },
			want: []string{"error missing_endpoints /mappings/0/endpoint"}},
		// E.4 4: only doc, description, explicit_timestamp, retention, expiry.
		{name: "4 accepted: mutable fields", edit: func(d edoc) {
			m := d.mapping(0)
			m["doc"], m["description"], m["explicit_timestamp"], m["retention"], m["expiry"] = "K", "d", true, "stored", 60
			d.bump()
		}},
		{name: "4 refused: type", edit: func(d edoc) { d.mapping(0)["type"] = "integer"; d.bump() },
			want: []string{"error incompatible_endpoint_change /mappings/0/type"}},
		{name: "4 refused: reliability", edit: func(d edoc) { d.mapping(1)["reliability"] = "unique"; d.bump() },
			want: []string{"error incompatible_endpoint_change /mappings/1/reliability"}},
		{name: "4 refused: database retention", edit: func(d edoc) {
			d.mapping(0)["database_retention_policy"], d.mapping(0)["database_retention_ttl"] = "use_ttl", 3600
			d.bump()
		}, want: []string{"error incompatible_endpoint_change /mappings/0/database_retention_policy",
			"error incompatible_endpoint_change /mappings/0/database_retention_ttl"}},
		{name: "4 refused: allow_unset", old: propertiesDoc, edit: func(d edoc) { d.mapping(0)["allow_unset"] = true; d.bump() },
			want: []string{"error incompatible_endpoint_change /mappings/0/allow_unset"}},
		{name: "4 refused: required", old: objectDoc, edit: func(d edoc) { d.mapping(1)["required"] = true; d.bump() },
			want: []string{"error incompatible_endpoint_change /mappings/1/required"}},
		// E.4 5: new mappings overlap no old one.
		{name: "5 accepted: distinct new mapping", edit: func(d edoc) { d.add(map[string]any{"endpoint": "/%{sensor}/temp_max", "type": "double"}); d.bump() }},
		{name: "5 refused: new literal overlaps old parameter", edit: func(d edoc) { d.mapping(0)["endpoint"] = "/kitchen/temp"; d.bump() },
			want: []string{"error missing_endpoints /mappings", "error overlapping_mappings /mappings/0/endpoint"}},
		// E.4 7: explicit_timestamp on object datastreams.
		{name: "7 accepted: explicit_timestamp on individual", edit: func(d edoc) { d.mapping(0)["explicit_timestamp"] = true; d.bump() }},
		{name: "7 warned: explicit_timestamp on object", old: objectDoc, edit: func(d edoc) {
			d.each(func(m map[string]any) { m["explicit_timestamp"] = true })
			d.bump()
		}, want: []string{"warning object_explicit_timestamp_changed /mappings/0/explicit_timestamp",
			"warning object_explicit_timestamp_changed /mappings/1/explicit_timestamp"}},
		// Compare is for one name and major.
		{name: "other name", edit: func(d edoc) { d["interface_name"] = "org.x.Other" },
			want: []string{"error name_not_matching /interface_name"}},
		{name: "other major", edit: func(d edoc) { d["version_major"] = 2 },
			want: []string{"error major_version_not_matching /version_major"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := baseDoc()
			if tt.old != nil {
				tt.old(d)
			}
			old := d.load(t, "old.json")
			tt.edit(d)
			got := Compare(old, d.load(t, "new.json"))
			if diff := cmp.Diff(tt.want, rules(got)); diff != "" {
				t.Errorf("findings (-want +got):\n%s\n%v", diff, got)
			}
			if Refused(got) != strings.HasPrefix(strings.Join(tt.want, ","), "error") {
				t.Errorf("Refused = %v for %v", Refused(got), tt.want)
			}
			for _, f := range got {
				if f.File != "new.json" || f.Message == "" || f.Fix == "" {
					t.Errorf("finding without file, message or fix: %#v", f)
				}
			}
		})
	}
}

func TestCompareMessages(t *testing.T) {
	d := baseDoc()
	old := d.load(t, "old.json")
	d.mapping(0)["type"] = "integer"
	d["mappings"] = d["mappings"].([]any)[:1]
	got := Compare(old, d.load(t, "new.json"))
	want := []string{
		"new.json:/mappings/0/type: type of /%{sensor}/temp changed from double to integer: within a major only doc, description, " +
			"explicit_timestamp, retention and expiry may change (incompatible_endpoint_change); fix: bump the major, or set type back to double",
		"new.json:/mappings: mapping /%{sensor}/name was removed: devices and data already use it (missing_endpoints); " +
			"fix: bump the major, or restore the mapping /%{sensor}/name",
		"new.json:/version_minor: the content changed (/mappings/0/type) but version_minor is still 1 (minor_version_not_increased); " +
			"fix: raise version_minor to 2",
	}
	var lines []string
	for _, f := range got {
		lines = append(lines, f.String())
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
}

func TestCompareSets(t *testing.T) {
	named := func(name string, major int) edoc {
		d := baseDoc()
		d["interface_name"], d["version_major"] = name, major
		return d
	}
	tests := []struct {
		name     string
		old, new []edoc
		want     []string
	}{
		{name: "9 accepted: distinct new name, major 0",
			old: []edoc{named("org.xy.S", 1)}, new: []edoc{named("org.xy.S", 1), named("org.xy.T", 0)}},
		{name: "9 refused: new name equal without case and '-'",
			old: []edoc{named("org.xy.S", 1)}, new: []edoc{named("org.xy.S", 1), named("org.x-y.s", 0)},
			want: []string{"error interface_name_collision /interface_name"}},
		{name: "9 refused: two new names collide",
			new:  []edoc{named("org.xy.S", 0), named("org.x-y.S", 0)},
			want: []string{"error interface_name_collision /interface_name"}},
		{name: "9 accepted: new major of an installed name",
			old: []edoc{named("org.xy.S", 0)}, new: []edoc{named("org.xy.S", 0), named("org.xy.S", 1)},
			want: []string{"warning major_not_deletable /version_major"}},
		{name: "8 warned: first release of major 1",
			new:  []edoc{named("org.xy.S", 1)},
			want: []string{"warning major_not_deletable /version_major"}},
		{name: "removed name+major is a note",
			old: []edoc{named("org.xy.S", 0), named("org.xy.T", 0)}, new: []edoc{named("org.xy.S", 0)},
			want: []string{"note interface_removed "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loadAll := func(side string, docs []edoc) []Loaded {
				var out []Loaded
				for i, d := range docs {
					out = append(out, d.load(t, fmt.Sprintf("%s/%d.json", side, i)))
				}
				return out
			}
			got := CompareSets(loadAll("old", tt.old), loadAll("new", tt.new))
			if diff := cmp.Diff(tt.want, rules(got)); diff != "" {
				t.Errorf("findings (-want +got):\n%s\n%v", diff, got)
			}
		})
	}
}

// TestCompareSetsMatchesByNameAndMajor: each new file is compared with the
// installed file of its name and major, the highest minor among copies.
func TestCompareSetsMatchesByNameAndMajor(t *testing.T) {
	v1 := baseDoc()
	v0 := baseDoc()
	v0["version_major"] = 0
	older := baseDoc()
	older["version_minor"] = 0
	older["doc"] = "older"
	old := []Loaded{older.load(t, "old/a.json"), v0.load(t, "old/b.json"), v1.load(t, "old/c.json")}
	v1.mapping(0)["type"] = "integer"
	v1.bump()
	v0.bump()
	got := CompareSets(old, []Loaded{v0.load(t, "new/b.json"), v1.load(t, "new/c.json")})
	want := []string{"error incompatible_endpoint_change /mappings/0/type"}
	if diff := cmp.Diff(want, rules(got)); diff != "" || got[0].File != "new/c.json" {
		t.Errorf("findings (-want +got):\n%s\n%v", diff, got)
	}
}

// loadCorpusFile parses one corpus file into an editable edoc and its
// descriptor.
func loadCorpusFile(t *testing.T, rel string) (edoc, Loaded) {
	t.Helper()
	path := filepath.Join(testcorpus.Dir(t), rel)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	iface, err := Parse(rel, data)
	if err != nil {
		t.Fatal(err)
	}
	var d edoc
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&d); err != nil {
		t.Fatal(err)
	}
	d["version_minor"] = int(d["version_minor"].(float64))
	return d, Loaded{File: rel, Interface: iface}
}

// TestCorpusComparedWithItselfIsClean: no interface of the corpus differs
// from itself, and no directory of it from itself.
func TestCorpusComparedWithItselfIsClean(t *testing.T) {
	root := testcorpus.Dir(t)
	compared := 0
	for _, dir := range testcorpus.SourceDirs(t) {
		res, err := Load([]string{dir})
		if err != nil {
			t.Fatal(err)
		}
		var set []Loaded
		for _, l := range res.Interfaces {
			if filepath.Dir(l.File) != dir {
				continue // a subdirectory: its own source directory
			}
			set = append(set, l)
			compared++
			if got := Compare(l, l); len(got) != 0 {
				t.Errorf("%s compared with itself: %v", l.File, got)
			}
		}
		for _, f := range CompareSets(set, set) {
			if f.Rule != RuleMajorNotDeletable {
				rel, _ := filepath.Rel(root, dir)
				t.Errorf("%s compared with itself: %v", rel, f)
			}
		}
	}
	if want := len(testcorpus.Files(t)); compared != want {
		t.Errorf("compared %d corpus files, want %d", compared, want)
	}
}

// TestCorpusSecondVersion compares a real interface with a second version
// edited here: one compatible, one that Astarte would refuse.
func TestCorpusSecondVersion(t *testing.T) {
	const rel = "edgehog-device-manager-edgehog-astarte-interfaces/io.edgehog.devicemanager.BatteryStatus.json"
	d, old := loadCorpusFile(t, rel)
	health := map[string]any{"endpoint": "/%{battery_slot}/health", "type": "double", "explicit_timestamp": true,
		"database_retention_policy": "use_ttl", "database_retention_ttl": 5184000}
	d.add(health)
	d.mapping(0)["description"] = "Battery level, percent"
	d.bump()
	if got := Compare(old, d.load(t, "v0.2.json")); len(got) != 0 {
		t.Errorf("compatible second version: %v", got)
	}

	d, _ = loadCorpusFile(t, rel)
	d["mappings"] = d["mappings"].([]any)[:2] // drop /%{battery_slot}/status
	d.mapping(1)["type"] = "integer"          // levelAbsoluteError
	d.each(func(m map[string]any) { m["explicit_timestamp"] = false })
	got := Compare(old, d.load(t, "v0.1-edited.json"))
	want := []string{
		"warning object_explicit_timestamp_changed /mappings/0/explicit_timestamp",
		"error incompatible_endpoint_change /mappings/1/type",
		"warning object_explicit_timestamp_changed /mappings/1/explicit_timestamp",
		"error missing_endpoints /mappings",
		"error minor_version_not_increased /version_minor",
	}
	if diff := cmp.Diff(want, rules(got)); diff != "" {
		t.Errorf("refused second version (-want +got):\n%s\n%v", diff, got)
	}
}

// TestCorpusMajorUpdate uses the update the Rust SDK's end-to-end tests
// install: a new major that changes mapping types is accepted (a new major
// is a new interface); the same changes within major 0 are refused.
func TestCorpusMajorUpdate(t *testing.T) {
	const dir = "astarte-platform-astarte-device-sdk-rust/e2e-test/interfaces/"
	const name = "org.astarte-platform.rust.e2etest.ForUpdateDeviceDatastream.json"
	_, old := loadCorpusFile(t, dir+name)
	d, update := loadCorpusFile(t, dir+"update/"+name)
	got := CompareSets([]Loaded{old}, []Loaded{update})
	want := []string{"warning major_not_deletable /version_major", "note interface_removed "}
	if diff := cmp.Diff(want, rules(got)); diff != "" {
		t.Errorf("new major (-want +got):\n%s\n%v", diff, got)
	}

	d["version_major"], d["version_minor"] = 0, 2
	got = CompareSets([]Loaded{old}, []Loaded{d.load(t, "same-major.json")})
	want = []string{
		"error incompatible_endpoint_change /mappings/0/type",
		"error incompatible_endpoint_change /mappings/1/type",
		"error incompatible_endpoint_change /mappings/1/reliability",
	}
	if diff := cmp.Diff(want, rules(got)); diff != "" {
		t.Errorf("same major (-want +got):\n%s\n%v", diff, got)
	}
}
