package sensors_test

import (
	"testing"

	"github.com/astarte-gen/astarte-gen/internal/gencheck"
)

// The generated code in this package must match its interfaces.
func TestGeneratedCodeIsUpToDate(t *testing.T) { gencheck.Check(t) }
