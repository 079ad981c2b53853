package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxFileSize caps an interface file: the largest real interface we know
// of is about 40 KiB, so 4 MiB leaves room for any, and a path that points
// at an endless or huge file fails at once instead of exhausting memory.
const MaxFileSize = 4 << 20

// readInterfaceFile reads path if it is a regular file (after following
// symbolic links) of at most MaxFileSize bytes. Anything else (a device such
// as /dev/zero, a FIFO that would block forever, a socket, a directory) is
// a diagnostic naming the file and the rule, not an I/O error, so that the
// other files are still checked.
func readInterfaceFile(path string) ([]byte, *Diagnostic, error) {
	refuse := func(format string, args ...any) ([]byte, *Diagnostic, error) {
		return nil, &Diagnostic{File: path, Severity: SeverityError, Message: fmt.Sprintf(format, args...)}, nil
	}
	st, err := os.Stat(path) // follows symbolic links
	if err != nil {
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		return refuse("not a regular file (%s): only regular files are read as interfaces", kind(st.Mode()))
	}
	if st.Size() > MaxFileSize {
		return refuse("file of %d bytes exceeds the %d-byte limit for an interface file", st.Size(), MaxFileSize)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	// Checked again on the open file: the path may have been replaced since.
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return refuse("not a regular file: only regular files are read as interfaces")
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, nil, err
	}
	if len(data) > MaxFileSize {
		return refuse("file exceeds the %d-byte limit for an interface file", MaxFileSize)
	}
	return data, nil, nil
}

// kind names a non-regular file type for a diagnostic.
func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return m.Type().String()
}

// checkUTF8 reports invalid UTF-8 anywhere in data (encoding/json would
// silently replace it with U+FFFD) with the JSON pointer of the value or
// member name holding it.
func checkUTF8(r *report, data []byte) bool {
	if utf8.Valid(data) {
		return true
	}
	offset := 0
	for offset < len(data) {
		c, size := utf8.DecodeRune(data[offset:])
		if c == utf8.RuneError && size <= 1 {
			break
		}
		offset += size
	}
	r.errorf(pointerAt(data, int64(offset)), "invalid UTF-8 at byte %d: interface files must be UTF-8 text (RFC 8259)", offset)
	return false
}

// pointerAt returns the JSON pointer of the token that spans offset:
// walking the tokens keeps the path of containers and member names.
func pointerAt(data []byte, offset int64) string {
	type level struct {
		object bool
		key    string // object: the member name being read
		index  int    // array: the element being read
		inKey  bool   // object: the next string is a member name
	}
	var stack []level
	pointer := func() string {
		var b strings.Builder
		for _, l := range stack {
			b.WriteByte('/')
			if l.object {
				b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(l.key))
			} else {
				b.WriteString(strconv.Itoa(l.index))
			}
		}
		return b.String()
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			return pointer()
		}
		end := dec.InputOffset()
		var top *level
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		if top != nil && top.object && top.inKey {
			if s, ok := tok.(string); ok {
				top.key, top.inKey = s, false
				if end > offset {
					return pointer()
				}
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			stack = append(stack, level{object: tok == json.Delim('{'), inKey: true})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		default:
			if end > offset {
				return pointer()
			}
		}
		// A value ended: advance the enclosing container.
		if len(stack) > 0 {
			if top := &stack[len(stack)-1]; top.object {
				top.inKey = true
			} else {
				top.index++
			}
		}
	}
}
