package wire

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// MaxPurgeSize caps the inflated size of a received purge list, as the
// server caps what it inflates (10 MiB, spec §3.8).
const MaxPurgeSize = 10 << 20

// emptyPurge is the empty list as Astarte and the official SDKs encode it
// (zlib's own output for empty input, which Go's compressor spells
// differently but equivalently).
var emptyPurge = []byte{0, 0, 0, 0, 0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01}

// EncodePurge encodes a purge list (entries "<interface><path>") in the
// default zlib format: a 4-byte big-endian uncompressed length then a zlib
// stream of the entries joined by ";" (spec §3.8).
func EncodePurge(entries []string) []byte {
	text := strings.Join(entries, ";")
	if text == "" {
		return bytes.Clone(emptyPurge)
	}
	var b bytes.Buffer
	b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(text))))
	z := zlib.NewWriter(&b)
	// Writes to a bytes.Buffer cannot fail.
	_, _ = z.Write([]byte(text))
	_ = z.Close()
	return b.Bytes()
}

// DecodePurge decodes a zlib-format purge list, capping the inflated size at
// MaxPurgeSize and not trusting the header. Errors wrap ErrInvalidPayload.
func DecodePurge(payload []byte) ([]string, error) {
	if len(payload) < 4 {
		return nil, fmt.Errorf("%w: purge list of %d bytes, shorter than its header", ErrInvalidPayload, len(payload))
	}
	if len(payload) == 4 {
		if binary.BigEndian.Uint32(payload) == 0 {
			return nil, nil // the server's bare "empty" form
		}
		return nil, fmt.Errorf("%w: purge list header without data", ErrInvalidPayload)
	}
	z, err := zlib.NewReader(bytes.NewReader(payload[4:]))
	if err != nil {
		return nil, fmt.Errorf("%w: purge list: %v", ErrInvalidPayload, err)
	}
	text, err := io.ReadAll(io.LimitReader(z, MaxPurgeSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: purge list: %v", ErrInvalidPayload, err)
	}
	if len(text) > MaxPurgeSize {
		return nil, fmt.Errorf("%w: purge list inflates beyond %d bytes", ErrInvalidPayload, MaxPurgeSize)
	}
	if !utf8.Valid(text) {
		return nil, fmt.Errorf("%w: purge list is not UTF-8", ErrInvalidPayload)
	}
	if len(text) == 0 {
		return nil, nil
	}
	return strings.Split(string(text), ";"), nil
}
