package api_test

import (
	"testing"

	"github.com/astarte-gen/astarte-gen/internal/gencheck"
)

func TestGeneratedCodeIsUpToDate(t *testing.T) { gencheck.Check(t) }
