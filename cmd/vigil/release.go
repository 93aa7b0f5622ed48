package main

import "context"

// runRelease is the offline release pipeline: signing firmware releases
// with the image repository's offline keys (issue 8).
func runRelease(ctx context.Context, e env, args []string) error { return errUsage }
