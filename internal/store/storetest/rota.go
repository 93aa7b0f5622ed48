package storetest

import (
	"testing"

	"vigil/internal/store"
)

func testRotas(t *testing.T, s store.Store) {}
