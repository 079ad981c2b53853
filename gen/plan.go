// Package gen turns validated Astarte interfaces into a Go package of typed
// senders, handlers and descriptors. It first builds a plan — every Go name,
// type and file decided, every collision found — then writes the plan as Go
// source in gofmt's layout directly (see source), with no formatting pass.
// It holds no package-level mutable state: options travel in Config, and
// generations may run concurrently.
package gen

import (
	"errors"
	"fmt"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/astarte-gen/astarte-gen/runtime/model"
)

// ErrCollision is wrapped by errors about Go names the generator cannot make
// distinct.
var ErrCollision = errors.New("name collision")

// Config configures a generation.
type Config struct {
	// Package is the Go package name of the output.
	Package string
	// Version is the generator's version, written in every file's header
	// ("(devel)" when empty).
	Version string
}

func (c Config) version() string {
	if c.Version == "" {
		return "(devel)"
	}
	return c.Version
}

// Input is one validated interface and the file it came from.
type Input struct {
	// Source is written in the generated header: the interface file's path
	// relative to the output directory, slash-separated (see SourcePath),
	// so that the output does not depend on where the generator ran.
	Source    string
	Interface *model.Interface
}

// SourcePath returns the path of file relative to the output directory
// outDir, slash-separated, whatever the working directory and whether the
// paths are relative or absolute.
func SourcePath(outDir, file string) (string, error) {
	absOut, err := filepath.Abs(outDir)
	if err != nil {
		return "", err
	}
	absFile, err := filepath.Abs(file)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(absOut, absFile)
	if err != nil {
		return "", fmt.Errorf("%s is not reachable from %s: %w", file, outDir, err)
	}
	return filepath.ToSlash(rel), nil
}

// PackageFile is the name of the generated file that lists the interfaces.
const PackageFile = "astarte.go"

// ifacePlan is what the generator decided for one interface.
type ifacePlan struct {
	Input
	file     string
	typeName string
	mappings []mappingPlan // individual interfaces
	object   *objectPlan   // object aggregations
}

type mappingPlan struct {
	index     int
	name      string   // base method name, e.g. "Temperature"
	params    []string // Go argument names, in endpoint order
	keyFields []string // fields of the All<name> key struct, in endpoint order
}

type objectPlan struct {
	name   string // e.g. "Climate": struct <Type><Name>, method Send<Name>
	params []string
	fields []fieldPlan
}

type fieldPlan struct {
	index int
	name  string
}

// plan is a whole generation.
type plan struct {
	pkg    string
	ifaces []*ifacePlan // sorted by interface name
}

func (p *ifacePlan) device() bool     { return p.Interface.Ownership == model.OwnershipDevice }
func (p *ifacePlan) properties() bool { return p.Interface.Type == model.Properties }

// descVar is the unexported variable holding the interface's descriptor.
func (p *ifacePlan) descVar() string {
	return strings.ToLower(p.typeName[:1]) + p.typeName[1:] + "Interface"
}

// structName is the Go type of an object value.
func (p *ifacePlan) structName() string { return p.typeName + p.object.name }

func makePlan(opts Config, inputs []Input) (*plan, error) {
	if !token.IsIdentifier(opts.Package) || token.IsKeyword(opts.Package) {
		return nil, fmt.Errorf("package name %q is not a Go identifier", opts.Package)
	}
	pl := &plan{pkg: opts.Package}
	for _, in := range inputs {
		if in.Interface == nil {
			return nil, fmt.Errorf("%s: nil interface", in.Source)
		}
		pl.ifaces = append(pl.ifaces, &ifacePlan{Input: in})
	}
	slices.SortFunc(pl.ifaces, func(a, b *ifacePlan) int { return strings.Compare(a.Interface.Name, b.Interface.Name) })
	for i := 1; i < len(pl.ifaces); i++ {
		if pl.ifaces[i].Interface.Name == pl.ifaces[i-1].Interface.Name {
			return nil, fmt.Errorf("%w: interface %s given twice (%s, %s)", ErrCollision, pl.ifaces[i].Interface.Name, pl.ifaces[i-1].Source, pl.ifaces[i].Source)
		}
	}
	if err := pl.nameTypes(); err != nil {
		return nil, err
	}
	for _, ip := range pl.ifaces {
		if err := ip.nameMembers(); err != nil {
			return nil, fmt.Errorf("%s (%s): %w", ip.Interface.Name, ip.Source, err)
		}
	}
	return pl, pl.checkPackageNames()
}

// nameTypes gives each interface a type name from the last component of its
// name, adding earlier components to the interfaces that share one, and a
// file name from the whole name.
func (pl *plan) nameTypes() error {
	depth := make([]int, len(pl.ifaces))
	for i := range depth {
		depth[i] = 1
	}
	for {
		byName := map[string][]int{}
		for i, ip := range pl.ifaces {
			comps := strings.Split(ip.Interface.Name, ".")
			ip.typeName = exported(strings.Join(comps[max(0, len(comps)-depth[i]):], "_"))
			byName[ip.typeName] = append(byName[ip.typeName], i)
		}
		clash := false
		for name, idx := range byName {
			if len(idx) < 2 {
				continue
			}
			clash = true
			for _, i := range idx {
				if depth[i] >= len(strings.Split(pl.ifaces[i].Interface.Name, ".")) {
					return fmt.Errorf("%w: interfaces %s and %s both give the Go type %s", ErrCollision,
						pl.ifaces[idx[0]].Interface.Name, pl.ifaces[idx[1]].Interface.Name, name)
				}
				depth[i]++
			}
		}
		if !clash {
			break
		}
	}
	files := map[string]string{PackageFile: "the package file"}
	for _, ip := range pl.ifaces {
		ip.file = strings.ToLower(strings.NewReplacer(".", "_", "-", "_").Replace(ip.Interface.Name)) + ".go"
		if other, dup := files[ip.file]; dup {
			return fmt.Errorf("%w: interface %s would be written to %s, like %s", ErrCollision, ip.Interface.Name, ip.file, other)
		}
		files[ip.file] = ip.Interface.Name
	}
	return nil
}

// endpointName joins the literal levels of an endpoint: "/%{id}/cpu_temp" →
// "CPUTemp"; an endpoint of parameters only is "Value".
func endpointName(levels []model.Level) string {
	var parts []string
	for _, l := range levels {
		if !l.Param {
			parts = append(parts, l.Name)
		}
	}
	if len(parts) == 0 {
		return "Value"
	}
	return exported(strings.Join(parts, "_"))
}

// paramNames returns the Go argument names of an endpoint's parameters.
func paramNames(levels []model.Level) []string { return paramIdents(levels, argName) }

// keyFields returns the exported field names of an endpoint's parameters.
func keyFields(levels []model.Level) []string { return paramIdents(levels, exported) }

// paramIdents names an endpoint's parameters with name, numbering them in
// endpoint order when two would be equal (a position, never another
// mapping, decides the number).
func paramIdents(levels []model.Level, name func(string) string) []string {
	var names []string
	for _, l := range levels {
		if !l.Param {
			continue
		}
		id := name(l.Name)
		for n := 2; slices.Contains(names, id); n++ {
			id = name(l.Name) + strconv.Itoa(n)
		}
		names = append(names, id)
	}
	return names
}

// keyName is the key struct of All<M> for a mapping with several
// parameters.
func (ip *ifacePlan) keyName(mp mappingPlan) string { return ip.typeName + mp.name + "Key" }

// nameMembers names the methods (or the object struct and its fields) of
// one interface. A name comes from its endpoint alone, never from the order
// or the presence of other mappings, so that a minor version adding
// mappings cannot rename or re-target an existing method. Two endpoints
// giving one name are an error naming both: suffixing one of them would
// depend on which came first.
func (ip *ifacePlan) nameMembers() error {
	ms := ip.Interface.Mappings
	if ip.Interface.Aggregation == model.Object {
		levels := ms[0].Levels()
		prefix := levels[:len(levels)-1]
		obj := &objectPlan{name: endpointName(prefix), params: paramNames(prefix)}
		for i := range ms {
			obj.fields = append(obj.fields, fieldPlan{index: i, name: exported(ms[i].LastLevel())})
		}
		ip.object = obj
		return distinct(len(obj.fields), func(i int) string { return obj.fields[i].name }, func(i int) string { return ms[obj.fields[i].index].LastLevel() }, "object fields")
	}
	for i := range ms {
		levels := ms[i].Levels()
		ip.mappings = append(ip.mappings, mappingPlan{index: i, name: endpointName(levels), params: paramNames(levels), keyFields: keyFields(levels)})
	}
	return distinct(len(ip.mappings), func(i int) string { return ip.mappings[i].name }, func(i int) string { return ms[ip.mappings[i].index].Endpoint }, "endpoints")
}

// distinct reports the first two of n items whose Go names are equal.
func distinct(n int, name, source func(int) string, what string) error {
	seen := map[string]int{}
	for i := range n {
		if j, dup := seen[name(i)]; dup {
			return fmt.Errorf("%w: %s %s and %s both give the Go name %s; rename one of them (a numbered suffix would depend on mapping order, and a later minor version could move an existing method to another endpoint)",
				ErrCollision, what, source(j), source(i), name(i))
		}
		seen[name(i)] = i
	}
	return nil
}

// methodNames lists the methods generated on the interface's type (or its
// handler) for mapping mp. Each kind has its own prefix, so two kinds can
// never give one name.
func (ip *ifacePlan) methodNames(mp mappingPlan) []string {
	name := mp.name
	switch {
	case ip.properties():
		names := []string{"Get" + name}
		if ip.device() {
			names = append(names, "Set"+name)
		}
		if ip.device() && ip.Interface.Mappings[mp.index].AllowUnset {
			names = append(names, "Unset"+name)
		}
		if len(mp.params) > 0 {
			names = append(names, "All"+name)
		}
		return names
	case ip.device():
		return []string{"Send" + name}
	}
	return []string{name}
}

// packageNames lists the package-level identifiers an interface defines.
func (ip *ifacePlan) packageNames() []string {
	t := ip.typeName
	names := []string{t + "Interface"}
	if ip.device() || ip.properties() {
		names = append(names, t, "New"+t)
	}
	if !ip.device() {
		names = append(names, t+"Handler", "Unimplemented"+t+"Handler", "Register"+t)
	}
	if ip.object != nil {
		names = append(names, ip.structName())
	}
	for _, mp := range ip.mappings {
		if ip.properties() && len(mp.params) > 1 {
			names = append(names, ip.keyName(mp))
		}
	}
	return names
}

// checkPackageNames refuses two package-level identifiers with one name.
func (pl *plan) checkPackageNames() error {
	owner := map[string]string{"Interfaces": "the package file"}
	for _, ip := range pl.ifaces {
		for _, n := range ip.packageNames() {
			if other, dup := owner[n]; dup {
				return fmt.Errorf("%w: %s from interface %s is also declared for %s; rename one interface", ErrCollision, n, ip.Interface.Name, other)
			}
			owner[n] = ip.Interface.Name
		}
	}
	return nil
}
