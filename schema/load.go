package schema

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/astarte-gen/astarte-gen/runtime"
)

// Loaded is one valid interface file.
type Loaded struct {
	// File is the path as found (relative to the working directory when the
	// input was relative).
	File      string
	Interface *runtime.Interface
}

// Result is the outcome of loading files.
type Result struct {
	// Interfaces are the valid files, sorted by path.
	Interfaces []Loaded
	// Diagnostics holds every error and warning, in file order.
	Diagnostics []Diagnostic
}

// Errors returns only the error diagnostics.
func (r *Result) Errors() []Diagnostic {
	errs, _ := split(r.Diagnostics)
	return errs
}

// LoadInterfaces loads and validates the interface files under paths
// (files, or directories walked recursively), with the rules of
// astarte-gen validate, for programs that add interfaces at run time
// (Device.AddInterfaces). Any error diagnostic fails the whole load with
// an *Error (wrapping ErrInvalid) listing every one.
func LoadInterfaces(paths ...string) ([]*runtime.Interface, error) {
	res, err := Load(paths)
	if err != nil {
		return nil, err
	}
	if errs := res.Errors(); len(errs) > 0 {
		return nil, &Error{Diagnostics: errs}
	}
	out := make([]*runtime.Interface, len(res.Interfaces))
	for i, l := range res.Interfaces {
		out[i] = l.Interface
	}
	return out, nil
}

// Files expands paths into interface files: files as given, directories
// walked recursively for *.json. The result is sorted and without
// duplicates. Unreadable paths are I/O errors.
func Files(paths []string) ([]string, error) { return expand(paths, true) }

// PackageFiles is Files without recursion: a directory contributes the
// *.json files directly inside it, one generated package's worth.
func PackageFiles(paths []string) ([]string, error) { return expand(paths, false) }

func expand(paths []string, recursive bool) ([]string, error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, filepath.Clean(p))
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return err
			case d.IsDir() && path != p && !recursive:
				return filepath.SkipDir
			case !d.IsDir() && strings.HasSuffix(d.Name(), ".json"):
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(files)
	return slices.Compact(files), nil
}

// Load parses every interface file under paths (see Files). Two files in
// one directory — one generated package's worth — declaring the same
// interface name are an error. The error is for I/O only; invalid
// interfaces are in Result.Diagnostics.
func Load(paths []string) (*Result, error) {
	files, err := Files(paths)
	if err != nil {
		return nil, err
	}
	return LoadFiles(files)
}

// LoadFiles is Load for a list of files (see Files and PackageFiles).
func LoadFiles(files []string) (*Result, error) {
	res := &Result{}
	byDir := map[string]map[string]string{} // dir → interface name → file
	for _, f := range files {
		data, refused, err := readInterfaceFile(f)
		if err != nil {
			return nil, err
		}
		if refused != nil {
			res.Diagnostics = append(res.Diagnostics, *refused)
			continue
		}
		iface, warns, err := ParseWithWarnings(f, data)
		if e, ok := err.(*Error); ok {
			res.Diagnostics = append(res.Diagnostics, e.Diagnostics...)
		}
		res.Diagnostics = append(res.Diagnostics, warns...)
		if iface == nil {
			continue
		}
		dir := filepath.Dir(f)
		if byDir[dir] == nil {
			byDir[dir] = map[string]string{}
		}
		if other, dup := byDir[dir][iface.Name]; dup {
			res.Diagnostics = append(res.Diagnostics, Diagnostic{File: f, Pointer: "/interface_name", Severity: SeverityError,
				Message: fmt.Sprintf("interface %s is also declared in %s, in the same directory (one package holds one version of an interface)", iface.Name, other)})
			continue
		}
		byDir[dir][iface.Name] = f
		res.Interfaces = append(res.Interfaces, Loaded{File: f, Interface: iface})
	}
	return res, nil
}
