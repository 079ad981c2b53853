package gen

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/astarte-gen/astarte-gen/runtime/model"
)

// Generate validates nothing (inputs come from schema) and returns the
// generated files by name, gofmt-clean and deterministic.
func Generate(opts Config, inputs []Input) (map[string][]byte, error) {
	pl, err := makePlan(opts, inputs)
	if err != nil {
		return nil, err
	}
	files := make(map[string][]byte, len(pl.ifaces)+1)
	for _, ip := range pl.ifaces {
		var s source
		emitInterface(&s, ip)
		files[ip.file] = s.file(pl.pkg, header(opts, "Source: "+headerText(ip.Source))...)
	}
	var s source
	emitPackage(&s, pl)
	files[PackageFile] = s.file(pl.pkg, header(opts)...)
	return files, nil
}

// header is the comment every generated file starts with.
func header(opts Config, extra ...string) []string {
	return append([]string{Header, "Generator: astarte-gen " + opts.version()}, extra...)
}

func emitPackage(s *source, pl *plan) {
	s.decl("The generated code refers to this constant so that a runtime of another\nversion is a build error: use the astarte-gen and runtime of one module\nversion (go generate after upgrading github.com/astarte-gen/astarte-gen).")
	s.line("const _ = ", s.rt("SupportPackageIsVersion2"))
	s.decl("Interfaces returns copies of every interface of this package, for\nruntime.New.")
	list := "[]*" + s.md("Interface")
	s.open("func Interfaces() ", list, " {")
	if len(pl.ifaces) == 0 {
		s.line("return ", list, "{}")
	} else {
		s.open("return ", list, "{")
		for _, ip := range pl.ifaces {
			s.line(ip.descVar(), ".Clone(),")
		}
		s.close("}")
	}
	s.close("}")
}

func kind(i *model.Interface) string {
	return fmt.Sprintf("%s-owned %s", i.Ownership, map[model.InterfaceType]string{model.Datastream: "datastream", model.Properties: "properties"}[i.Type])
}

func emitInterface(s *source, ip *ifacePlan) {
	i := ip.Interface
	s.decl(fmt.Sprintf("%s describes %s v%d.%d (%s). Generated code reads it;\nnothing outside this package can change it.", ip.descVar(), i.Name, i.Major, i.Minor, kind(i)))
	s.open("var ", ip.descVar(), " = &", s.md("Interface"), "{")
	emitDescriptor(s, i)
	s.close("}")
	s.decl(fmt.Sprintf("%sInterface returns a copy of the descriptor of %s v%d.%d.", ip.typeName, i.Name, i.Major, i.Minor))
	s.open("func ", ip.typeName, "Interface() *", s.md("Interface"), " {")
	s.line("return ", ip.descVar(), ".Clone()")
	s.close("}")
	if ip.object != nil {
		emitObjectStruct(s, ip)
	}
	if ip.device() || ip.properties() {
		emitType(s, ip)
	}
	switch {
	case ip.device() && ip.object != nil:
		emitObjectSender(s, ip)
	case ip.device():
		for _, m := range ip.mappings {
			emitDeviceMapping(s, ip, m)
		}
	default:
		emitHandler(s, ip)
	}
	if ip.properties() {
		for _, m := range ip.mappings {
			emitGetter(s, ip, m)
			if len(m.params) > 0 {
				emitLister(s, ip, m)
			}
		}
	}
}

// emitDescriptor writes the fields of an interface's Go literal, only the
// non-default ones, in declaration order.
func emitDescriptor(s *source, i *model.Interface) {
	rows := []cell{
		{"Name:", strconv.Quote(i.Name)},
		{"Major:", strconv.Itoa(i.Major)},
		{"Minor:", strconv.Itoa(i.Minor)},
		{"Type:", s.md(map[model.InterfaceType]string{model.Datastream: "Datastream", model.Properties: "Properties"}[i.Type])},
		{"Ownership:", s.md(map[model.Ownership]string{model.OwnershipDevice: "OwnershipDevice", model.OwnershipServer: "OwnershipServer"}[i.Ownership])},
	}
	if i.Aggregation == model.Object {
		rows = append(rows, cell{"Aggregation:", s.md("Object")})
	}
	if i.Description != "" {
		rows = append(rows, cell{"Description:", strconv.Quote(i.Description)})
	}
	if i.Doc != "" {
		rows = append(rows, cell{"Doc:", strconv.Quote(i.Doc)})
	}
	s.aligned(rows, ",")
	// A multi-line element is a run of its own: gofmt does not align it.
	s.open("Mappings: []", s.md("Mapping"), "{")
	for _, m := range i.Mappings {
		s.open("{")
		s.aligned(mappingFields(s, m), ",")
		s.close("},")
	}
	s.close("},")
}

var (
	reliabilityNames = map[model.Reliability]string{model.Guaranteed: "Guaranteed", model.Unique: "Unique"}
	retentionNames   = map[model.Retention]string{model.Volatile: "Volatile", model.Stored: "Stored"}
)

// mappingFields are the non-default fields of a mapping's Go literal. Each
// value is made only when written, so that a file imports time only when a
// duration needs it.
func mappingFields(s *source, m model.Mapping) []cell {
	rows := []cell{{"Endpoint:", strconv.Quote(m.Endpoint)}, {"Type:", s.md(accessor(m.Type))}}
	add := func(key, value string) { rows = append(rows, cell{key + ":", value}) }
	seconds := func(t time.Duration) string {
		return strconv.FormatInt(int64(t/time.Second), 10) + " * " + s.tm("Second")
	}
	if m.Reliability != model.Unreliable {
		add("Reliability", s.md(reliabilityNames[m.Reliability]))
	}
	if m.Retention != model.Discard {
		add("Retention", s.md(retentionNames[m.Retention]))
	}
	if m.Expiry != 0 {
		add("Expiry", seconds(m.Expiry))
	}
	if m.ExplicitTimestamp {
		add("ExplicitTimestamp", "true")
	}
	if m.AllowUnset {
		add("AllowUnset", "true")
	}
	if m.Required {
		add("Required", "true")
	}
	if m.DatabaseRetentionPolicy == model.UseTTL {
		add("DatabaseRetentionPolicy", s.md("UseTTL"))
	}
	if m.DatabaseRetentionTTL != 0 {
		add("DatabaseRetentionTTL", seconds(m.DatabaseRetentionTTL))
	}
	if m.Description != "" {
		add("Description", strconv.Quote(m.Description))
	}
	if m.Doc != "" {
		add("Doc", strconv.Quote(m.Doc))
	}
	return rows
}

// accessorNames are the names shared by each Astarte type's enum constant,
// its Payload method and its Value accessor.
var accessorNames = [...]string{
	model.Double:           "Double",
	model.Integer:          "Integer",
	model.Boolean:          "Boolean",
	model.LongInteger:      "LongInteger",
	model.String:           "String",
	model.BinaryBlob:       "BinaryBlob",
	model.DateTime:         "DateTime",
	model.DoubleArray:      "DoubleArray",
	model.IntegerArray:     "IntegerArray",
	model.BooleanArray:     "BooleanArray",
	model.LongIntegerArray: "LongIntegerArray",
	model.StringArray:      "StringArray",
	model.BinaryBlobArray:  "BinaryBlobArray",
	model.DateTimeArray:    "DateTimeArray",
}

// accessor is the name of t's enum constant, Payload method and Value
// accessor: "Double", "LongIntegerArray", ….
func accessor(t model.ValueType) string { return accessorNames[t] }

// fieldType is the Go type of an object field: the value type when the
// field is required, a pointer to it when it may be absent.
func (s *source) fieldType(m *model.Mapping) string {
	if m.Required {
		return s.goType(m.Type)
	}
	return "*" + s.goType(m.Type)
}

// goType is the Go type of an Astarte type.
func (s *source) goType(t model.ValueType) string {
	var scalar string
	switch t.Scalar() {
	case model.Double:
		scalar = "float64"
	case model.Integer:
		scalar = "int32"
	case model.Boolean:
		scalar = "bool"
	case model.LongInteger:
		scalar = "int64"
	case model.String:
		scalar = "string"
	case model.BinaryBlob:
		scalar = "[]byte"
	default:
		scalar = s.tm("Time")
	}
	if t.IsArray() {
		return "[]" + scalar
	}
	return scalar
}

// delivery describes a mapping's delivery for doc comments.
func delivery(i *model.Interface, m *model.Mapping) string {
	if i.Type == model.Properties {
		str := "Delivery: unique (QoS 2), kept in the device's store"
		if m.AllowUnset {
			str += "; may be unset"
		}
		return str + "."
	}
	str := fmt.Sprintf("Delivery: %s (QoS %d)", m.Reliability, i.QoS(m))
	if i.Ownership == model.OwnershipDevice {
		// Retention and expiry say what the device does while offline;
		// for what the server sends they mean nothing.
		str += fmt.Sprintf(", retention %s", m.Retention)
		if m.Expiry > 0 {
			str += fmt.Sprintf(", expires after %s", m.Expiry)
		}
	}
	if m.ExplicitTimestamp {
		str += ", explicit timestamp"
	}
	return str + "."
}

func emitType(s *source, ip *ifacePlan) {
	i := ip.Interface
	t := ip.typeName
	verb := "sends on"
	if ip.properties() {
		verb = "sets and reads the properties of"
		if !ip.device() {
			verb = "reads the cached properties of"
		}
	}
	s.decl(fmt.Sprintf("%s %s %s v%d.%d (%s).", t, verb, i.Name, i.Major, i.Minor, kind(i)), i.Description, i.Doc)
	s.open("type ", t, " struct {")
	s.line("d *", s.rt("Device"))
	s.close("}")
	s.decl(fmt.Sprintf("New%s returns the %s of a device created with %sInterface (or Interfaces).", t, t, t))
	s.open("func New", t, "(d *", s.rt("Device"), ") ", t, " {")
	s.line("return ", t, "{d: d}")
	s.close("}")
}

// params joins a parameter list: the context, the endpoint's parameters as
// strings, then extra.
func (s *source) params(names []string, extra ...string) string {
	list := append([]string{s.ctxParam()}, stringParams(names)...)
	return strings.Join(append(list, extra...), ", ")
}

// args joins call arguments.
func args(first []string, rest []string) string {
	return strings.Join(append(first, rest...), ", ")
}

// timestampParam is the trailing parameter of a mapping with an explicit
// timestamp.
func (s *source) timestampParam(m *model.Mapping) []string {
	if m.ExplicitTimestamp {
		return []string{"timestamp " + s.tm("Time")}
	}
	return nil
}

// sendTimestamp is what a sender passes to Send: the caller's timestamp, or
// none.
func (s *source) sendTimestamp(m *model.Mapping) string {
	if m.ExplicitTimestamp {
		return "timestamp"
	}
	return s.tm("Time") + "{}"
}

// method opens a method of the interface's type.
func (s *source) method(ip *ifacePlan, signature ...string) {
	s.open(append([]string{"func (s ", ip.typeName, ") "}, append(signature, " {")...)...)
}

// emitDeviceMapping emits Send<M>, or Set<M>/Unset<M> for properties.
func emitDeviceMapping(s *source, ip *ifacePlan, mp mappingPlan) {
	i := ip.Interface
	m := &i.Mappings[mp.index]
	verb := "Send"
	if ip.properties() {
		verb = "Set"
	}
	index := strconv.Itoa(mp.index)
	s.decl(fmt.Sprintf("%s%s %s %s. %s", verb, mp.name, strings.ToLower(verb)+"s", m.Endpoint, delivery(i, m)), m.Description, m.Doc)
	s.method(ip, verb, mp.name, "(", s.params(mp.params, append([]string{"value " + s.goType(m.Type)}, s.timestampParam(m)...)...), ") error")
	s.line("m := ", s.rt("GeneratedMessage"), "(", args([]string{"s.d", ip.descVar(), index}, mp.params), ")")
	s.line("m.", accessor(m.Type), "(value)")
	s.line("return m.Send(ctx, ", s.sendTimestamp(m), ")")
	s.close("}")
	if ip.properties() && m.AllowUnset {
		s.decl(fmt.Sprintf("Unset%s unsets %s.", mp.name, m.Endpoint))
		s.method(ip, "Unset", mp.name, "(", s.params(mp.params), ") error")
		s.line("return ", s.rt("GeneratedUnset"), "(", args([]string{"ctx", "s.d", ip.descVar(), index}, mp.params), ")")
		s.close("}")
	}
}

// ifErrReturn writes the error check after a call.
func (s *source) ifErrReturn(values string) {
	s.open("if err != nil {")
	s.line("return ", values)
	s.close("}")
}

// emitGetter emits Get<M>(params) (T, bool, error) reading the stored value.
func emitGetter(s *source, ip *ifacePlan, mp mappingPlan) {
	m := &ip.Interface.Mappings[mp.index]
	typ := s.goType(m.Type)
	s.decl(fmt.Sprintf("Get%s returns the stored value of %s and whether it is set.", mp.name, m.Endpoint))
	s.method(ip, "Get", mp.name, "(", strings.Join(stringParams(mp.params), ", "), ") (", typ, ", bool, error)")
	s.line("v, ok, err := ", s.rt("GeneratedProperty"), "(", args([]string{"s.d", ip.descVar(), strconv.Itoa(mp.index)}, mp.params), ")")
	s.open("if !ok || err != nil {")
	s.line("var zero ", typ)
	s.line("return zero, ok, err")
	s.close("}")
	s.line("x, err := v.", accessor(m.Type), "()")
	s.line("return x, err == nil, err")
	s.close("}")
}

// stringParams declares each name as a string parameter.
func stringParams(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n + " string"
	}
	return out
}

// emitLister emits All<M>() returning every set instance of a parametric
// property keyed by its parameter (one) or a <Type><M>Key struct (several).
func emitLister(s *source, ip *ifacePlan, mp mappingPlan) {
	m := &ip.Interface.Mappings[mp.index]
	key, k := "string", "p.Params[0]"
	if len(mp.params) > 1 {
		key = ip.keyName(mp)
		s.decl(fmt.Sprintf("%s identifies one instance of %s by its parameters.", key, m.Endpoint))
		s.open("type ", key, " struct {")
		rows := make([]cell, len(mp.keyFields))
		elems := make([]string, len(mp.keyFields))
		for n, name := range mp.keyFields {
			rows[n] = cell{name, "string"}
			elems[n] = fmt.Sprintf("%s: p.Params[%d]", name, n)
		}
		s.aligned(rows, "")
		s.close("}")
		k = key + "{" + strings.Join(elems, ", ") + "}"
	}
	typ := "map[" + key + "]" + s.goType(m.Type)
	s.decl(fmt.Sprintf("All%s returns every set instance of %s, keyed by its parameters.", mp.name, m.Endpoint))
	s.method(ip, "All", mp.name, "() (", typ, ", error)")
	s.line("ps, err := ", s.rt("GeneratedProperties"), "(s.d, ", ip.descVar(), ", ", strconv.Itoa(mp.index), ")")
	s.ifErrReturn("nil, err")
	s.line("out := make(", typ, ", len(ps))")
	s.open("for _, p := range ps {")
	s.line("x, err := p.Value.", accessor(m.Type), "()")
	s.ifErrReturn("nil, err")
	s.line("out[", k, "] = x")
	s.close("}")
	s.line("return out, nil")
	s.close("}")
}

func emitObjectStruct(s *source, ip *ifacePlan) {
	i := ip.Interface
	s.decl(fmt.Sprintf("%s is one object of %s, sent as a whole on %s. Required fields are plain values; the others are pointers, nil when the field is absent (a sender leaves it out, a handler did not receive it).", ip.structName(), i.Name, i.Mappings[0].ObjectPrefix()))
	s.open("type ", ip.structName(), " struct {")
	for _, fp := range ip.object.fields {
		m := &i.Mappings[fp.index]
		presence := "required"
		if !m.Required {
			presence = "optional: nil when absent"
		}
		// Each field has a comment line above it, which ends gofmt's
		// alignment run: every field is a run of one.
		s.comment(fmt.Sprintf("%s is the %s field (%s, %s).", fp.name, m.LastLevel(), m.Type, presence), m.Description, m.Doc)
		s.aligned([]cell{{fp.name, s.fieldType(m)}}, "")
	}
	s.close("}")
}

func emitObjectSender(s *source, ip *ifacePlan) {
	i := ip.Interface
	m := &i.Mappings[0]
	s.decl(fmt.Sprintf("Send%s sends v on %s: its required fields and the optional ones that are not nil. %s", ip.object.name, m.ObjectPrefix(), delivery(i, m)))
	s.method(ip, "Send", ip.object.name, "(", s.params(ip.object.params, append([]string{"v " + ip.structName()}, s.timestampParam(m)...)...), ") error")
	s.line("m := ", s.rt("GeneratedMessage"), "(", args([]string{"s.d", ip.descVar(), "0"}, ip.object.params), ")")
	for _, fp := range ip.object.fields {
		set := fmt.Sprintf("m.Field(%d).%s", fp.index, accessor(i.Mappings[fp.index].Type))
		if i.Mappings[fp.index].Required {
			s.line(set, "(v.", fp.name, ")")
			continue
		}
		s.open("if v.", fp.name, " != nil {")
		s.line(set, "(*v.", fp.name, ")")
		s.close("}")
	}
	s.line("return m.Send(ctx, ", s.sendTimestamp(m), ")")
	s.close("}")
}

// handlerMethod is one method of a generated handler interface.
type handlerMethod struct {
	doc       []string // comment paragraphs
	signature string   // Name(params) error
}

// handlerMethods lists the handler interface's methods.
func handlerMethods(s *source, ip *ifacePlan) []handlerMethod {
	i := ip.Interface
	if ip.object != nil {
		m := &i.Mappings[0]
		return []handlerMethod{{
			[]string{fmt.Sprintf("%s receives an object on %s. %s", ip.object.name, m.ObjectPrefix(), delivery(i, m))},
			ip.object.name + "(" + s.params(ip.object.params, append([]string{"v " + ip.structName()}, s.timestampParam(m)...)...) + ") error",
		}}
	}
	var out []handlerMethod
	for _, mp := range ip.mappings {
		m := &i.Mappings[mp.index]
		name := mp.name
		extra := []string{"value " + s.goType(m.Type)}
		if ip.properties() {
			name = "Set" + mp.name
		} else {
			extra = append(extra, s.timestampParam(m)...)
		}
		out = append(out, handlerMethod{
			[]string{fmt.Sprintf("%s receives %s. %s", name, m.Endpoint, delivery(i, m)), m.Description, m.Doc},
			name + "(" + s.params(mp.params, extra...) + ") error",
		})
		if ip.properties() && m.AllowUnset {
			out = append(out, handlerMethod{
				[]string{fmt.Sprintf("Unset%s receives the unset of %s.", mp.name, m.Endpoint)},
				"Unset" + mp.name + "(" + s.params(mp.params) + ") error",
			})
		}
	}
	return out
}

func emitHandler(s *source, ip *ifacePlan) {
	i := ip.Interface
	t := ip.typeName
	s.decl(fmt.Sprintf("%sHandler handles what the server sends on %s v%d.%d (%s). Embed Unimplemented%sHandler to stay compatible with later minor versions.", t, i.Name, i.Major, i.Minor, kind(i), t), i.Description, i.Doc)
	methods := handlerMethods(s, ip)
	s.open("type ", t, "Handler interface {")
	for _, hm := range methods {
		s.comment(hm.doc...)
		s.line(hm.signature)
	}
	s.close("}")
	s.decl(fmt.Sprintf("Unimplemented%sHandler ignores every message; embed it in handlers.", t))
	s.line("type Unimplemented", t, "Handler struct{}")
	for _, hm := range methods {
		s.decl("Ignored.")
		s.open("func (Unimplemented", t, "Handler) ", hm.signature, " {")
		s.line("return nil")
		s.close("}")
	}
	s.decl(fmt.Sprintf("Register%s makes h receive the device's %s messages.", t, i.Name))
	s.open("func Register", t, "(d *", s.rt("Device"), ", h ", t, "Handler) error {")
	s.open("return d.Handle(", ip.descVar(), ", func(", s.ctxParam(), ", in *", s.rt("Incoming"), ") error {")
	if ip.object != nil {
		emitObjectDispatch(s, ip)
	} else {
		s.line("switch in.Mapping {")
		for _, mp := range ip.mappings {
			s.line("case ", strconv.Itoa(mp.index), ":")
			s.depth++
			emitDispatchCase(s, ip, mp)
			s.depth--
		}
		s.line("}")
		s.line("return nil")
	}
	s.close("})")
	s.close("}")
}

// paramArgs are the arguments that pass an incoming message's n endpoint
// parameters on, after the context.
func paramArgs(n int) []string {
	out := []string{"ctx"}
	for i := range n {
		out = append(out, fmt.Sprintf("in.Params[%d]", i))
	}
	return out
}

func emitDispatchCase(s *source, ip *ifacePlan, mp mappingPlan) {
	m := &ip.Interface.Mappings[mp.index]
	callArgs := paramArgs(len(mp.params))
	if ip.properties() {
		s.open("if in.Unset {")
		if m.AllowUnset {
			s.line("return h.Unset", mp.name, "(", strings.Join(callArgs, ", "), ")")
		} else {
			s.line("return nil")
		}
		s.close("}")
	}
	s.line("v, err := in.Value.", accessor(m.Type), "()")
	s.ifErrReturn("err")
	name := mp.name
	callArgs = append(callArgs, "v")
	if ip.properties() {
		name = "Set" + mp.name
	} else if m.ExplicitTimestamp {
		callArgs = append(callArgs, "in.Timestamp")
	}
	s.line("return h.", name, "(", strings.Join(callArgs, ", "), ")")
}

func emitObjectDispatch(s *source, ip *ifacePlan) {
	s.line("var v ", ip.structName())
	for _, fp := range ip.object.fields {
		m := &ip.Interface.Mappings[fp.index]
		s.open("if f, ok := in.Field(", strconv.Itoa(fp.index), "); ok {")
		s.line("x, err := f.", accessor(m.Type), "()")
		s.ifErrReturn("err")
		if m.Required {
			s.line("v.", fp.name, " = x")
		} else {
			s.line("v.", fp.name, " = &x")
		}
		s.close("}")
	}
	callArgs := append(paramArgs(len(ip.object.params)), "v")
	if ip.Interface.Mappings[0].ExplicitTimestamp {
		callArgs = append(callArgs, "in.Timestamp")
	}
	s.line("return h.", ip.object.name, "(", strings.Join(callArgs, ", "), ")")
}
