// Package firmware is signed firmware releases (TUF image repository), the
// director that picks an approved image per device, staged rollouts and
// fleet compliance (issue 8).
//
// Must not import: the app, store drivers, the bus, gateways or web.
package firmware
