package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"
)

const (
	maxBatchEvents = 500
	maxBatchBytes  = 3 << 20 // below the server's 4 MiB, leaving room for framing
)

// runHTTPS is one phone app: it queues events and posts them in batches
// every BatchEvery (at once when an alarm is waiting). A batch leaves the
// queue on 200. A 5xx, 429, timeout or network error keeps it, and the
// next attempt, after a backoff or Retry-After, resends the same events
// with the same ids (store-and-forward). A 400 naming events[i] drops that
// event, counted as refused, and resends the rest; other 4xx drop the batch.
func (d *device) runHTTPS(ctx context.Context, client *http.Client) {
	if !sleep(ctx, d.delay) {
		return
	}
	now := time.Now()
	d.sched.start(now)
	d.wearer.start(now)
	nextPost := now.Add(d.batchGap())
	attempt := 0
	limit := maxBatchEvents
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		now = time.Now()
		d.generate(ctx, now)
		if attempt == 0 && len(d.queue) > 0 && d.queue[0].alarm && d.queue[0].sends == 0 {
			nextPost = now // an alarm does not wait for the next batch
		}
		if !now.Before(nextPost) {
			if len(d.queue) == 0 {
				nextPost = now.Add(d.batchGap())
			} else {
				wait, ok := d.post(ctx, client, &attempt, &limit)
				if !ok {
					return
				}
				nextPost = time.Now().Add(wait)
			}
		}
		wake := d.earliest()
		if nextPost.Before(wake) {
			wake = nextPost
		}
		timer.Reset(time.Until(wake))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
}

func (d *device) batchGap() time.Duration {
	return time.Duration(float64(d.s.cfg.BatchEvery) * (0.8 + 0.4*d.sched.rng.Float64()))
}

// fieldIndex finds i in an error field such as "events[3].position.lat".
var fieldIndex = regexp.MustCompile(`^events\[(\d+)\]`)

type apiError struct {
	Error struct {
		Code  string `json:"code"`
		Field string `json:"field"`
	} `json:"error"`
}

// post sends the head of the queue as one batch. It returns how long to
// wait before the next post, and false when ctx is done.
func (d *device) post(ctx context.Context, client *http.Client, attempt, limit *int) (time.Duration, bool) {
	s := d.s
	n, size := 0, 0
	for n < len(d.queue) && n < *limit && (n == 0 || size+len(d.queue[n].payload)+1 <= maxBatchBytes) {
		size += len(d.queue[n].payload) + 1
		n++
	}
	batch := d.queue[:n]
	var body bytes.Buffer
	body.Grow(size + 16)
	body.WriteString(`{"events":[`)
	for i, p := range batch {
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(p.payload)
	}
	body.WriteString(`]}`)

	u := (&url.URL{Scheme: "https", Host: s.cfg.HTTPSAddr, Path: "/api/v1/devices/" + d.cred.DeviceID + "/events"}).String()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, &body)
	if err != nil {
		s.log.Error("sim: build request", "device_id", d.cred.DeviceID, "err", err)
		return time.Hour, ctx.Err() == nil
	}
	req.Header.Set("Authorization", "Bearer "+d.cred.Secret)
	req.Header.Set("Content-Type", "application/json")
	d.sent(batch)
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, false
		}
		d.failed()
		*attempt++
		s.log.Debug("sim: post failed; keeping the batch", "device_id", d.cred.DeviceID, "events", n, "err", err)
		return d.sched.backoff(s.cfg.RetryMin, *attempt), true
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()

	switch code := resp.StatusCode; {
	case code == http.StatusOK:
		var ok struct {
			Accepted   int `json:"accepted"`
			Duplicates int `json:"duplicates"`
		}
		_ = json.Unmarshal(raw, &ok) // the status is what counts
		d.acked(batch, ok.Duplicates)
		d.remove(0, n)
		*attempt, *limit = 0, maxBatchEvents
		if len(d.queue) > 0 {
			return 0, true // catching up: send the next batch at once
		}
		return d.batchGap(), true

	case code == http.StatusRequestEntityTooLarge && n > 1:
		*limit = max(1, n/2)
		return 0, true

	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500 || code < 400:
		d.failed()
		*attempt++
		wait := d.sched.backoff(s.cfg.RetryMin, *attempt)
		if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && ra >= 0 {
			wait = max(wait, time.Duration(ra)*time.Second)
		}
		s.log.Debug("sim: post not accepted; keeping the batch", "device_id", d.cred.DeviceID, "events", n, "status", code)
		return wait, true

	default:
		reason := fmt.Sprintf("http_%d", code)
		var ae apiError
		_ = json.Unmarshal(raw, &ae)
		s.log.Debug("sim: batch refused", "device_id", d.cred.DeviceID, "events", n, "status", code,
			"code", ae.Error.Code, "field", ae.Error.Field)
		if m := fieldIndex.FindStringSubmatch(ae.Error.Field); code == http.StatusBadRequest && m != nil {
			if i, err := strconv.Atoi(m[1]); err == nil && i < n {
				// One event is bad: drop it, resend the others at once.
				d.refused(reason, 1)
				d.remove(i, 1)
				return 0, true
			}
		}
		d.refused(reason, n)
		d.remove(0, n)
		return d.batchGap(), true
	}
}
