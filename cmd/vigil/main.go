// Command vigil is the one Vigil binary: serve, demo, sim, device, org,
// migrate, config and bench. main is thin: each subcommand has its own file
// and flag set, and errors come back here to be printed as one line.
package main

import (
	// The zone database is embedded, so --tz and report time zones work
	// on hosts without one (minimal containers).
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// env is what every subcommand gets from the outside world.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

type command struct {
	name  string
	usage string
	run   func(ctx context.Context, e env, args []string) error
}

func commands() []command {
	return []command{
		{"serve", "run the server", runServe},
		{"demo", "run the server on embedded defaults with ~20 simulated devices", runDemo},
		{"sim", "run simulated devices against a server", runSim},
		{"device", "register, list and assign devices (add, list, assign)", runDevice},
		{"org", "create and list organisations (add, list)", runOrg},
		{"user", "sign-in accounts on the server's own data (invite, list)", runUser},
		{"token", "API tokens for integrations (create, list, revoke, permissions)", runToken},
		{"alerts", "list alerts (list)", runAlerts},
		{"report", "monthly response-time statistics (response)", runReport},
		{"audit", "check the audit log's hash chain and signatures, or export it (verify, export)", runAudit},
		{"sessions", "list timed lone-worker sessions (list)", runSessions},
		{"zones", "import and list geofences as GeoJSON (import, list)", runZones},
		{"person", "people who wear devices: their fall sensitivity, and their data-protection rights (add, list, set, export, erase)", runPerson},
		{"migrate", "apply database migrations", runMigrate},
		{"config", "check or print the effective configuration (check, dump)", runConfig},
		{"bench", "measure durable ingest against mosquitto in the same run", runBench},
		{"fall", "train and evaluate the fall detector (train, eval)", runFall},
		{"backup", "encrypted, signed backup of the store and data directory (keygen; receive and prune on the backup host)", runBackup},
		{"restore", "verify a backup (dir or https) and restore it into an empty data directory (and empty PostgreSQL schema)", runRestore},
		{"retention", "how long each organisation keeps personal data, and purging it now (show, set, purge-now)", runRetention},
		{"release", "sign firmware releases with the offline keys (init, add, sign, verify)", runRelease},
		{"firmware", "firmware releases, rollouts and fleet compliance (upload, list, rollout, compliance)", runFirmware},
		{"keys", "data-encryption keys: status and rotation (status, rotate)", runKeys},
	}
}

// errUsage marks an error whose message is the whole story (no "vigil:" chain).
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	e := env{getenv: getenv, stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, e, args[1:])
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 0
			case errors.Is(err, errUsage):
				fmt.Fprintln(stderr, err)
				return 2
			default:
				fmt.Fprintf(stderr, "vigil %s: %v\n", c.name, err)
				return 1
			}
		}
	}
	fmt.Fprintf(stderr, "vigil: unknown command %q\n\n", args[0])
	printUsage(stderr)
	return 2
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: vigil <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.usage)
	}
	fmt.Fprintln(w, "\nRun 'vigil <command> -h' for a command's flags.")
}

func usagef(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
}
