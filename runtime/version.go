package runtime

// SupportPackageIsVersion1 is referenced by generated code. A package
// generated for a newer runtime refers to a constant this runtime lacks,
// which turns a version skew into a build error naming the fix: upgrade
// github.com/astarte-gen/astarte-gen or regenerate.
const SupportPackageIsVersion1 = true
