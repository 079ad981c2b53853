package model

// The enums below mirror the string values of Astarte interface files
// (spec §4.1, §4.2). For fields that have a default in the interface
// schema, the zero value of the Go type is that default, so a descriptor
// literal may leave them out. Fields without a default (interface type,
// ownership, mapping type) start at 1: a zero value there is a bug.

// InterfaceType says whether an interface carries a stream of values or
// stateful properties.
type InterfaceType uint8

// Interface types.
const (
	Datastream InterfaceType = iota + 1
	Properties
)

// Ownership says which side publishes the interface's data.
type Ownership uint8

// Ownerships. The legacy spellings "producer" and "consumer" parse to
// OwnershipDevice and OwnershipServer.
const (
	OwnershipDevice Ownership = iota + 1
	OwnershipServer
)

// Aggregation says whether mappings are sent one at a time or together as
// one object.
type Aggregation uint8

// Aggregations; Individual is the default.
const (
	Individual Aggregation = iota
	Object
)

// Reliability is the delivery guarantee of a datastream mapping.
type Reliability uint8

// Reliabilities; Unreliable is the default.
const (
	Unreliable Reliability = iota
	Guaranteed
	Unique
)

// Retention says what the device does with a datastream value it cannot
// deliver right away.
type Retention uint8

// Retentions; Discard is the default.
const (
	Discard Retention = iota
	Volatile
	Stored
)

// DatabaseRetentionPolicy is the server-side storage policy of a datastream
// mapping. The device only carries it.
type DatabaseRetentionPolicy uint8

// Database retention policies; NoTTL is the default.
const (
	NoTTL DatabaseRetentionPolicy = iota
	UseTTL
)

// ValueType is the type of a mapping's value (spec §4.7).
type ValueType uint8

// The 14 Astarte value types.
const (
	Double ValueType = iota + 1
	Integer
	Boolean
	LongInteger
	String
	BinaryBlob
	DateTime
	DoubleArray
	IntegerArray
	BooleanArray
	LongIntegerArray
	StringArray
	BinaryBlobArray
	DateTimeArray
)

var (
	interfaceTypeNames = [...]string{Datastream: "datastream", Properties: "properties"}
	ownershipNames     = [...]string{OwnershipDevice: "device", OwnershipServer: "server"}
	aggregationNames   = [...]string{Individual: "individual", Object: "object"}
	reliabilityNames   = [...]string{Unreliable: "unreliable", Guaranteed: "guaranteed", Unique: "unique"}
	retentionNames     = [...]string{Discard: "discard", Volatile: "volatile", Stored: "stored"}
	dbRetentionNames   = [...]string{NoTTL: "no_ttl", UseTTL: "use_ttl"}
	valueTypeNames     = [...]string{
		Double: "double", Integer: "integer", Boolean: "boolean", LongInteger: "longinteger",
		String: "string", BinaryBlob: "binaryblob", DateTime: "datetime",
		DoubleArray: "doublearray", IntegerArray: "integerarray", BooleanArray: "booleanarray",
		LongIntegerArray: "longintegerarray", StringArray: "stringarray",
		BinaryBlobArray: "binaryblobarray", DateTimeArray: "datetimearray",
	}
)

// enumName returns names[v], or "invalid" when v is out of range or unnamed.
func enumName[T ~uint8](names []string, v T) string {
	if int(v) < len(names) && names[v] != "" {
		return names[v]
	}
	return "invalid"
}

// parseEnum finds s in names.
func parseEnum[T ~uint8](names []string, s string) (T, bool) {
	for i, n := range names {
		if n != "" && n == s {
			return T(i), true
		}
	}
	return 0, false
}

// String returns the interface-file spelling.
func (t InterfaceType) String() string { return enumName(interfaceTypeNames[:], t) }

// String returns the interface-file spelling.
func (o Ownership) String() string { return enumName(ownershipNames[:], o) }

// String returns the interface-file spelling.
func (a Aggregation) String() string { return enumName(aggregationNames[:], a) }

// String returns the interface-file spelling.
func (r Reliability) String() string { return enumName(reliabilityNames[:], r) }

// String returns the interface-file spelling.
func (r Retention) String() string { return enumName(retentionNames[:], r) }

// String returns the interface-file spelling.
func (p DatabaseRetentionPolicy) String() string { return enumName(dbRetentionNames[:], p) }

// String returns the interface-file spelling.
func (t ValueType) String() string { return enumName(valueTypeNames[:], t) }

// ParseInterfaceType parses "datastream" or "properties".
func ParseInterfaceType(s string) (InterfaceType, bool) {
	return parseEnum[InterfaceType](interfaceTypeNames[:], s)
}

// ParseOwnership parses "device" or "server", and the legacy "producer"
// and "consumer" that Astarte still accepts.
func ParseOwnership(s string) (Ownership, bool) {
	switch s {
	case "producer":
		return OwnershipDevice, true
	case "consumer":
		return OwnershipServer, true
	}
	return parseEnum[Ownership](ownershipNames[:], s)
}

// ParseAggregation parses "individual" or "object".
func ParseAggregation(s string) (Aggregation, bool) {
	return parseEnum[Aggregation](aggregationNames[:], s)
}

// ParseReliability parses "unreliable", "guaranteed" or "unique".
func ParseReliability(s string) (Reliability, bool) {
	return parseEnum[Reliability](reliabilityNames[:], s)
}

// ParseRetention parses "discard", "volatile" or "stored".
func ParseRetention(s string) (Retention, bool) {
	return parseEnum[Retention](retentionNames[:], s)
}

// ParseDatabaseRetentionPolicy parses "no_ttl" or "use_ttl".
func ParseDatabaseRetentionPolicy(s string) (DatabaseRetentionPolicy, bool) {
	return parseEnum[DatabaseRetentionPolicy](dbRetentionNames[:], s)
}

// ParseValueType parses one of the 14 Astarte type names.
func ParseValueType(s string) (ValueType, bool) {
	return parseEnum[ValueType](valueTypeNames[:], s)
}

// ValueTypes lists the 14 value types in declaration order.
func ValueTypes() []ValueType {
	out := make([]ValueType, 0, DateTimeArray)
	for t := Double; t <= DateTimeArray; t++ {
		out = append(out, t)
	}
	return out
}

// Valid reports whether t is one of the 14 value types.
func (t ValueType) Valid() bool { return t >= Double && t <= DateTimeArray }

// IsArray reports whether t is one of the array types.
func (t ValueType) IsArray() bool { return t >= DoubleArray && t <= DateTimeArray }

// Scalar returns the element type of an array type, or t itself.
func (t ValueType) Scalar() ValueType {
	if t.IsArray() {
		return t - (DoubleArray - Double)
	}
	return t
}

// Array returns the array type whose elements are t, or t itself when t is
// already an array type.
func (t ValueType) Array() ValueType {
	if t.Valid() && !t.IsArray() {
		return t + (DoubleArray - Double)
	}
	return t
}
