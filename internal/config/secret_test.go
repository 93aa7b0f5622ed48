package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestSecretNeverPrinted proves a secret does not reach Dump output, fmt
// in any verb, slog (JSON and text) or JSON, whether printed alone or as
// part of the Config.
func TestSecretNeverPrinted(t *testing.T) {
	const password = "hunter2-s3cret"
	c, err := load(t, []string{"--store", "postgres://vigil:" + password + "@db.example/vigil"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Store.Reveal(), password) {
		t.Fatalf("Reveal() = %q lost the value", c.Store.Reveal())
	}
	if _, dsn := c.StoreKind(); !strings.Contains(dsn, password) {
		t.Fatalf("StoreKind dsn %q lost the value", dsn)
	}

	outputs := map[string]string{}
	var dump bytes.Buffer
	if err := c.Dump(&dump); err != nil {
		t.Fatal(err)
	}
	outputs["Dump"] = dump.String()
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10.3s", "%T %v"} {
		outputs["Sprintf "+verb+" config"] = fmt.Sprintf(verb, c)
		outputs["Sprintf "+verb+" &config"] = fmt.Sprintf(verb, &c)
		outputs["Sprintf "+verb+" secret"] = fmt.Sprintf(verb, c.Store)
	}
	outputs["Sprint"] = fmt.Sprint(c.Store, c)
	outputs["String"] = c.Store.String()
	outputs["GoString"] = c.Store.GoString()

	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs["json.Marshal"] = string(j)

	var logs bytes.Buffer
	for name, h := range map[string]slog.Handler{
		"json": slog.NewJSONHandler(&logs, nil),
		"text": slog.NewTextHandler(&logs, nil),
	} {
		log := slog.New(h)
		log.Info("config", "config", c, "store", c.Store, "ptr", &c)
		log.Info("group", slog.Group("g", slog.Any("store", c.Store)))
		log.Info("store as attr value", slog.Any("cfg", c))
		outputs["slog "+name] = logs.String()
		logs.Reset()
	}

	for name, out := range outputs {
		if strings.Contains(out, password) {
			t.Errorf("%s leaks the secret: %s", name, out)
		}
	}
	for _, name := range []string{"Dump", "Sprintf %+v config", "Sprintf %#v config", "slog json", "slog text", "json.Marshal"} {
		if !strings.Contains(outputs[name], Redacted) {
			t.Errorf("%s does not show %s: %s", name, Redacted, outputs[name])
		}
	}
}

func TestSecretEmptyStillRedacted(t *testing.T) {
	var s Secret
	if got := fmt.Sprintf("%v|%s|%#v", s, s, s); got != "[redacted]|[redacted]|[redacted]" {
		t.Errorf("empty secret prints %q", got)
	}
}
