package schema

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/astarte-gen/astarte-gen/runtime/model"
)

// Names of findings: for errors, the name Astarte gives the refusal
// (interface-evolution.md E.1, E.2); warnings and notes describe changes
// Astarte accepts, so their names are ours.
const (
	RuleNameNotMatching            = "name_not_matching"
	RuleMajorNotMatching           = "major_version_not_matching"
	RuleMinorNotIncreased          = "minor_version_not_increased"
	RuleDowngradeNotAllowed        = "downgrade_not_allowed"
	RuleInvalidUpdate              = "invalid_update"
	RuleMissingEndpoints           = "missing_endpoints"
	RuleIncompatibleEndpointChange = "incompatible_endpoint_change"
	RuleOverlappingMappings        = "overlapping_mappings"
	RuleInterfaceNameCollision     = "interface_name_collision"
	// RuleObjectTimestampChanged warns that explicit_timestamp changed on
	// an object-aggregated datastream: accepted, but the object's table
	// keeps its timestamp column.
	RuleObjectTimestampChanged = "object_explicit_timestamp_changed"
	// RuleMajorNotDeletable warns that a new major ≥ 1 can never be deleted.
	RuleMajorNotDeletable = "major_not_deletable"
	// RuleInterfaceRemoved notes that a name+major is gone from the new
	// set; Astarte keeps it installed.
	RuleInterfaceRemoved = "interface_removed"
)

// Finding is one consequence of replacing an interface version by another:
// a change Astarte refuses (SeverityError), a risky change it accepts
// (SeverityWarning) or something worth knowing (SeverityNote). File and
// Pointer locate the value in the new version (in the old one for a
// removed interface).
type Finding struct {
	Diagnostic
	// Rule is the finding's name (see the Rule constants), e.g.
	// "missing_endpoints"; empty for a file that is not a valid interface.
	Rule string `json:"rule,omitempty"`
	// Fix says what to do, in plain words.
	Fix string `json:"fix,omitempty"`
}

// String formats the finding as "file:pointer: message (rule); fix: …",
// with the severity before the message of a warning or a note.
func (f Finding) String() string {
	s := f.Diagnostic.String()
	if f.Rule != "" {
		s += " (" + f.Rule + ")"
	}
	if f.Fix != "" {
		s += "; fix: " + f.Fix
	}
	return s
}

// Refused reports whether any finding is an error: Astarte would refuse
// the change.
func Refused(findings []Finding) bool {
	return slices.ContainsFunc(findings, func(f Finding) bool { return f.Severity == SeverityError })
}

// Compare checks the update of an installed interface (old) to a new
// version of the same name and major the way Astarte does (E.1), and
// reports every refusal rather than the first, plus a warning for
// explicit_timestamp changes on object datastreams. Findings point into
// new.File.
func Compare(old, new Loaded) []Finding {
	c := &comparison{old: old.Interface, new: new.Interface, file: new.File}
	switch {
	case c.old.Name != c.new.Name:
		c.add(SeverityError, "/interface_name", RuleNameNotMatching, "choose the file of the same interface",
			"interface name %s does not match the installed %s", c.new.Name, c.old.Name)
	case c.old.Major != c.new.Major:
		c.add(SeverityError, "/version_major", RuleMajorNotMatching, "compare with the installed version of the same major",
			"version_major %d does not match the installed %d", c.new.Major, c.old.Major)
	default:
		c.header()
		c.mappings()
		c.minor()
	}
	return c.findings
}

// comparison collects the findings of one Compare.
type comparison struct {
	old, new *model.Interface
	file     string
	// changes lists the pointers of every content change, allowed or not:
	// any of them requires a higher minor.
	changes  []string
	findings []Finding
}

func (c *comparison) add(sev Severity, pointer, rule, fix, format string, args ...any) {
	c.findings = append(c.findings, Finding{
		Diagnostic: Diagnostic{File: c.file, Pointer: pointer, Severity: sev, Message: fmt.Sprintf(format, args...)},
		Rule:       rule, Fix: fix,
	})
}

// field is one comparable field of a descriptor, rendered as in a file.
type field struct{ name, value string }

// header applies E.1.3: type, ownership and aggregation never change
// within a major; doc and description may.
func (c *comparison) header() {
	fields := func(i *model.Interface) []field {
		return []field{{"type", i.Type.String()}, {"ownership", i.Ownership.String()},
			{"aggregation", i.Aggregation.String()}, {"description", i.Description}, {"doc", i.Doc}}
	}
	for _, f := range c.diff("", fields(c.old), fields(c.new)) {
		if f.name != "description" && f.name != "doc" {
			c.add(SeverityError, "/"+f.name, RuleInvalidUpdate, bumpOr("set %s back to %s", f.name, f.value),
				"%s changed from %s to %s: type, ownership and aggregation never change within a major", f.name, f.value, fieldValue(fields(c.new), f.name))
		}
	}
}

// diff returns the fields of old whose value differs in new, recording
// each as a content change under prefix.
func (c *comparison) diff(prefix string, old, new []field) []field {
	var out []field
	for k := range old {
		if old[k].value != new[k].value {
			c.changes = append(c.changes, prefix+"/"+old[k].name)
			out = append(out, old[k])
		}
	}
	return out
}

func fieldValue(fields []field, name string) string {
	for _, f := range fields {
		if f.name == name {
			return f.value
		}
	}
	return ""
}

// bumpOr is the fix of a change that needs a new major.
func bumpOr(format string, args ...any) string {
	return "bump the major, or " + fmt.Sprintf(format, args...)
}

// mappingFields lists the fields of a mapping other than its endpoint, in
// file order.
func mappingFields(m *model.Mapping) []field {
	return []field{
		{"type", m.Type.String()},
		{"reliability", m.Reliability.String()},
		{"retention", m.Retention.String()},
		{"expiry", seconds(m.Expiry)},
		{"database_retention_policy", m.DatabaseRetentionPolicy.String()},
		{"database_retention_ttl", seconds(m.DatabaseRetentionTTL)},
		{"explicit_timestamp", strconv.FormatBool(m.ExplicitTimestamp)},
		{"allow_unset", strconv.FormatBool(m.AllowUnset)},
		{"required", strconv.FormatBool(m.Required)},
		{"description", m.Description},
		{"doc", m.Doc},
	}
}

func seconds(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) }

// mutableMappingFields may change within a major (E.1.6).
var mutableMappingFields = []string{"doc", "description", "explicit_timestamp", "retention", "expiry"}

// mappings applies E.1.5–7: every old endpoint stays, with only the
// mutable fields changed, and new endpoints overlap nothing.
func (c *comparison) mappings() {
	inNew := map[string]int{}
	for j := range c.new.Mappings {
		inNew[c.new.Mappings[j].Endpoint] = j
	}
	inOld := map[string]bool{}
	var removed []*model.Mapping
	for i := range c.old.Mappings {
		om := &c.old.Mappings[i]
		inOld[om.Endpoint] = true
		if j, ok := inNew[om.Endpoint]; ok {
			c.mapping(om, &c.new.Mappings[j], j)
		} else {
			removed = append(removed, om)
		}
	}
	var added []int
	for j := range c.new.Mappings {
		if !inOld[c.new.Mappings[j].Endpoint] {
			added = append(added, j)
			c.changes = append(c.changes, fmt.Sprintf("/mappings/%d", j))
		}
	}
	for _, om := range removed {
		c.removed(om, added)
	}
	c.overlaps(removed, added)
}

// mapping compares one mapping kept at index j of the new version.
func (c *comparison) mapping(om, nm *model.Mapping, j int) {
	prefix := fmt.Sprintf("/mappings/%d", j)
	newFields := mappingFields(nm)
	for _, f := range c.diff(prefix, mappingFields(om), newFields) {
		ptr := prefix + "/" + f.name
		switch {
		case !slices.Contains(mutableMappingFields, f.name):
			c.add(SeverityError, ptr, RuleIncompatibleEndpointChange, bumpOr("set %s back to %s", f.name, f.value),
				"%s of %s changed from %s to %s: within a major only doc, description, explicit_timestamp, retention and expiry may change",
				f.name, om.Endpoint, f.value, fieldValue(newFields, f.name))
		case f.name == "explicit_timestamp" && c.new.Aggregation == model.Object && c.new.Type == model.Datastream:
			c.add(SeverityWarning, ptr, RuleObjectTimestampChanged, bumpOr("set explicit_timestamp back to %s", f.value),
				"explicit_timestamp of %s changed to %s: Astarte accepts it, but an object datastream's table keeps the timestamp column it was created with, so inserts may fail",
				om.Endpoint, fieldValue(newFields, f.name))
		}
	}
}

// removed reports an old mapping missing from the new version, as a
// rename when a new endpoint differs from it only in parameter names or
// case.
func (c *comparison) removed(om *model.Mapping, added []int) {
	key := normalize(om.Levels())
	for _, j := range added {
		nm := &c.new.Mappings[j]
		if normalize(nm.Levels()) == key {
			c.add(SeverityError, fmt.Sprintf("/mappings/%d/endpoint", j), RuleMissingEndpoints, bumpOr("restore the endpoint %s", om.Endpoint),
				"endpoint %s was renamed to %s: a renamed parameter or a change of case removes the old mapping", om.Endpoint, nm.Endpoint)
			return
		}
	}
	c.add(SeverityError, "/mappings", RuleMissingEndpoints, bumpOr("restore the mapping %s", om.Endpoint),
		"mapping %s was removed: devices and data already use it", om.Endpoint)
}

// overlaps applies E.1.7 to the added mappings: none may overlap a
// removed mapping (ignoring case and parameter names) or another added
// one. Renames, already reported, are skipped.
func (c *comparison) overlaps(removed []*model.Mapping, added []int) {
	for n, j := range added {
		nm := &c.new.Mappings[j]
		others := slices.Clone(removed)
		for _, k := range added[:n] {
			others = append(others, &c.new.Mappings[k])
		}
		for _, om := range others {
			if normalize(om.Levels()) == normalize(nm.Levels()) {
				continue
			}
			if example, ok := clash(folded(om.Levels()), folded(nm.Levels())); ok {
				c.add(SeverityError, fmt.Sprintf("/mappings/%d/endpoint", j), RuleOverlappingMappings,
					fmt.Sprintf("change %s so that no path can match both", nm.Endpoint),
					"endpoint %s overlaps %s: %s", nm.Endpoint, om.Endpoint, example)
				break
			}
		}
	}
}

// folded lowercases the literal levels: Astarte compares endpoints
// without case.
func folded(levels []model.Level) []model.Level {
	for n := range levels {
		if !levels[n].Param {
			levels[n].Name = strings.ToLower(levels[n].Name)
		}
	}
	return levels
}

// minor applies E.1.4: the minor strictly increases when the content
// changes, and never goes down.
func (c *comparison) minor() {
	om, nm := c.old.Minor, c.new.Minor
	switch {
	case nm < om && len(c.changes) == 0:
		c.add(SeverityError, "/version_minor", RuleDowngradeNotAllowed, fmt.Sprintf("set version_minor back to %d", om),
			"version_minor went down from %d to %d", om, nm)
	case nm < om:
		c.add(SeverityError, "/version_minor", RuleDowngradeNotAllowed, fmt.Sprintf("raise version_minor to %d", om+1),
			"version_minor went down from %d to %d while the content changed (%s)", om, nm, summary(c.changes))
	case nm == om && len(c.changes) > 0:
		c.add(SeverityError, "/version_minor", RuleMinorNotIncreased, fmt.Sprintf("raise version_minor to %d", om+1),
			"the content changed (%s) but version_minor is still %d", summary(c.changes), om)
	}
}

// summary lists the first few changed pointers.
func summary(changes []string) string {
	const most = 3
	if len(changes) > most {
		return strings.Join(changes[:most], ", ") + fmt.Sprintf(" and %d more", len(changes)-most)
	}
	return strings.Join(changes, ", ")
}

// CompareSets compares a whole set of interfaces (new) with the set
// installed before (old). Files are matched by name and major; when old
// holds several copies of one name+major, the highest minor is the one
// installed. Matched files are compared with Compare. A new name+major
// reports a name that collides with another after lowercasing and removing
// '-' (E.2, checked at install) and warns that a major ≥ 1 can never be
// deleted; an old name+major missing from new is a note.
func CompareSets(old, new []Loaded) []Finding {
	installed := map[nameMajor]Loaded{}
	names := map[string]string{} // collision key → a name installed or introduced
	for _, l := range old {
		k := keyOf(l)
		if prev, ok := installed[k]; !ok || l.Interface.Minor > prev.Interface.Minor {
			installed[k] = l
		}
		if _, ok := names[collisionKey(k.name)]; !ok {
			names[collisionKey(k.name)] = k.name
		}
	}
	var out []Finding
	seen := map[nameMajor]bool{}
	for _, l := range new {
		k := keyOf(l)
		if prev, ok := installed[k]; ok {
			out = append(out, Compare(prev, l)...)
		} else if !seen[k] {
			out = append(out, introduce(l, names)...)
		}
		seen[k] = true
	}
	for _, l := range old {
		k := keyOf(l)
		if !seen[k] {
			seen[k] = true
			out = append(out, removedInterface(l))
		}
	}
	return out
}

type nameMajor struct {
	name  string
	major int
}

func keyOf(l Loaded) nameMajor { return nameMajor{l.Interface.Name, l.Interface.Major} }

// collisionKey is the name as Astarte compares it for collisions.
func collisionKey(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "-", "")
}

// introduce checks the first install of a name+major, recording its name
// in names.
func introduce(l Loaded, names map[string]string) []Finding {
	c := &comparison{new: l.Interface, file: l.File}
	name, key := l.Interface.Name, collisionKey(l.Interface.Name)
	if other, ok := names[key]; ok && other != name {
		c.add(SeverityError, "/interface_name", RuleInterfaceNameCollision,
			fmt.Sprintf("choose a name that differs from %s by more than case and '-'", other),
			"interface name %s collides with %s: Astarte compares names without case and '-'", name, other)
	} else if !ok {
		names[key] = name
	}
	if l.Interface.Major >= 1 {
		c.add(SeverityWarning, "/version_major", RuleMajorNotDeletable,
			"keep major 0 while the interface is a draft; release major 1 when it is final",
			"%s major %d is new: once installed, Astarte can never delete it (only major 0 can be deleted)", name, l.Interface.Major)
	}
	return c.findings
}

// removedInterface notes an installed name+major absent from the new set.
func removedInterface(l Loaded) Finding {
	fix := "nothing to do: it stays installed, and devices that declare it keep working"
	if l.Interface.Major == 0 {
		fix = "delete it in Astarte once no device declares it, if it should go"
	}
	return Finding{
		Diagnostic: Diagnostic{File: l.File, Severity: SeverityNote,
			Message: fmt.Sprintf("%s major %d is no longer here: Astarte keeps it installed", l.Interface.Name, l.Interface.Major)},
		Rule: RuleInterfaceRemoved, Fix: fix,
	}
}
