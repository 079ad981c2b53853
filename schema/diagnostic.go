package schema

import (
	"errors"
	"fmt"
	"strings"
)

// Severity tells an error (Astarte refuses the interface or the change)
// from a warning (a deprecated, meaningless or risky form Astarte still
// accepts) and a note (worth knowing, nothing to fix).
type Severity int

// Severities.
const (
	SeverityError Severity = iota
	SeverityWarning
	SeverityNote
)

// String returns "error", "warning" or "note".
func (s Severity) String() string {
	switch s {
	case SeverityWarning:
		return "warning"
	case SeverityNote:
		return "note"
	}
	return "error"
}

// MarshalText writes the severity name (for --json output).
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Diagnostic is one problem found in an interface file.
type Diagnostic struct {
	File string `json:"file"`
	// Pointer is the JSON pointer (RFC 6901) of the offending value, e.g.
	// "/mappings/3/endpoint"; empty for the whole document.
	Pointer  string   `json:"pointer"`
	Severity Severity `json:"severity"`
	// Message names the rule in plain words.
	Message string `json:"message"`
}

// String formats the diagnostic as "file:pointer: message", with
// "warning: " or "note: " before the message of a warning or a note.
func (d Diagnostic) String() string {
	msg := d.Message
	if d.Severity != SeverityError {
		msg = d.Severity.String() + ": " + msg
	}
	return d.File + ":" + d.Pointer + ": " + msg
}

// ErrInvalid is wrapped by every *Error.
var ErrInvalid = errors.New("invalid interface")

// Error lists every error found in one or more interface files.
type Error struct {
	Diagnostics []Diagnostic
}

// Error returns one line per diagnostic.
func (e *Error) Error() string {
	lines := make([]string, len(e.Diagnostics))
	for i, d := range e.Diagnostics {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *Error) Unwrap() error { return ErrInvalid }

// report collects the diagnostics of one file.
type report struct {
	file  string
	diags []Diagnostic
}

func (r *report) errorf(pointer, format string, args ...any) {
	r.diags = append(r.diags, Diagnostic{File: r.file, Pointer: pointer, Severity: SeverityError, Message: fmt.Sprintf(format, args...)})
}

func (r *report) warnf(pointer, format string, args ...any) {
	r.diags = append(r.diags, Diagnostic{File: r.file, Pointer: pointer, Severity: SeverityWarning, Message: fmt.Sprintf(format, args...)})
}

// split separates errors from warnings.
func split(diags []Diagnostic) (errs, warns []Diagnostic) {
	for _, d := range diags {
		if d.Severity == SeverityError {
			errs = append(errs, d)
		} else {
			warns = append(warns, d)
		}
	}
	return errs, warns
}
