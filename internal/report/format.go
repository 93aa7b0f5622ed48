package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// CSVHeader is the header row WriteCSV writes; docs/reports.md describes
// each column. Shares and rates are fractions (0 to 1), times are
// seconds; an empty cell is "no data" (nothing raised, no samples).
func CSVHeader() []string {
	h := []string{"month", "time_zone", "org_id", "kind", "alerts", "raised", "cancelled", "cancelled_pre_alert",
		"acknowledged", "resolved", "open", "false_alarms", "false_alarm_rate"}
	for _, l := range Limits() {
		h = append(h, fmt.Sprintf("ack_within_%ds", int(l.Seconds())))
	}
	for _, q := range []string{"receive", "present", "ack", "resolve"} {
		h = append(h, q+"_n", q+"_p50_s", q+"_p90_s", q+"_p99_s")
	}
	return append(h, "bs8484_met", "telecare_met")
}

// WriteCSV writes r as CSV: the header, one row per kind (by name), then
// the total row (kind "total").
func WriteCSV(w io.Writer, r Report) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader()); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	for _, s := range append(append([]Stats(nil), r.Kinds...), r.Total) {
		row := []string{r.Month, r.TimeZone, r.OrgID, s.Kind, itoa(s.Alerts), itoa(s.Raised), itoa(s.Cancelled),
			itoa(s.CancelledPreAlert), itoa(s.Acknowledged), itoa(s.Resolved), itoa(s.Open), itoa(s.FalseAlarms), fraction(s.FalseAlarmRate)}
		for _, w := range s.AcknowledgedWithin {
			row = append(row, fraction(w.Share))
		}
		for _, q := range []Quantiles{s.TimeToReceive, s.TimeToPresent, s.TimeToAcknowledge, s.TimeToResolve} {
			row = append(row, itoa(q.N), secs(q.P50), secs(q.P90), secs(q.P99))
		}
		row = append(row, boolCell(s.Met(StandardBS8484)), boolCell(s.Met(StandardTelecare)))
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("write csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

// WriteText writes r as a table for people: one line per kind and the
// total, then the targets for all kinds.
func WriteText(w io.Writer, r Report) error {
	org := r.OrgID
	if org == "" {
		org = "all organisations"
	}
	const day = "2006-01-02 15:04 MST"
	fmt.Fprintf(w, "Response report: %s, %s (%s to %s, %s)\n\n", org, r.Month, r.From.Format(day), r.To.Format(day), r.TimeZone)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "KIND\tALERTS\tRAISED\tCANCELLED\tACKED\tRESOLVED\tOPEN\tFALSE ALARM RATE")
	for _, l := range Limits() {
		fmt.Fprintf(tw, "\tACK≤%ds", int(l.Seconds()))
	}
	fmt.Fprint(tw, "\tPRESENT p50/p90/p99\tACK p50/p90/p99\tRESOLVE p50/p90/p99\n")
	for _, s := range append(append([]Stats(nil), r.Kinds...), r.Total) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s", s.Kind, s.Alerts, s.Raised, s.Cancelled, s.Acknowledged,
			s.Resolved, s.Open, percent(s.FalseAlarmRate))
		for _, x := range s.AcknowledgedWithin {
			fmt.Fprintf(tw, "\t%s", percent(x.Share))
		}
		fmt.Fprintf(tw, "\t%s\t%s\t%s\n", triple(s.TimeToPresent), triple(s.TimeToAcknowledge), triple(s.TimeToResolve))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	fmt.Fprintf(w, "\nTargets (all kinds, acknowledged within, of %d raised):\n", r.Total.Raised)
	for _, t := range r.Total.Targets {
		verdict := "no data"
		if t.Met != nil {
			verdict = "MET"
			if !*t.Met {
				verdict = "NOT MET"
			}
		}
		fmt.Fprintf(w, "  %-9s %3ss  want %6s  got %6s  %s\n", t.Standard, t.Within, percent(&t.Want), percent(t.Got), verdict)
	}
	_, err := fmt.Fprintf(w, "\nFalse alarms: resolved as false_alarm plus cancelled by the wearer, over all alerts. Quantiles: %s.\n", r.QuantileMethod)
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func itoa(n int) string { return strconv.Itoa(n) }

func fraction(v *float64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatFloat(math.Round(*v*1e6)/1e6, 'f', -1, 64)
}

func secs(s *Seconds) string {
	if s == nil {
		return ""
	}
	return s.String()
}

func boolCell(b *bool) string {
	if b == nil {
		return ""
	}
	return strconv.FormatBool(*b)
}

// triple is "p50/p90/p99" in short human durations, "-" without samples.
func triple(q Quantiles) string {
	if q.N == 0 {
		return "-"
	}
	return human(*q.P50) + "/" + human(*q.P90) + "/" + human(*q.P99)
}

func human(s Seconds) string {
	d := time.Duration(s)
	if d < time.Minute {
		return strconv.FormatFloat(math.Round(d.Seconds()*10)/10, 'f', -1, 64) + "s"
	}
	out := d.Round(time.Second).String() // "5m0s", "1h0m0s"
	if strings.HasSuffix(out, "m0s") {
		out = strings.TrimSuffix(out, "0s")
	}
	if strings.HasSuffix(out, "h0m") {
		out = strings.TrimSuffix(out, "0m")
	}
	return out
}
