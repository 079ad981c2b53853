package runtime

// SKELETON: the wire work replaces the bodies; the exported API is the contract.

// MaxPurgeSize caps the inflated size of a received purge list, as the
// server caps what it inflates (10 MiB, spec §3.8).
const MaxPurgeSize = 10 << 20

// EncodePurge encodes a purge list (entries "<interface><path>") in the
// default zlib format: a 4-byte big-endian uncompressed length then a zlib
// stream of the entries joined by ";" (spec §3.8).
func EncodePurge(entries []string) []byte { return nil }

// DecodePurge decodes a zlib-format purge list, capping the inflated size at
// MaxPurgeSize and not trusting the header. Errors wrap ErrInvalidPayload.
func DecodePurge(payload []byte) ([]string, error) { return nil, ErrInvalidPayload }
