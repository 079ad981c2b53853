package runtime

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
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

// Bounds on the work one received purge list may cost, beyond its
// inflated size: a list of more than MaxPurgeEntries entries, or with an
// entry longer than MaxPurgeEntryLength bytes, is refused whole (nothing is
// purged). No real device needs more: an entry is an interface name (at
// most 128 characters) and a path (an endpoint of at most 256 characters
// with its parameters filled in), and 100,000 cached server properties is
// far beyond what one device is given. Without them a 10 KB message that
// inflates to 10 MiB of ";" cost seconds of CPU and hundreds of MB.
const (
	MaxPurgeEntries     = 100_000
	MaxPurgeEntryLength = 4096
)

// DecodePurge decodes a zlib-format purge list, not trusting the header:
// it inflates at most MaxPurgeSize bytes and stops as soon as the list
// exceeds MaxPurgeEntries entries or an entry exceeds MaxPurgeEntryLength,
// so that its CPU and memory stay bounded whatever the payload. Errors wrap
// ErrInvalidPayload.
func DecodePurge(payload []byte) ([]string, error) {
	return decodePurge(payload, MaxPurgeEntries, MaxPurgeEntryLength)
}

// decodePurge is DecodePurge with the entry limits as parameters (tests
// check the limits' edges on small lists).
func decodePurge(payload []byte, maxEntries, maxEntryLength int) ([]string, error) {
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
	r := bufio.NewReaderSize(io.LimitReader(z, MaxPurgeSize+1), maxEntryLength+1)
	var entries []string
	size := 0
	for {
		entry, err := r.ReadSlice(';')
		size += len(entry)
		switch {
		case size > MaxPurgeSize:
			return nil, fmt.Errorf("%w: purge list inflates beyond %d bytes", ErrInvalidPayload, MaxPurgeSize)
		case errors.Is(err, bufio.ErrBufferFull):
			return nil, fmt.Errorf("%w: purge list entry %d is longer than %d bytes", ErrInvalidPayload, len(entries)+1, maxEntryLength)
		case err != nil && err != io.EOF:
			return nil, fmt.Errorf("%w: purge list: %v", ErrInvalidPayload, err)
		case len(entries) == maxEntries:
			return nil, fmt.Errorf("%w: purge list has more than %d entries", ErrInvalidPayload, maxEntries)
		}
		text := bytes.TrimSuffix(entry, []byte{';'})
		if len(text) > maxEntryLength {
			return nil, fmt.Errorf("%w: purge list entry %d is longer than %d bytes", ErrInvalidPayload, len(entries)+1, maxEntryLength)
		}
		if !utf8.Valid(text) {
			return nil, fmt.Errorf("%w: purge list entry %d is not UTF-8", ErrInvalidPayload, len(entries)+1)
		}
		if err == io.EOF && size == 0 {
			return nil, nil
		}
		entries = append(entries, string(text))
		if err == io.EOF {
			return entries, nil
		}
	}
}
