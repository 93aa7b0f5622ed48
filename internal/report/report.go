// Package report computes response-time statistics for a month of alerts:
// the timestamps the BS 8484 and telecare KPIs are built on (activation at
// the device, received, presented to a responder, acknowledged, resolved),
// counts by kind, the share acknowledged within 10, 40, 60 and 180
// seconds, p50/p90/p99 times, the false-alarm rate, and whether the BS 8484
// and telecare targets were met. docs/reports.md defines every number.
//
// Compute is pure: it takes Facts (one per alert) and returns a Report.
// Collect is the only part that reads: it pages through one organisation's
// alerts for a month through Source, a small interface the store
// satisfies. WriteCSV and WriteText render a Report; JSON is the Report
// itself through encoding/json (durations are seconds, as numbers).
//
// It imports the store's record types and the alert lifecycle's outcome
// names; it must not import the store drivers, the bus, app, web or HTTP.
package report

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"vigil/internal/alert"
)

// QuantileMethod is how Compute picks quantiles: the nearest rank, i.e.
// the smallest sample such that at least p % of samples are at most it
// (no interpolation: every quantile is a time that really happened).
const QuantileMethod = "nearest-rank"

// TotalKind is the Kind of the all-kinds row of a report.
const TotalKind = "total"

// The standards whose targets a report checks.
const (
	StandardBS8484   = "BS 8484"
	StandardTelecare = "telecare"
)

// Limits are the acknowledge-within limits a report counts, shortest
// first.
func Limits() []time.Duration {
	return []time.Duration{10 * time.Second, 40 * time.Second, 60 * time.Second, 180 * time.Second}
}

// Targets are the targets a report checks, with Got and Met unset: BS
// 8484 (alarm receiving centre) 80 % acknowledged within 10 s and 98.5 %
// within 40 s; telecare 97.5 % within 60 s and 99 % within 180 s.
func Targets() []Target {
	return []Target{
		{Standard: StandardBS8484, Within: Seconds(10 * time.Second), Want: 0.80},
		{Standard: StandardBS8484, Within: Seconds(40 * time.Second), Want: 0.985},
		{Standard: StandardTelecare, Within: Seconds(60 * time.Second), Want: 0.975},
		{Standard: StandardTelecare, Within: Seconds(180 * time.Second), Want: 0.99},
	}
}

// Fact is what a report needs to know about one alert. A zero time means
// "did not happen (yet)".
type Fact struct {
	AlertID string
	Kind    string
	// Activation is when the cause happened: the device's time of the
	// event, or the deadline that passed.
	Activation time.Time
	// Received is when the server decided to raise the alert; a report
	// covers the alerts received in its period.
	Received time.Time
	// RaisedFor starts the response clock: when the alarm reached the
	// responders (the received time, or the end of a pre-alert). Zero for a
	// pre-alert the wearer cancelled and one still pending: they never
	// reached anyone.
	RaisedFor time.Time
	// Presented is when the first notification to a responder was sent
	// (the console feed, usually first, or any other channel).
	Presented    time.Time
	Acknowledged time.Time
	Resolved     time.Time
	// Cancelled is when the wearer cancelled the alert (a pre-alert, or a
	// raised alert inside its cancel window).
	Cancelled time.Time
	Outcome   string // set when resolved: false_alarm, assisted, ...
}

// open reports whether the alert still needs someone.
func (f Fact) open() bool { return f.Resolved.IsZero() && f.Cancelled.IsZero() }

// Period is a calendar month in a time zone: [From, To).
type Period struct {
	Month string // "2026-11"
	Zone  string // the zone's name, "UTC" or e.g. "Europe/London"
	From  time.Time
	To    time.Time
}

// ErrZone: the time zone is not an IANA name this system knows.
var ErrZone = errors.New("report: unknown time zone")

// Zone loads an IANA time zone by name; "" is UTC. "Local" is refused: a
// report must not depend on the machine that ran it.
func Zone(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	if name == "Local" {
		return nil, fmt.Errorf("zone %q: %w", name, ErrZone)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("zone %q: %w", name, errors.Join(ErrZone, err))
	}
	return loc, nil
}

// ErrMonth: the month is not YYYY-MM.
var ErrMonth = errors.New("report: month must be YYYY-MM")

// ParseMonth returns the month s ("2026-11") in loc (nil: UTC): from
// midnight on its first day to midnight on the next month's first day.
func ParseMonth(s string, loc *time.Location) (Period, error) {
	if loc == nil {
		loc = time.UTC
	}
	if len(s) != len("2006-01") {
		return Period{}, fmt.Errorf("month %q: %w", s, ErrMonth)
	}
	t, err := time.ParseInLocation("2006-01", s, loc)
	if err != nil || t.Year() < 2000 {
		return Period{}, fmt.Errorf("month %q: %w", s, ErrMonth)
	}
	from := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, loc)
	to := time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, loc)
	return Period{Month: s, Zone: loc.String(), From: from, To: to}, nil
}

// Contains reports whether t is in the period.
func (p Period) Contains(t time.Time) bool { return !t.Before(p.From) && t.Before(p.To) }

// Seconds is a duration that encodes in JSON as a number of seconds,
// rounded to the millisecond.
type Seconds time.Duration

// MarshalJSON writes the seconds as a number.
func (s Seconds) MarshalJSON() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalJSON reads a number of seconds.
func (s *Seconds) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("seconds %s: %w", b, err)
	}
	*s = Seconds(math.Round(f * float64(time.Second)))
	return nil
}

// String is the number of seconds, to the millisecond ("12.5").
func (s Seconds) String() string {
	return strconv.FormatFloat(math.Round(time.Duration(s).Seconds()*1000)/1000, 'f', -1, 64)
}

// Quantiles are p50, p90 and p99 of N durations; nil when N is 0.
type Quantiles struct {
	N   int      `json:"n"`
	P50 *Seconds `json:"p50_s"`
	P90 *Seconds `json:"p90_s"`
	P99 *Seconds `json:"p99_s"`
}

// Within is how many raised alerts were acknowledged within a limit.
type Within struct {
	Limit Seconds `json:"within_s"`
	Count int     `json:"count"`
	// Share is Count over the raised alerts; nil when none was raised.
	Share *float64 `json:"share"`
}

// Target is one target of a standard: Want (a share, 0 to 1) of the raised
// alerts acknowledged within Within. Got and Met are nil when no alert was
// raised.
type Target struct {
	Standard string   `json:"standard"`
	Within   Seconds  `json:"within_s"`
	Want     float64  `json:"want"`
	Got      *float64 `json:"got"`
	Met      *bool    `json:"met"`
}

// Stats are the numbers for one kind of alert, or for all (TotalKind).
type Stats struct {
	Kind string `json:"kind"`
	// Alerts is how many were received in the period.
	Alerts int `json:"alerts"`
	// Raised reached the responders: every alert but the pre-alerts the
	// wearer cancelled and those still pending.
	Raised int `json:"raised"`
	// Cancelled were cancelled by the wearer; CancelledPreAlert of them
	// before they were raised.
	Cancelled         int `json:"cancelled"`
	CancelledPreAlert int `json:"cancelled_pre_alert"`
	Acknowledged      int `json:"acknowledged"` // including those resolved
	Resolved          int `json:"resolved"`
	Open              int `json:"open"` // pending, raised or acknowledged when the report ran
	// FalseAlarms were resolved with the outcome false_alarm.
	FalseAlarms int `json:"false_alarms"`
	// FalseAlarmRate is (FalseAlarms + Cancelled) / Alerts; nil when there
	// were no alerts.
	FalseAlarmRate *float64 `json:"false_alarm_rate"`
	// AcknowledgedWithin counts the raised alerts acknowledged within each
	// of Limits, measured from RaisedFor; one never acknowledged is not
	// within any.
	AcknowledgedWithin []Within `json:"acknowledged_within"`
	// TimeToReceive is activation to received; the others are measured
	// from RaisedFor, over the raised alerts that got there.
	TimeToReceive     Quantiles `json:"time_to_receive"`
	TimeToPresent     Quantiles `json:"time_to_present"`
	TimeToAcknowledge Quantiles `json:"time_to_acknowledge"`
	TimeToResolve     Quantiles `json:"time_to_resolve"`
	Targets           []Target  `json:"targets"`
}

// Met reports whether every target of a standard was met; nil when no
// alert was raised (or the standard is unknown).
func (s Stats) Met(standard string) *bool {
	var met *bool
	for _, t := range s.Targets {
		if t.Standard != standard {
			continue
		}
		if t.Met == nil {
			return nil
		}
		v := *t.Met && (met == nil || *met)
		met = &v
	}
	return met
}

// Report is the response statistics of one organisation (or all) for one
// month.
type Report struct {
	OrgID          string    `json:"org_id"` // "" for every organisation
	Month          string    `json:"month"`
	TimeZone       string    `json:"time_zone"`
	From           time.Time `json:"from"`
	To             time.Time `json:"to"` // exclusive
	QuantileMethod string    `json:"quantile_method"`
	Total          Stats     `json:"total"`
	Kinds          []Stats   `json:"kinds"` // by kind name; only kinds with alerts
}

// Compute computes the report of org for period p from facts. Facts of
// alerts received outside p are ignored; the order of facts does not
// matter.
func Compute(org string, p Period, facts []Fact) Report {
	r := Report{OrgID: org, Month: p.Month, TimeZone: p.Zone, From: p.From, To: p.To, QuantileMethod: QuantileMethod}
	byKind := map[string]*acc{}
	total := &acc{}
	for _, f := range facts {
		if !p.Contains(f.Received) {
			continue
		}
		total.add(f)
		k := byKind[f.Kind]
		if k == nil {
			k = &acc{}
			byKind[f.Kind] = k
		}
		k.add(f)
	}
	r.Total = total.stats(TotalKind)
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	r.Kinds = make([]Stats, 0, len(kinds))
	for _, k := range kinds {
		r.Kinds = append(r.Kinds, byKind[k].stats(k))
	}
	return r
}

// acc accumulates one row's facts.
type acc struct {
	s                                    Stats
	within                               []int // per Limits()
	receive, present, acknowledge, solve []time.Duration
}

func (a *acc) add(f Fact) {
	limits := Limits()
	if a.within == nil {
		a.within = make([]int, len(limits))
	}
	a.s.Alerts++
	if !f.Cancelled.IsZero() {
		a.s.Cancelled++
		if f.RaisedFor.IsZero() {
			a.s.CancelledPreAlert++
		}
	}
	if !f.Resolved.IsZero() {
		a.s.Resolved++
		if f.Outcome == alert.OutcomeFalseAlarm {
			a.s.FalseAlarms++
		}
	}
	if f.open() {
		a.s.Open++
	}
	if !f.Acknowledged.IsZero() {
		a.s.Acknowledged++
	}
	if !f.Activation.IsZero() && !f.Received.IsZero() {
		a.receive = append(a.receive, since(f.Activation, f.Received))
	}
	if f.RaisedFor.IsZero() {
		return
	}
	a.s.Raised++
	if !f.Presented.IsZero() {
		a.present = append(a.present, since(f.RaisedFor, f.Presented))
	}
	if !f.Acknowledged.IsZero() {
		d := since(f.RaisedFor, f.Acknowledged)
		a.acknowledge = append(a.acknowledge, d)
		for i, l := range limits {
			if d <= l {
				a.within[i]++
			}
		}
	}
	if !f.Resolved.IsZero() {
		a.solve = append(a.solve, since(f.RaisedFor, f.Resolved))
	}
}

// since is to - from, and 0 if clocks make it negative (a device clock
// ahead of the server's).
func since(from, to time.Time) time.Duration { return max(to.Sub(from), 0) }

func (a *acc) stats(kind string) Stats {
	s := a.s
	s.Kind = kind
	s.FalseAlarmRate = ratio(s.FalseAlarms+s.Cancelled, s.Alerts)
	for i, l := range Limits() {
		n := 0
		if a.within != nil {
			n = a.within[i]
		}
		s.AcknowledgedWithin = append(s.AcknowledgedWithin, Within{Limit: Seconds(l), Count: n, Share: ratio(n, s.Raised)})
	}
	s.TimeToReceive = quantiles(a.receive)
	s.TimeToPresent = quantiles(a.present)
	s.TimeToAcknowledge = quantiles(a.acknowledge)
	s.TimeToResolve = quantiles(a.solve)
	for _, t := range Targets() {
		for _, w := range s.AcknowledgedWithin {
			if w.Limit == t.Within && w.Share != nil {
				got, met := *w.Share, *w.Share >= t.Want
				t.Got, t.Met = &got, &met
			}
		}
		s.Targets = append(s.Targets, t)
	}
	return s
}

func ratio(n, of int) *float64 {
	if of == 0 {
		return nil
	}
	v := float64(n) / float64(of)
	return &v
}

// quantiles sorts ds and picks p50, p90 and p99 by nearest rank.
func quantiles(ds []time.Duration) Quantiles {
	q := Quantiles{N: len(ds)}
	if len(ds) == 0 {
		return q
	}
	slices.Sort(ds)
	q.P50, q.P90, q.P99 = nearestRank(ds, 50), nearestRank(ds, 90), nearestRank(ds, 99)
	return q
}

// nearestRank is the p-th percentile of sorted ds: the value at rank
// ceil(p/100 × n), counting from 1.
func nearestRank(sorted []time.Duration, p int) *Seconds {
	n := len(sorted)
	rank := (p*n + 99) / 100
	s := Seconds(sorted[max(rank, 1)-1])
	return &s
}

// percent formats a share as a percentage ("98.5%"), "-" for nil.
func percent(v *float64) string {
	if v == nil {
		return "-"
	}
	s := strconv.FormatFloat(math.Round(*v*1000)/10, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0") + "%"
}
