package khtest

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// A restart whose port is briefly held by someone else waits for it instead
// of failing the test (CI once failed on exactly this race).
func TestRestartWaitsForBusyPort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real keyhaven serve")
	}
	s := Start(t, Options{})
	s.Stop()
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port))
	if err != nil {
		t.Fatalf("hold port: %v", err)
	}
	go func() { time.Sleep(time.Second); l.Close() }()
	s.Restart()
	resp, err := s.Client().Get(s.BaseURL + "/readyz")
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("readyz after restart: %d", resp.StatusCode)
	}
}

func TestFreePortBelowEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	for range 20 {
		if p := FreePort(t); p < 20000 || p >= low {
			t.Fatalf("FreePort() = %d, want within [20000, %d)", p, low)
		}
	}
}
