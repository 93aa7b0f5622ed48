// Package datakey is envelope encryption of personal data: per-person
// data keys wrapped by the seal key-encryption key (issue 9).
//
// Must not import: anything but the standard library and internal/seal.
package datakey
