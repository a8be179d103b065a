package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// ScheduleParser parses sync.schedule exactly as config check validates it. Hand it to
// cron.New(cron.WithParser(config.ScheduleParser{})) so that the scheduler can never
// accept a spec the config refused, or the reverse.
type ScheduleParser struct{}

// Parse implements cron.ScheduleParser.
func (ScheduleParser) Parse(spec string) (cron.Schedule, error) { return ParseSchedule(spec) }

var _ cron.ScheduleParser = ScheduleParser{}

// ParseSchedule parses a cron spec: five fields ("*/5 * * * *"), or a descriptor
// ("@every 15s", "@hourly", "@daily"...), optionally after "CRON_TZ=Zone ". It refuses
// specs that never fire and "@every" intervals under a second, and turns the panics the
// cron parser has on some malformed specs into errors.
func ParseSchedule(spec string) (sched cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			sched, err = nil, fmt.Errorf("invalid cron spec %q", spec)
		}
	}()
	body := strings.TrimSpace(spec)
	if strings.HasPrefix(body, "TZ=") || strings.HasPrefix(body, "CRON_TZ=") {
		// cron slices up to the first space without checking there is one.
		_, rest, ok := strings.Cut(body, " ")
		if !ok || strings.TrimSpace(rest) == "" {
			return nil, fmt.Errorf("invalid cron spec %q: a time zone prefix must be followed by a schedule", spec)
		}
		body = strings.TrimSpace(rest)
	}
	if every, ok := strings.CutPrefix(body, "@every "); ok {
		d, err := time.ParseDuration(strings.TrimSpace(every))
		if err != nil {
			return nil, fmt.Errorf("invalid cron spec %q: %q is not a Go duration such as \"15s\"", spec, strings.TrimSpace(every))
		}
		if d < time.Second {
			return nil, fmt.Errorf("invalid cron spec %q: @every needs an interval of at least 1s", spec)
		}
	}
	parser := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	sched, err = parser.Parse(strings.TrimSpace(spec))
	if err != nil {
		return nil, fmt.Errorf("invalid cron spec %q: %v (write five fields such as \"*/5 * * * *\", or \"@every 15s\", \"@hourly\"...)", spec, err)
	}
	// A spec such as "0 0 30 2 *" (30 February) parses but never fires; cron would
	// just never sync. Next looks five years ahead before giving up.
	if sched.Next(time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, fmt.Errorf("cron spec %q never fires", spec)
	}
	return sched, nil
}
