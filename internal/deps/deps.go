// Package deps pins in go.mod the chosen dependency that no package imports
// yet (jennifer, for the code generator), so that it resolves to the agreed
// version. Delete it once gen imports jennifer.
package deps

import _ "github.com/dave/jennifer/jen"
