package schema

import (
	"fmt"
	"strings"

	"github.com/astarte-gen/astarte-gen/runtime/model"
)

// checkEndpoints applies the two server checks of spec §4.4: endpoints are
// distinct once parameter names are dropped and case is folded, and no two
// endpoints overlap (a path could match both, or one is a pattern prefix of
// the other).
func checkEndpoints(r *report, iface *model.Interface) {
	levels := make([][]model.Level, len(iface.Mappings))
	for n := range iface.Mappings {
		levels[n] = iface.Mappings[n].Levels()
	}
	normalized := map[string]int{}
	for j := range iface.Mappings {
		ptr := fmt.Sprintf("/mappings/%d/endpoint", j)
		key := normalize(levels[j])
		if i, dup := normalized[key]; dup {
			r.errorf(ptr, "endpoint %q duplicates %q (mapping %d): endpoints must differ once parameter names are removed and case is ignored",
				iface.Mappings[j].Endpoint, iface.Mappings[i].Endpoint, i)
			continue
		}
		normalized[key] = j
		for i := range j {
			if example, ok := clash(levels[i], levels[j]); ok {
				r.errorf(ptr, "endpoint %q clashes with %q (mapping %d): %s", iface.Mappings[j].Endpoint, iface.Mappings[i].Endpoint, i, example)
				break
			}
		}
	}
}

// normalize drops parameter names and folds case: "/%{a}/Value" → "//value".
func normalize(levels []model.Level) string {
	var b strings.Builder
	for _, l := range levels {
		b.WriteByte('/')
		if !l.Param {
			b.WriteString(strings.ToLower(l.Name))
		}
	}
	return b.String()
}

// clash reports whether two endpoints overlap: every level of the shorter is
// compatible with the same level of the longer (a parameter matches
// anything; literals must be equal). It returns a sentence with a path that
// shows the overlap.
func clash(a, b []model.Level) (string, bool) {
	n := min(len(a), len(b))
	var path strings.Builder
	for i := range n {
		x, y := a[i], b[i]
		if !x.Param && !y.Param && x.Name != y.Name {
			return "", false
		}
		path.WriteByte('/')
		switch {
		case !x.Param:
			path.WriteString(x.Name)
		case !y.Param:
			path.WriteString(y.Name)
		default:
			path.WriteString(x.Name)
		}
	}
	if len(a) == len(b) {
		return fmt.Sprintf("a path like %s would match both", path.String()), true
	}
	return fmt.Sprintf("a path like %s would be both a value and a prefix of the longer endpoint", path.String()), true
}

// checkObject applies the object-aggregation rules of spec §4.5.
func checkObject(r *report, iface *model.Interface) {
	first := &iface.Mappings[0]
	for j := range iface.Mappings {
		m := &iface.Mappings[j]
		ptr := fmt.Sprintf("/mappings/%d", j)
		levels := m.Levels()
		if last := levels[len(levels)-1]; last.Param {
			r.errorf(ptr+"/endpoint", "the last level of an object endpoint must be a literal (it is the object's key), not the parameter %s", last)
		}
		if len(levels) == 1 && j == 0 {
			r.warnf(ptr+"/endpoint", "object endpoints of one level are deprecated: use at least two levels (e.g. /%%{id}%s)", m.Endpoint)
		}
		if j == 0 {
			continue
		}
		if m.ObjectPrefix() != first.ObjectPrefix() {
			r.errorf(ptr+"/endpoint", "object endpoints must share one prefix (same levels and parameter names): %q has %q, mapping 0 has %q",
				m.Endpoint, m.ObjectPrefix(), first.ObjectPrefix())
		}
		for _, field := range differingAttributes(first, m) {
			r.errorf(ptr+"/"+field, "%s must be the same on every mapping of an object aggregation (mapping 0 differs)", field)
		}
	}
}

// differingAttributes lists the delivery attributes in which m differs from
// first; object mappings must agree on all of them.
func differingAttributes(first, m *model.Mapping) []string {
	var out []string
	add := func(field string, differs bool) {
		if differs {
			out = append(out, field)
		}
	}
	add("reliability", first.Reliability != m.Reliability)
	add("retention", first.Retention != m.Retention)
	add("expiry", first.Expiry != m.Expiry)
	add("explicit_timestamp", first.ExplicitTimestamp != m.ExplicitTimestamp)
	add("allow_unset", first.AllowUnset != m.AllowUnset)
	add("database_retention_policy", first.DatabaseRetentionPolicy != m.DatabaseRetentionPolicy)
	add("database_retention_ttl", first.DatabaseRetentionTTL != m.DatabaseRetentionTTL)
	return out
}
