package schema

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testdata = "../testdata/interfaces"

// TestOwnInterfacesValid requires our test interfaces to be valid without
// a single warning.
func TestOwnInterfacesValid(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testdata, "*.json"))
	if err != nil || len(files) < 7 {
		t.Fatalf("test interfaces missing: %v %v", files, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, warns, err := ParseWithWarnings(f, data); err != nil || len(warns) > 0 {
			t.Errorf("%s: %v %v", f, err, warns)
		}
	}
}

// TestInvalidFiles checks that each file of testdata/interfaces/invalid is
// rejected for the rule its name states.
func TestInvalidFiles(t *testing.T) {
	want := map[string]struct{ pointer, contains string }{
		"not-json":                     {"", "not valid JSON: line 1, column"},
		"missing-ownership":            {"", "ownership"},
		"no-mappings":                  {"/mappings", "minimum 1 items"},
		"version-zero-zero":            {"/version_minor", "greater than 0"},
		"reserved-name":                {"/interface_name", "reserved"},
		"bad-name-trailing-dot":        {"/interface_name", "dot-separated"},
		"endpoint-partial-parameter":   {"/mappings/0/endpoint", "whole-level parameter"},
		"endpoint-too-deep":            {"/mappings/0/endpoint", ""},
		"reliability-on-properties":    {"/mappings/0/reliability", "only applies to datastreams"},
		"allow-unset-on-datastream":    {"/mappings/0/allow_unset", "only applies to properties"},
		"required-on-individual":       {"/mappings/0/required", "object-aggregated"},
		"object-properties":            {"/aggregation", "datastreams only"},
		"ttl-without-use-ttl":          {"/mappings/0/database_retention_ttl", "needs database_retention_policy"},
		"use-ttl-without-ttl":          {"/mappings/0/database_retention_ttl", "is required"},
		"encrypted":                    {"/mappings/0/encrypted", "key agreement"},
		"duplicate-ignoring-case":      {"/mappings/1/endpoint", "case is ignored"},
		"clash-param-vs-literal":       {"/mappings/1/endpoint", `clashes with "/%{itemIndex}/value" (mapping 0): a path like /myPath/value would match both`},
		"clash-prefix":                 {"/mappings/1/endpoint", "prefix"},
		"object-different-prefix":      {"/mappings/1/endpoint", "share one prefix"},
		"object-different-attributes":  {"/mappings/1/retention", "same on every mapping"},
		"object-parametric-last-level": {"/mappings/0/endpoint", "must be a literal"},
		"unknown-type":                 {"/mappings/0/type", "must be one of"},
	}
	files, _ := filepath.Glob(filepath.Join(testdata, "invalid", "*.json"))
	if len(files) != len(want) {
		t.Errorf("%d invalid files, %d expectations", len(files), len(want))
	}
	for _, f := range files {
		rule := strings.TrimSuffix(filepath.Base(f), ".json")
		exp, ok := want[rule]
		if !ok {
			t.Errorf("%s has no expectation", f)
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Parse(f, data)
		e, isErr := err.(*Error)
		if !isErr {
			t.Errorf("%s accepted, want %q", rule, exp.contains)
			continue
		}
		found := false
		for _, d := range e.Diagnostics {
			found = found || (d.Pointer == exp.pointer && strings.Contains(d.Message, exp.contains))
		}
		if !found {
			t.Errorf("%s: no diagnostic at %q containing %q:\n%v", rule, exp.pointer, exp.contains, err)
		}
	}
}
