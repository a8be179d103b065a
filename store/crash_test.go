package store_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/store"
	"github.com/tillkeep/tillkeep/store/storetest"
)

// The crash test runs this test binary as a child that redeems on 8 lanes and prints
// every acknowledged redemption, kills it with SIGKILL mid-burst, and checks that the
// ledger holds every acknowledged redemption exactly once. It repeats on the same file.
const crashChildEnv = "TILLKEEP_STORE_CRASH_CHILD"

func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("helper process of TestCrashKeepsAcknowledgedRedemptions")
	}
	db, err := store.Open(path, tillOptions())
	if err != nil {
		fmt.Println("open-error", err)
		os.Exit(3)
	}
	ctx := context.Background()
	round := os.Getenv(crashChildEnv + "_ROUND")
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for lane := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				txID := fmt.Sprintf("r%s-l%d-%d", round, lane, i)
				o, _, err := db.Record(ctx, storetest.RecordRequest(txID, "M1", "", tillkeep.ModeOffline))
				if err != nil {
					fmt.Println("record-error", err)
					os.Exit(4)
				}
				mu.Lock()
				// Written and flushed only after Record returned: what the POS would have
				// been told.
				fmt.Fprintf(out, "ack %s %d %s\n", txID, o.Seq, o.RedemptionID)
				_ = out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestCrashKeepsAcknowledgedRedemptions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGKILL of a child process is Unix only")
	}
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	path := filepath.Join(t.TempDir(), store.FileName)
	db := openAt(t, path, tillOptions())
	snap := storetest.Snapshot()
	snap.Offers[1].Rules.MaxRedemptionsPerCoupon = 1 << 30
	if err := db.ReplaceCatalog(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	db.Close()

	type ack struct {
		seq uint64
		rid string
	}
	acked := map[string]ack{}
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path, fmt.Sprintf("%s_ROUND=%d", crashChildEnv, round))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		n, target := 0, 150+round*50
		deadline := time.Now().Add(30 * time.Second)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 0 {
				continue
			}
			if f[0] != "ack" || len(f) != 4 {
				_ = cmd.Process.Kill()
				t.Fatalf("child: %s", sc.Text())
			}
			seq, err := strconv.ParseUint(f[2], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			acked[f[1]] = ack{seq, f[3]}
			if n++; n == target || time.Now().After(deadline) {
				// Mid-burst: the lanes are still committing.
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
			}
		}
		_ = cmd.Wait()
		if n < target {
			t.Fatalf("round %d: the child acknowledged only %d redemptions", round, n)
		}

		db := openAt(t, path, tillOptions())
		if err := db.Check(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		ctx := context.Background()
		es, err := db.Journal(ctx, 0, 10_000)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for i, e := range es {
			if e.Seq != uint64(i+1) {
				t.Fatalf("round %d: journal seq %d at position %d", round, e.Seq, i)
			}
			seen[e.TransactionID]++
		}
		for txID, a := range acked {
			if seen[txID] != 1 {
				t.Fatalf("round %d: acknowledged %s is in the journal %d times", round, txID, seen[txID])
			}
			out, replayed, err := db.Record(ctx, storetest.RecordRequest(txID, "M1", "", tillkeep.ModeOffline))
			if err != nil || !replayed || out.Seq != a.seq || out.RedemptionID != a.rid {
				t.Fatalf("round %d: retry of %s = %+v %v %v, want seq %d id %s", round, txID, out, replayed, err, a.seq, a.rid)
			}
		}
		if st, _ := db.Status(ctx); st.LastSeq != uint64(len(es)) {
			t.Fatalf("round %d: last seq %d, journal %d", round, st.LastSeq, len(es))
		}
		t.Logf("round %d: %d acknowledged so far, journal holds %d", round, len(acked), len(es))
		db.Close()
	}
}
