// Package firmware is signed firmware releases (TUF image repository), the
// director that picks an approved image per device, staged rollouts and
// fleet compliance (issue 8).
//
// Two TUF repositories, following Uptane:
//
//   - the image repository: root and targets are signed offline by a
//     threshold of release keys (Repo, `vigil release`); its snapshot and
//     timestamp are signed by the server's online key (they only attest
//     freshness and consistency).
//   - the director repository, one per device: every role is signed by the
//     online key; its targets name the image the device should run, copied
//     (length, hashes, version) from the image repository.
//
// A device (Client) installs only what both agree on, so a server that is
// compromised can choose among approved images but never make a new one.
//
// Must not import: the app, store drivers, the bus, gateways or web.
package firmware
