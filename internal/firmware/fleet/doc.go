// Package fleet is the server side of firmware updates: it takes verified
// releases into the store, serves both TUF repositories (signing the
// image repository's snapshot and timestamp and each device's director
// choice with the online key), picks each device's image from the staged
// rollouts, pauses a rollout when failures pile up, and builds the fleet
// compliance view.
//
// The TUF formats, signing and the device's verifier are in the parent
// package firmware, which the simulator uses without the store.
//
// Must not import: the app, store drivers, the bus, gateways or web.
package fleet
