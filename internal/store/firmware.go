package store

// FirmwareStore keeps signed firmware releases, per-device update state
// and staged rollouts (issue 8). Filled in by the firmware work.
type FirmwareStore interface{}
