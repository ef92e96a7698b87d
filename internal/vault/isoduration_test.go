package vault

import (
	"testing"
	"time"
)

func TestParseISODuration(t *testing.T) {
	base := time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		ok   bool
		want time.Time // base + d
	}{
		{"P90D", true, base.AddDate(0, 0, 90)},
		{"P3M", true, base.AddDate(0, 3, 0)},
		{"PT48H", true, base.Add(48 * time.Hour)},
		{"P1Y10D", true, base.AddDate(1, 0, 10)},
		{"P2W", true, base.AddDate(0, 0, 14)},
		{"P1DT12H30M15S", true, base.AddDate(0, 0, 1).Add(12*time.Hour + 30*time.Minute + 15*time.Second)},
		{"P1M", true, time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC)}, // Jan 31 + 1 month, as AddDate
		{"", false, time.Time{}},
		{"P", false, time.Time{}},
		{"PT", false, time.Time{}},
		{"P1DT", false, time.Time{}},
		{"90D", false, time.Time{}},
		{"P90", false, time.Time{}},
		{"PD", false, time.Time{}},
		{"P1.5D", false, time.Time{}},
		{"P-1D", false, time.Time{}},
		{"P1D1Y", false, time.Time{}},     // out of order
		{"P1D2D", false, time.Time{}},     // twice
		{"PT1D", false, time.Time{}},      // D is not a time unit
		{"P1H", false, time.Time{}},       // H needs T
		{"P1000000D", false, time.Time{}}, // too large
		{"P1Y2M3W4DT5H6M7S8", false, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			d, err := parseISODuration(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("parseISODuration(%q) error %v, want ok=%v", tc.in, err, tc.ok)
			}
			if !tc.ok {
				return
			}
			if got := d.after(base); !got.Equal(tc.want) {
				t.Fatalf("%q after %v = %v, want %v", tc.in, base, got, tc.want)
			}
			if back := d.before(d.after(base)); d.months == 0 && !back.Equal(base) { // month ends do not invert
				t.Fatalf("%q: before(after(base)) = %v", tc.in, back)
			}
		})
	}
}

func FuzzParseISODuration(f *testing.F) {
	for _, s := range []string{"P90D", "P3M", "PT48H", "P1Y10D", "P1DT12H30M15S", "P", "PT", "P1D1Y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseISODuration(s)
		if err != nil {
			return
		}
		if len(s) > maxISODurationLen || s[0] != 'P' {
			t.Fatalf("accepted %q", s)
		}
		base := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
		if d.after(base).Before(base) {
			t.Fatalf("%q is negative", s)
		}
	})
}
