package pgstore_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tillkeep/tillkeep/platform"
	"github.com/tillkeep/tillkeep/platform/pgstore/pgtest"
)

func appendOne(tx platform.Tx, key string) (uint64, error) {
	return tx.AppendChange(platform.Change{At: time.Now(), Entity: platform.EntityCoupon, Key: key, Event: platform.EventRedeemed, OfferID: "O1"})
}

func changesSince(t *testing.T, s platform.Storage, seq uint64) (cs []platform.Change, head uint64) {
	t.Helper()
	if err := s.View(t.Context(), func(tx platform.ReadTx) error {
		var err error
		if cs, err = tx.ChangesSince(seq, 0); err != nil {
			return err
		}
		head, err = tx.LastChangeSeq()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return cs, head
}

// TestLateCommitNeverSlipsPastACursor holds a writer open after it numbered its
// change, starts a second writer on another instance, and reads in between: the
// second writer must wait for the first (it cannot take seq N+1 and commit while N is
// in flight), and a reader sees neither, then both, in order.
func TestLateCommitNeverSlipsPastACursor(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	a, b := pgtest.OpenDSN(t, dsn), pgtest.OpenDSN(t, dsn)

	numbered := make(chan uint64, 1)
	release := make(chan struct{})
	errs := make(chan error, 2)
	go func() {
		errs <- a.Update(t.Context(), func(tx platform.Tx) error {
			seq, err := appendOne(tx, "first")
			if err != nil {
				return err
			}
			select {
			case numbered <- seq:
			default: // a re-run: already reported
			}
			<-release
			return nil
		})
	}()
	seqA := <-numbered

	bDone := make(chan uint64, 1)
	go func() {
		var seq uint64
		err := b.Update(t.Context(), func(tx platform.Tx) error {
			var err error
			seq, err = appendOne(tx, "second")
			return err
		})
		errs <- err
		bDone <- seq
	}()

	// While the first writer is open, the second cannot commit, and readers see
	// nothing past the old head.
	time.Sleep(300 * time.Millisecond)
	select {
	case seq := <-bDone:
		t.Fatalf("the second writer committed seq %d while seq %d was still in flight", seq, seqA)
	default:
	}
	if cs, head := changesSince(t, b, 0); len(cs) != 0 || head != 0 {
		t.Fatalf("a reader sees %d changes and head %d before any commit", len(cs), head)
	}

	close(release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	seqB := <-bDone
	if seqA != 1 || seqB != 2 {
		t.Fatalf("seqs %d then %d, want 1 then 2", seqA, seqB)
	}
	cs, head := changesSince(t, a, 0)
	if len(cs) != 2 || cs[0].Key != "first" || cs[1].Key != "second" || head != 2 {
		t.Fatalf("log after both commits: %+v head %d", cs, head)
	}
}

// TestReadersNeverSeeAGap runs writers on three instances, some of them failing, while
// readers follow the log with a cursor as tills do: every page a reader gets must
// continue its cursor without a hole, and in the end every committed change was seen
// exactly once by each reader.
func TestReadersNeverSeeAGap(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	stores := []platform.Storage{pgtest.OpenDSN(t, dsn), pgtest.OpenDSN(t, dsn), pgtest.OpenDSN(t, dsn)}
	const writers, perWriter = 6, 25

	var committed sync.Map // key → true
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			st := stores[w%len(stores)]
			for i := range perWriter {
				key := fmt.Sprintf("w%d-%d", w, i)
				fail := i%7 == 3
				err := st.Update(t.Context(), func(tx platform.Tx) error {
					for j := range 1 + i%3 {
						if _, err := appendOne(tx, fmt.Sprintf("%s/%d", key, j)); err != nil {
							return err
						}
					}
					if fail {
						return fmt.Errorf("roll back %s", key)
					}
					return nil
				})
				switch {
				case fail && err == nil:
					t.Errorf("%s: a failing update committed", key)
				case !fail && err != nil:
					t.Errorf("%s: %v", key, err)
				case !fail:
					for j := range 1 + i%3 {
						committed.Store(fmt.Sprintf("%s/%d", key, j), true)
					}
				}
			}
		})
	}
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()

	type reader struct {
		cursor uint64
		seen   map[string]int
	}
	readers := make([]*reader, 3)
	var rg sync.WaitGroup
	for r := range readers {
		rd := &reader{seen: map[string]int{}}
		readers[r] = rd
		rg.Go(func() {
			st := stores[r%len(stores)]
			for last := false; !last; {
				select {
				case <-writersDone:
					last = true // one more pass after the writers finished
				default:
				}
				err := st.View(t.Context(), func(tx platform.ReadTx) error {
					page, err := tx.ChangesSince(rd.cursor, 50)
					if err != nil {
						return err
					}
					for _, c := range page {
						if c.Seq != rd.cursor+1 {
							return fmt.Errorf("reader %d at cursor %d got seq %d: a gap", r, rd.cursor, c.Seq)
						}
						rd.cursor = c.Seq
						rd.seen[c.Key]++
					}
					if len(page) == 50 {
						last = false // not drained yet
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	rg.Wait()

	want := 0
	committed.Range(func(any, any) bool { want++; return true })
	for r, rd := range readers {
		if len(rd.seen) != want || int(rd.cursor) != want {
			t.Errorf("reader %d saw %d distinct changes up to seq %d; %d were committed", r, len(rd.seen), rd.cursor, want)
		}
		for k, n := range rd.seen {
			if n != 1 {
				t.Errorf("reader %d saw %s %d times", r, k, n)
			}
			if _, ok := committed.Load(k); !ok {
				t.Errorf("reader %d saw %s, which was rolled back", r, k)
			}
		}
	}
}
