package gen

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/astarte-gen/astarte-gen/internal/testcorpus"
	"github.com/astarte-gen/astarte-gen/runtime/model"
	"github.com/astarte-gen/astarte-gen/schema"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const ownInterfaces = "../testdata/interfaces"

func loadDir(t testing.TB, dir string) []Input {
	t.Helper()
	res, err := schema.Load([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	var inputs []Input
	for _, l := range res.Interfaces {
		if filepath.Dir(l.File) != filepath.Clean(dir) {
			continue // subdirectories are other packages (or invalid on purpose)
		}
		inputs = append(inputs, Input{Source: filepath.ToSlash(l.File), Interface: l.Interface})
	}
	return inputs
}

const goldenDir = "../golden"

// goldenCase is one directory of golden/: interfaces/ holds the input;
// want/ the expected generated files (NAME.golden) and, when loading or
// generating reports anything, diagnostics.txt.
type goldenCase struct{ name, dir string }

func goldenCases(t *testing.T) []goldenCase {
	t.Helper()
	entries, err := os.ReadDir(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	var cases []goldenCase
	for _, e := range entries {
		if e.IsDir() {
			cases = append(cases, goldenCase{e.Name(), filepath.Join(goldenDir, e.Name())})
		}
	}
	if len(cases) == 0 {
		t.Fatal("no golden cases")
	}
	return cases
}

// run generates a case as the CLI would into want/: the files, and the
// diagnostics with paths relative to the case directory (the last line is
// the generator's error, if any).
func (c goldenCase) run(t *testing.T) (map[string][]byte, []string) {
	t.Helper()
	paths, err := schema.PackageFiles([]string{filepath.Join(c.dir, "interfaces")})
	if err != nil {
		t.Fatal(err)
	}
	res, err := schema.LoadFiles(paths)
	if err != nil {
		t.Fatal(err)
	}
	var diags []string
	for _, d := range res.Diagnostics {
		d.File = filepath.ToSlash(strings.TrimPrefix(d.File, c.dir+string(filepath.Separator)))
		diags = append(diags, d.String())
	}
	if len(res.Errors()) > 0 {
		return nil, diags
	}
	var inputs []Input
	for _, l := range res.Interfaces {
		src, err := SourcePath(filepath.Join(c.dir, "want"), l.File)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, Input{Source: src, Interface: l.Interface})
	}
	files, err := Generate(Config{Package: strings.ReplaceAll(c.name, "-", "")}, inputs)
	if err != nil {
		return nil, append(diags, "gen: "+err.Error())
	}
	return files, diags
}

// TestGolden compares each case of golden/ with what it generates today;
// go test ./gen -update rewrites want/.
func TestGolden(t *testing.T) {
	for _, c := range goldenCases(t) {
		t.Run(c.name, func(t *testing.T) {
			files, diags := c.run(t)
			if strings.HasPrefix(c.name, "invalid-") && (files != nil || len(diags) == 0) {
				t.Errorf("an invalid case must give diagnostics and no code")
			}
			want := map[string][]byte{}
			for name, data := range files {
				want[name+".golden"] = data
			}
			if len(diags) > 0 {
				want["diagnostics.txt"] = []byte(strings.Join(diags, "\n") + "\n")
			}
			dir := filepath.Join(c.dir, "want")
			if *update {
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				for name, data := range want {
					if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != len(want) {
				t.Errorf("%d files in %s, %d expected (run go test ./gen -update)", len(entries), dir, len(want))
			}
			for name, data := range want {
				golden, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Errorf("%s: %v (run go test ./gen -update)", name, err)
					continue
				}
				if diff := cmp.Diff(strings.Split(string(golden), "\n"), strings.Split(string(data), "\n")); diff != "" {
					t.Errorf("%s differs from golden (-golden +generated):\n%s", name, diff)
				}
			}
		})
	}
}

// TestDeterministicAndFormatted generates our interfaces and each directory
// of the corpus twice, in opposite input orders, and requires the same
// bytes, gofmt-clean as generated (Generate writes gofmt's layout itself
// and never formats), each with the generated-code header.
func TestDeterministicAndFormatted(t *testing.T) {
	for _, dir := range append([]string{ownInterfaces}, corpusDirs(t)...) {
		inputs := loadDir(t, dir)
		first, err := Generate(Config{Package: "p"}, inputs)
		if err != nil {
			t.Fatal(err)
		}
		slices.Reverse(inputs)
		second, err := Generate(Config{Package: "p"}, inputs)
		if err != nil {
			t.Fatal(err)
		}
		if !cmp.Equal(first, second) {
			t.Errorf("%s: output depends on input order", dir)
		}
		for name, data := range first {
			formatted, err := format.Source(data)
			if err != nil || !bytes.Equal(formatted, data) {
				t.Errorf("%s: %s is not gofmt-clean (%v)", dir, name, err)
			}
			if !bytes.HasPrefix(data, []byte("// "+Header+"\n")) {
				t.Errorf("%s: %s lacks the generated-code header", dir, name)
			}
		}
	}
}

// TestGeneratedCodeCompiles generates our interfaces and each directory of
// the corpus into temporary packages inside the module, then runs go build
// and go vet on them.
func TestGeneratedCodeCompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds generated packages")
	}
	root, err := os.MkdirTemp(".", "compiletest_")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	dirs := []string{ownInterfaces}
	for _, c := range goldenCases(t) {
		if !strings.HasPrefix(c.name, "invalid-") {
			dirs = append(dirs, filepath.Join(c.dir, "interfaces"))
		}
	}
	dirs = append(dirs, corpusDirs(t)...)
	for n, dir := range dirs {
		inputs := loadDir(t, dir)
		if len(inputs) == 0 {
			t.Fatalf("%s: no interfaces", dir)
		}
		pkg := fmt.Sprintf("p%02d", n)
		files, err := Generate(Config{Package: pkg}, inputs)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if _, err := Write(filepath.Join(root, pkg), files, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"build"}, {"vet"}} {
		cmd := exec.Command("go", append(args, "./"+filepath.ToSlash(root)+"/...")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s of generated code: %v\n%s", args[0], err, out)
		}
	}
	t.Logf("%d packages generated, built and vetted", len(dirs))
}

// corpusDirs returns the corpus directories, or none (with a log) when the
// corpus is absent.
func corpusDirs(t *testing.T) []string {
	var dirs []string
	t.Run("corpus", func(t *testing.T) { dirs = testcorpus.SourceDirs(t) })
	return dirs
}

func TestWriteSkipsUnchangedAndDeletesOnlyOurs(t *testing.T) {
	dir := t.TempDir()
	files, err := Generate(Config{Package: "p"}, loadDir(t, ownInterfaces))
	if err != nil {
		t.Fatal(err)
	}
	changed, err := Write(dir, files, false)
	if err != nil || len(changed) != len(files) {
		t.Fatalf("first write: %v, %v", changed, err)
	}
	mine := filepath.Join(dir, "handwritten.go")
	if err := os.WriteFile(mine, []byte("package p\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "org_gone_iface.go")
	if err := os.WriteFile(stale, []byte("// "+Header+"\npackage p\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(filepath.Join(dir, PackageFile))
	time.Sleep(10 * time.Millisecond)
	if changed, err := Write(dir, files, true); err != nil || !slices.Equal(changed, []string{"org_gone_iface.go"}) {
		t.Errorf("check mode: %v, %v", changed, err)
	}
	if _, err := os.Stat(stale); err != nil {
		t.Error("check mode deleted a file")
	}
	if changed, err := Write(dir, files, false); err != nil || !slices.Equal(changed, []string{"org_gone_iface.go"}) {
		t.Errorf("second write: %v, %v", changed, err)
	}
	after, _ := os.Stat(filepath.Join(dir, PackageFile))
	if !after.ModTime().Equal(before.ModTime()) {
		t.Error("an unchanged file was rewritten")
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Error("stale generated file kept")
	}
	if _, err := os.Stat(mine); err != nil {
		t.Error("a hand-written file was deleted")
	}
	files["handwritten.go"] = []byte("// " + Header + "\npackage p\n")
	if _, err := Write(dir, files, false); err == nil {
		t.Error("overwrote a hand-written file")
	}
}

func TestNaming(t *testing.T) {
	for in, want := range map[string]string{
		"sensor_id": "SensorID", "cpu-temperature": "CPUTemperature", "httpServer": "HTTPServer",
		"qos": "QoS", "uuid": "UUID", "value": "Value", "3d": "N3d", "Sensors": "Sensors", "deviceIP": "DeviceIP",
	} {
		if got := exported(in); got != want {
			t.Errorf("exported(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"sensor_id": "sensorID", "type": "typeArg", "len": "lenArg", "ctx": "ctxArg", "ID": "id", "value": "valueArg"} {
		if got := argName(in); got != want {
			t.Errorf("argName(%q) = %q, want %q", in, got, want)
		}
	}
}

func iface(name string, endpoints ...string) *model.Interface {
	i := &model.Interface{Name: name, Major: 1, Type: model.Datastream, Ownership: model.OwnershipDevice}
	for _, e := range endpoints {
		i.Mappings = append(i.Mappings, model.Mapping{Endpoint: e, Type: model.Double})
	}
	return i
}

func TestCollisions(t *testing.T) {
	// Same last component: the types take more of the name.
	files, err := Generate(Config{Package: "p"}, []Input{
		{Source: "a.json", Interface: iface("org.a.Values", "/v")},
		{Source: "b.json", Interface: iface("org.b.Values", "/v")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(files["org_a_values.go"], []byte("type AValues struct")) || !bytes.Contains(files["org_b_values.go"], []byte("type BValues struct")) {
		t.Error("same-named interfaces not told apart")
	}
	// Endpoints giving one method name: an error naming both (a suffix
	// would depend on mapping order).
	_, err = Generate(Config{Package: "p"}, []Input{{Source: "c.json", Interface: iface("org.C", "/a_b", "/aB", "/%{type}/%{len}/x")}})
	if !errors.Is(err, ErrCollision) || !strings.Contains(err.Error(), "/a_b and /aB both give the Go name AB") {
		t.Errorf("endpoints with one Go name: %v", err)
	}
	files, err = Generate(Config{Package: "p"}, []Input{{Source: "c.json", Interface: iface("org.C", "/a_b", "/%{type}/%{len}/x")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SendAB(", "SendX(ctx context.Context, typeArg string, lenArg string"} {
		if !bytes.Contains(files["org_c.go"], []byte(want)) {
			t.Errorf("missing %q in:\n%s", want, files["org_c.go"])
		}
	}
	// Unresolvable: the same name twice.
	_, err = Generate(Config{Package: "p"}, []Input{{Source: "d", Interface: iface("org.D", "/v")}, {Source: "e", Interface: iface("org.D", "/v")}})
	if !errors.Is(err, ErrCollision) {
		t.Errorf("same interface twice: %v", err)
	}
	_, err = Generate(Config{Package: "p"}, []Input{{Source: "f", Interface: iface("Values", "/v")}, {Source: "g", Interface: iface("values", "/v")}})
	if !errors.Is(err, ErrCollision) {
		t.Errorf("names differing only in case: %v", err)
	}
}

func FuzzGenerate(f *testing.F) {
	for _, in := range loadDir(f, ownInterfaces) {
		data, err := os.ReadFile(in.Source)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		i, err := schema.Parse("fuzz.json", data)
		if err != nil {
			return
		}
		files, err := Generate(Config{Package: "p"}, []Input{{Source: "fuzz.json", Interface: i}})
		if err != nil {
			if !errors.Is(err, ErrCollision) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		for name, src := range files {
			formatted, err := format.Source(src)
			if err != nil || !bytes.Equal(formatted, src) {
				t.Fatalf("%s does not parse or is not gofmt-clean: %v\n%s", name, err, src)
			}
		}
	})
}

// BenchmarkGenerateCorpus is the whole corpus in process, as the command
// does it for each package directory: list and load (parse, validate) its
// files, generate, and write. "rerun" writes into the output directories a
// first run made, as every go generate after the first does (each file is
// generated and compared, and left alone when unchanged); "new-dirs"
// writes into new directories, creating every file, and reports beside it
// what creating the same files with os.WriteFile costs (create-ms): the
// filesystem's share, which no generator avoids. Both report what
// formatting the same output once with go/format costs (gofmt-once-ms),
// the work the generator no longer does.
func BenchmarkGenerateCorpus(b *testing.B) {
	dirs := testcorpus.SourceDirs(b)
	// generateAll returns the files of each package directory.
	generateAll := func(out string) []map[string][]byte {
		var outputs []map[string][]byte
		for i, dir := range dirs {
			files := generateDir(b, dir)
			if _, err := Write(filepath.Join(out, fmt.Sprintf("p%d", i)), files, false); err != nil {
				b.Fatal(err)
			}
			outputs = append(outputs, files)
		}
		return outputs
	}
	outputs := generateAll(b.TempDir())
	count := 0
	gofmtOnce := func() time.Duration {
		start := time.Now()
		for _, files := range outputs {
			for _, data := range files {
				if _, err := format.Source(data); err != nil {
					b.Fatal(err)
				}
			}
		}
		return time.Since(start)
	}
	for _, files := range outputs {
		count += len(files)
	}
	b.Run("rerun", func(b *testing.B) {
		out := b.TempDir()
		generateAll(out)
		for b.Loop() {
			generateAll(out)
		}
		b.ReportMetric(float64(count), "files")
		b.ReportMetric(ms(gofmtOnce()), "gofmt-once-ms")
	})
	b.Run("new-dirs", func(b *testing.B) {
		out := b.TempDir()
		var create time.Duration
		iter := 0
		for b.Loop() {
			iter++
			generateAll(filepath.Join(out, fmt.Sprintf("gen%d", iter)))
			b.StopTimer()
			create += createFiles(b, filepath.Join(out, fmt.Sprintf("raw%d", iter)), outputs)
			b.StartTimer()
		}
		b.ReportMetric(ms(create)/float64(iter), "create-ms")
		b.ReportMetric(ms(gofmtOnce()), "gofmt-once-ms")
	})
}

func ms(d time.Duration) float64 { return d.Seconds() * 1000 }

// createFiles creates under root a new directory per package holding its
// files, with nothing but os.Mkdir and os.WriteFile, and returns how long
// that took.
func createFiles(b *testing.B, root string, packages []map[string][]byte) time.Duration {
	start := time.Now()
	for i, files := range packages {
		dir := filepath.Join(root, fmt.Sprintf("p%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	return time.Since(start)
}

// generateDir loads one package directory as the command does and
// generates it.
func generateDir(b *testing.B, dir string) map[string][]byte {
	paths, err := schema.PackageFiles([]string{dir})
	if err != nil {
		b.Fatal(err)
	}
	res, err := schema.LoadFiles(paths)
	if err != nil {
		b.Fatal(err)
	}
	inputs := make([]Input, len(res.Interfaces))
	for i, l := range res.Interfaces {
		inputs[i] = Input{Source: filepath.ToSlash(l.File), Interface: l.Interface}
	}
	files, err := Generate(Config{Package: "p"}, inputs)
	if err != nil {
		b.Fatal(err)
	}
	return files
}

// methodTargets returns the endpoint behind each generated method of one
// interface, from the plan the emitter follows.
func methodTargets(t *testing.T, i *model.Interface) map[string]string {
	t.Helper()
	pl, err := makePlan(Config{Package: "p"}, []Input{{Source: "x.json", Interface: i}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	ip := pl.ifaces[0]
	for _, mp := range ip.mappings {
		for _, name := range ip.methodNames(mp) {
			out[name] = i.Mappings[mp.index].Endpoint
		}
	}
	return out
}

// TestStableNames: a minor version that reorders and adds mappings keeps
// every existing method on its endpoint; a new mapping whose name collides
// with an existing one is an error, never a silent move of SendX2.
func TestStableNames(t *testing.T) {
	v10 := iface("org.S", "/x_2", "/y")
	v11 := iface("org.S", "/z", "/y", "/x_2")
	v11.Minor = 1
	before, after := methodTargets(t, v10), methodTargets(t, v11)
	for name, endpoint := range before {
		if after[name] != endpoint {
			t.Errorf("%s moved from %s to %q", name, endpoint, after[name])
		}
	}
	if after["SendZ"] != "/z" {
		t.Errorf("new mapping: %v", after)
	}
	v12 := iface("org.S", "/X2", "/z", "/y", "/x_2")
	v12.Minor = 2
	_, err := Generate(Config{Package: "p"}, []Input{{Source: "s.json", Interface: v12}})
	if !errors.Is(err, ErrCollision) || !strings.Contains(err.Error(), "/X2 and /x_2") {
		t.Errorf("colliding mapping added in a minor: %v, want a collision error naming both endpoints", err)
	}
}

// TestAccessorKinds: getters, setters, unsetters and listings have
// distinct prefixes, so /set_brightness cannot produce a name that reads
// like the setter of /brightness.
func TestAccessorKinds(t *testing.T) {
	i := &model.Interface{Name: "org.P", Major: 1, Type: model.Properties, Ownership: model.OwnershipDevice, Mappings: []model.Mapping{
		{Endpoint: "/brightness", Type: model.Integer, AllowUnset: true},
		{Endpoint: "/set_brightness", Type: model.Integer, AllowUnset: true},
	}}
	want := map[string]string{
		"GetBrightness": "/brightness", "SetBrightness": "/brightness", "UnsetBrightness": "/brightness",
		"GetSetBrightness": "/set_brightness", "SetSetBrightness": "/set_brightness", "UnsetSetBrightness": "/set_brightness",
	}
	if diff := cmp.Diff(want, methodTargets(t, i)); diff != "" {
		t.Errorf("methods (-want +got):\n%s", diff)
	}
	files, err := Generate(Config{Package: "p"}, []Input{{Source: "p.json", Interface: i}})
	if err != nil {
		t.Fatal(err)
	}
	for name := range want {
		if !bytes.Contains(files["org_p.go"], []byte(") "+name+"(")) {
			t.Errorf("no method %s in:\n%s", name, files["org_p.go"])
		}
	}
}

// TestHandlerSignatures: a handler method takes a timestamp only when its
// mapping has explicit_timestamp, and server-owned comments say nothing of
// retention or expiry (what the device does while offline).
func TestHandlerSignatures(t *testing.T) {
	i := &model.Interface{Name: "org.H", Major: 1, Type: model.Datastream, Ownership: model.OwnershipServer, Mappings: []model.Mapping{
		{Endpoint: "/%{ch}/plain", Type: model.Double, Retention: model.Stored, Expiry: time.Minute},
		{Endpoint: "/%{ch}/stamped", Type: model.Double, ExplicitTimestamp: true, Retention: model.Volatile},
	}}
	files, err := Generate(Config{Package: "p"}, []Input{{Source: "h.json", Interface: i}})
	if err != nil {
		t.Fatal(err)
	}
	src := string(files["org_h.go"])
	for _, want := range []string{
		"\tPlain(ctx context.Context, ch string, value float64) error\n",
		"\tStamped(ctx context.Context, ch string, value float64, timestamp time.Time) error\n",
		"return h.Plain(ctx, in.Params[0], v)\n",
		"return h.Stamped(ctx, in.Params[0], v, in.Timestamp)\n",
	} {
		if !strings.Contains(src, want) {
			t.Errorf("missing %q in:\n%s", want, src)
		}
	}
	for _, line := range strings.Split(src, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "//") {
			continue
		}
		for _, word := range []string{"retention", "expires", "stored", "volatile"} {
			if strings.Contains(strings.ToLower(line), word) {
				t.Errorf("server-owned comment mentions %q: %s", word, line)
			}
		}
	}
}
