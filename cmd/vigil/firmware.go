package main

import "context"

// runFirmware uploads releases, runs rollouts and shows fleet compliance
// (issue 8).
func runFirmware(ctx context.Context, e env, args []string) error { return errUsage }
