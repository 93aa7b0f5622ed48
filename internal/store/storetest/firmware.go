package storetest

import (
	"testing"

	"vigil/internal/store"
)

func testFirmware(t *testing.T, s store.Store) {}
