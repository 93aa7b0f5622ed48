package config

// BackupConfig is scheduled backups (issue 9).
type BackupConfig struct{}

// backupOptions are the backup.* settings.
var backupOptions = []option{}

func defaultBackup() BackupConfig { return BackupConfig{} }

func (c Config) validateBackup(bad func(key, format string, args ...any)) {}
