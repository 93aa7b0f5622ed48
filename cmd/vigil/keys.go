package main

import "context"

// runKeys manages the data-encryption keys: status and rotation (issue 9).
func runKeys(ctx context.Context, e env, args []string) error { return errUsage }
