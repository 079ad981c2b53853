package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func runCmd(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

const valid = `{"interface_name": "org.x.A", "version_major": 1, "version_minor": 0, "type": "datastream", "ownership": "device",
 "mappings": [{"endpoint": "/v", "type": "double"}]}`

func write(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidateExitCodes(t *testing.T) {
	if code, out, _ := runCmd("validate", "../../testdata/interfaces"); code != exitInvalid || !strings.Contains(out, "invalid/clash-prefix.json:/mappings/1/endpoint: ") {
		t.Errorf("directory with invalid files: exit %d, output:\n%s", code, out)
	}
	if code, out, _ := runCmd("validate", "../../testdata/interfaces/org.astartegen.test.DeviceDatastream.json"); code != exitOK || out != "1 interface valid\n" {
		t.Errorf("valid file: exit %d, output %q", code, out)
	}
	if code, _, errOut := runCmd("validate", "no/such/file.json"); code != exitUsage || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing file: exit %d, %q", code, errOut)
	}
	if code, _, _ := runCmd("validate"); code != exitUsage {
		t.Errorf("no path: exit %d", code)
	}
	if code, _, _ := runCmd("frobnicate"); code != exitUsage {
		t.Errorf("unknown command: exit %d", code)
	}
	if code, _, errOut := runCmd("-h"); code != exitOK || !strings.Contains(errOut, "usage: astarte-gen validate") {
		t.Errorf("-h: exit %d, %q", code, errOut)
	}
}

func TestValidateRecursesAndFindsDuplicateNames(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "pkg/org.x.A.json", valid)
	write(t, dir, "pkg/org.x.a.json", valid) // same name, same directory
	write(t, dir, "other/org.x.A.json", valid)
	write(t, dir, "pkg/notes.txt", "not an interface")
	code, out, _ := runCmd("validate", dir)
	want := filepath.Join(dir, "pkg/org.x.a.json") + ":/interface_name: interface org.x.A is also declared in " + filepath.Join(dir, "pkg/org.x.A.json") +
		", in the same directory (one package holds one version of an interface)\n"
	if code != exitInvalid || out != want {
		t.Errorf("exit %d, output:\n%s\nwant:\n%s", code, out, want)
	}
}

func TestValidateJSON(t *testing.T) {
	dir := t.TempDir()
	f := write(t, dir, "org.x.A.json", strings.Replace(valid, `"ownership": "device"`, `"ownership": "producer"`, 1))
	bad := write(t, dir, "x/bad.json", `{"interface_name": "org.x.B", "version_major": 0, "version_minor": 0, "type": "datastream",
 "ownership": "device", "mappings": [{"endpoint": "/v", "type": "double"}]}`)
	code, out, _ := runCmd("validate", "--json", dir)
	var got []map[string]string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, out)
	}
	want := []map[string]string{
		{"file": f, "pointer": "/ownership", "severity": "warning", "message": `"producer" is the legacy spelling of "device"`},
		{"file": bad, "pointer": "/version_minor", "severity": "error", "message": "version_minor must be greater than 0 when version_major is 0 (version 0.0 is invalid)"},
	}
	if code != exitInvalid {
		t.Errorf("exit %d", code)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("--json (-want +got):\n%s", diff)
	}
	code, out, _ = runCmd("validate", "--json", f)
	if code != exitOK || strings.TrimSpace(out) == "" || !strings.Contains(out, "warning") {
		t.Errorf("warnings only: exit %d, %q", code, out)
	}
}

func TestGenerate(t *testing.T) {
	src := t.TempDir()
	write(t, src, "a.json", valid)
	out := filepath.Join(t.TempDir(), "api")
	if code, _, errOut := runCmd("generate", "-o", out, src); code != exitOK {
		t.Fatalf("generate: exit %d: %s", code, errOut)
	}
	data, err := os.ReadFile(filepath.Join(out, "org_x_a.go"))
	if err != nil || !strings.Contains(string(data), "package api") || !strings.Contains(string(data), "func (s A) SendV(") {
		t.Fatalf("generated file: %v\n%s", err, data)
	}
	if code, stdout, _ := runCmd("-o", out, "-check", src); code != exitOK || stdout != "" {
		t.Errorf("-check on fresh output: exit %d, %q", code, stdout)
	}
	write(t, src, "a.json", strings.Replace(valid, `"/v"`, `"/w"`, 1))
	if code, stdout, _ := runCmd("-o", out, "-check", src); code != exitInvalid || !strings.Contains(stdout, "org_x_a.go is not up to date") {
		t.Errorf("-check on stale output: exit %d, %q", code, stdout)
	}
	write(t, src, "b.json", `{"interface_name": "org.x.B"}`)
	before, _ := os.ReadFile(filepath.Join(out, "org_x_a.go"))
	if code, _, errOut := runCmd("generate", "-o", out, src); code != exitInvalid || !strings.Contains(errOut, "b.json:") {
		t.Errorf("invalid input: exit %d, %q", code, errOut)
	}
	if after, _ := os.ReadFile(filepath.Join(out, "org_x_a.go")); string(after) != string(before) {
		t.Error("files were written although an input is invalid")
	}
	if code, _, _ := runCmd("generate", src); code != exitUsage {
		t.Errorf("without -o: exit %d", code)
	}
}

// TestValidateForCI: warnings are printed with errors, --strict makes them
// fail, a misnamed file is a warning, success ends with a summary, and an
// endpoint error names the level and the character.
func TestValidateForCI(t *testing.T) {
	dir := t.TempDir()
	typo := write(t, dir, "ok/org.x.A.json", strings.Replace(valid, `"type": "double"}`, `"type": "double", "reliablity": "guaranteed"}`, 1))
	code, out, _ := runCmd("validate", typo)
	wantWarning := typo + `:/mappings/0/reliablity: warning: unknown field "reliablity" is ignored (did you mean "reliability"? as written, the default applies)` + "\n"
	if code != exitOK || out != wantWarning+"1 interface valid, 1 warning\n" {
		t.Errorf("misspelled field: exit %d, output:\n%s", code, out)
	}
	code, out, _ = runCmd("validate", "--strict", typo)
	if code != exitInvalid || !strings.Contains(out, ":/mappings/0/reliablity: unknown field") || strings.Contains(out, "valid") {
		t.Errorf("--strict: exit %d, output:\n%s", code, out)
	}

	both := write(t, dir, "bad/org.x.B.json", `{"interface_name": "org.x.B", "version_major": 1, "version_minor": 0, "type": "datastream",
 "ownership": "device", "mappings": [{"endpoint": "/sensors/temp-c", "type": "double", "retention": "stored", "reliablity": "unique"}]}`)
	code, out, _ = runCmd("validate", both)
	for _, want := range []string{
		both + `:/mappings/0/endpoint: endpoint "/sensors/temp-c": level 2 "temp-c": character '-' at position 5 is not allowed`,
		both + `:/mappings/0/reliablity: warning: unknown field "reliablity"`,
	} {
		if code != exitInvalid || !strings.Contains(out, want) {
			t.Errorf("error and warning in one file: exit %d, want %q in:\n%s", code, want, out)
		}
	}

	misnamed := write(t, dir, "named/sensors.json", valid)
	code, out, _ = runCmd("validate", misnamed)
	if code != exitOK || !strings.Contains(out, misnamed+":/interface_name: warning: file name sensors.json does not match the interface name: name it org.x.A.json") {
		t.Errorf("misnamed file: exit %d, output:\n%s", code, out)
	}
	if code, out, _ := runCmd("validate", filepath.Join(dir, "ok"), "../../testdata/interfaces/org.astartegen.test.Draft.json"); code != exitOK || !strings.HasSuffix(out, "2 interfaces valid, 1 warning\n") {
		t.Errorf("summary: exit %d, output:\n%s", code, out)
	}
}
