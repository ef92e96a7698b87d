package sqlite

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/keyhaven/keyhaven/internal/store"
)

const crashEnv = "KEYHAVEN_SQLITE_CRASH_CHILD_DB"

// TestCrashChild is the victim process of TestCrashDurability; it does
// nothing unless started by it.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("helper process for TestCrashDurability")
	}
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		fmt.Println("open error:", err)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		var v int64
		err := s.Update(ctx, func(tx store.Tx) error {
			var err error
			v, err = tx.Put(ctx, fmt.Sprintf("crash/%06d", i), []byte(strconv.Itoa(i)), store.Absent)
			return err
		})
		if err != nil {
			fmt.Println("update error:", err)
			os.Exit(2)
		}
		// Acknowledge only after Update returned: this is the promise a
		// client would rely on.
		fmt.Printf("ack %d %d\n", i, v)
	}
}

// TestCrashDurability SIGKILLs a process mid-stream of commits and checks
// that every commit it acknowledged is present afterwards.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[int]int64{}
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(acked) < 300 {
		line := sc.Text()
		var i int
		var v int64
		if _, err := fmt.Sscanf(line, "ack %d %d", &i, &v); err != nil {
			if strings.Contains(line, "error") {
				t.Fatalf("child: %s", line)
			}
			continue
		}
		acked[i] = v
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no cleanup runs
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(acked) < 300 {
		t.Fatalf("child acknowledged only %d commits", len(acked))
	}

	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	defer s.Close()
	var maxV int64
	for i, v := range acked {
		rec, err := s.Get(context.Background(), fmt.Sprintf("crash/%06d", i))
		if err != nil || string(rec.Value) != strconv.Itoa(i) || rec.Version != v {
			t.Fatalf("acknowledged commit %d lost or changed: {%q %d} %v, want version %d", i, rec.Value, rec.Version, err, v)
		}
		maxV = max(maxV, v)
	}
	var next int64
	if err := s.Update(context.Background(), func(tx store.Tx) error {
		var err error
		next, err = tx.Put(context.Background(), "crash/after", []byte("x"), store.Any)
		return err
	}); err != nil || next <= maxV {
		t.Fatalf("version after crash = %d (%v), want > %d", next, err, maxV)
	}
}
