package storetest

import (
	"testing"

	"vigil/internal/store"
)

func testRetention(t *testing.T, s store.Store) {}
