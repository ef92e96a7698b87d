package vault

import (
	"errors"
	"strconv"
	"time"
)

// isoDuration is an ISO 8601 duration as Key Vault's rotation policies
// write them ("P90D", "P3M", "PT48H", "P1Y10D"): calendar parts (years,
// months, weeks folded into days) apply with AddDate, so "P1M" from
// January 31 is March 3, as Go's calendar arithmetic has it.
type isoDuration struct {
	years, months, days int
	clock               time.Duration // hours, minutes, seconds
}

const maxISODurationLen = 32

var errISODuration = errors.New("not an ISO 8601 duration such as P90D, P3M, PT48H or P1Y10D")

// parseISODuration reads PnYnMnWnDTnHnMnS (each part optional, integers
// only, at least one part, each at most 100000).
func parseISODuration(s string) (isoDuration, error) {
	var d isoDuration
	if len(s) < 3 || len(s) > maxISODurationLen || s[0] != 'P' {
		return d, errISODuration
	}
	inTime, parts, order := false, 0, 0
	for i := 1; i < len(s); {
		if s[i] == 'T' {
			if inTime || i == len(s)-1 {
				return d, errISODuration
			}
			inTime, order = true, 0
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i || j == len(s) || j-i > 6 {
			return d, errISODuration
		}
		n, err := strconv.Atoi(s[i:j])
		if err != nil || n > 100000 {
			return d, errISODuration
		}
		// Units must come in order, each once: Y M W D, then H M S.
		units := "YMWD"
		if inTime {
			units = "HMS"
		}
		pos := -1
		for k := range len(units) {
			if units[k] == s[j] {
				pos = k
			}
		}
		if pos < order {
			return d, errISODuration
		}
		order = pos + 1
		switch {
		case !inTime && s[j] == 'Y':
			d.years = n
		case !inTime && s[j] == 'M':
			d.months = n
		case !inTime && s[j] == 'W':
			d.days += 7 * n
		case !inTime && s[j] == 'D':
			d.days += n
		case inTime && s[j] == 'H':
			d.clock += time.Duration(n) * time.Hour
		case inTime && s[j] == 'M':
			d.clock += time.Duration(n) * time.Minute
		case inTime && s[j] == 'S':
			d.clock += time.Duration(n) * time.Second
		}
		parts++
		i = j + 1
	}
	if parts == 0 {
		return d, errISODuration
	}
	return d, nil
}

// after is t plus d.
func (d isoDuration) after(t time.Time) time.Time {
	return t.AddDate(d.years, d.months, d.days).Add(d.clock)
}

// before is t minus d.
func (d isoDuration) before(t time.Time) time.Time {
	return t.AddDate(-d.years, -d.months, -d.days).Add(-d.clock)
}

const day = 24 * time.Hour

// shortest and longest are d's length from the start that makes it
// shortest or longest (months of 28 to 31 days, years of 365 or 366): a
// rule between two durations must hold from any start, or a policy valid
// in January fails in February.
func (d isoDuration) shortest() time.Duration {
	return time.Duration(d.years*365+d.months*28+d.days)*day + d.clock
}

func (d isoDuration) longest() time.Duration {
	return time.Duration(d.years*366+d.months*31+d.days)*day + d.clock
}
