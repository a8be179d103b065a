package boltstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/tillkeep/tillkeep/platform"
)

// FileName is the name of the database file inside the platform's data_dir.
const FileName = "platform.db"

// SchemaVersion is the layout this code reads and writes. Older files are upgraded on
// open (after a backup copy); newer ones are refused.
const SchemaVersion = 1

// lockTimeout bounds the wait for bbolt's file lock: a second platform on the same
// data_dir must fail fast with a clear message rather than hang.
const lockTimeout = 2 * time.Second

// maxBatch bounds how many concurrent Updates share one transaction.
const maxBatch = 128

// Meta keys owned by this package.
const (
	metaSchemaVersion = "schema_version"
	metaEpoch         = "epoch"
)

var _ platform.Storage = (*Store)(nil)

// Store is a platform.Storage on one bbolt file.
type Store struct {
	db    *bolt.DB
	path  string
	epoch string
	log   *slog.Logger

	mu    sync.Mutex
	queue []*call
	busy  bool
}

// call is one Update waiting for a group commit.
type call struct {
	fn   func(platform.Tx) error
	done chan error
	lead chan struct{}
}

// Options tune Open; the zero value is right for production.
type Options struct {
	// Logger receives open/upgrade messages (nil: discard).
	Logger *slog.Logger
}

// OpenDir opens (creating if needed) <dir>/platform.db, creating dir with mode 0700.
func OpenDir(dir string, opts Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create platform data_dir %s: %w", dir, err)
	}
	return Open(filepath.Join(dir, FileName), opts)
}

// Open opens (creating if needed) the database file at path with mode 0600.
func Open(path string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         lockTimeout,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: 64 << 20,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open platform database %s: the file is locked: is another tillkeep platform using DATA_DIR %s?", path, filepath.Dir(path))
	}
	if err != nil {
		return nil, fmt.Errorf("open platform database %s: %w", path, err)
	}
	// A file created by an older umask or copied in by hand must not stay readable by
	// others: it holds till token hashes and customer ids.
	if err := os.Chmod(path, 0o600); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("restrict permissions of %s: %w", path, err)
	}
	s := &Store{db: db, path: path, log: log}
	if err := s.init(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open platform database %s: %w", path, err)
	}
	return s, nil
}

// init creates the buckets, checks or upgrades the schema version and loads the epoch.
func (s *Store) init() error {
	var version int
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		if b == nil {
			return nil
		}
		if v := b.Get([]byte(metaSchemaVersion)); v != nil {
			n, err := strconv.Atoi(string(v))
			if err != nil {
				return fmt.Errorf("schema version %q is not a number", v)
			}
			version = n
		}
		return nil
	})
	if err != nil {
		return err
	}
	if version > SchemaVersion {
		return fmt.Errorf("the database has schema version %d, newer than this tillkeep understands (%d): upgrade tillkeep", version, SchemaVersion)
	}
	if version != 0 && version < SchemaVersion {
		if err := s.upgrade(version); err != nil {
			return err
		}
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if meta.Get([]byte(metaSchemaVersion)) == nil {
			if err := meta.Put([]byte(metaSchemaVersion), []byte(strconv.Itoa(SchemaVersion))); err != nil {
				return err
			}
		}
		if e := meta.Get([]byte(metaEpoch)); e != nil {
			s.epoch = string(e)
			return nil
		}
		var raw [16]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return fmt.Errorf("make epoch: %w", err)
		}
		s.epoch = hex.EncodeToString(raw[:])
		s.log.Info("created platform database", "path", s.path, "epoch", s.epoch)
		return meta.Put([]byte(metaEpoch), []byte(s.epoch))
	})
}

// upgrades[n] turns schema version n into n+1. There are none yet: version 1 is the
// first layout. The mechanism is here so that the first change of layout only adds a
// function.
var upgrades = map[int]func(tx *bolt.Tx) error{}

// upgrade backs the file up next to itself, then applies the upgrades from version
// from to SchemaVersion in one transaction.
func (s *Store) upgrade(from int) error {
	backup := fmt.Sprintf("%s.v%d.bak", s.path, from)
	err := s.db.View(func(tx *bolt.Tx) error {
		f, err := os.OpenFile(backup, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if _, err := tx.WriteTo(f); err != nil {
			_ = f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			_ = f.Close()
			return err
		}
		return f.Close()
	})
	if err != nil {
		return fmt.Errorf("back up database to %s before upgrading schema %d: %w", backup, from, err)
	}
	s.log.Info("upgrading platform database schema", "from", from, "to", SchemaVersion, "backup", backup)
	return s.db.Update(func(tx *bolt.Tx) error {
		for v := from; v < SchemaVersion; v++ {
			up, ok := upgrades[v]
			if !ok {
				return fmt.Errorf("no upgrade from schema version %d", v)
			}
			if err := up(tx); err != nil {
				return fmt.Errorf("upgrade schema %d to %d: %w", v, v+1, err)
			}
		}
		return tx.Bucket(bucketMeta).Put([]byte(metaSchemaVersion), []byte(strconv.Itoa(SchemaVersion)))
	})
}

// Epoch implements platform.Storage.
func (s *Store) Epoch() string { return s.epoch }

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close implements platform.Storage.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close platform database %s: %w", s.path, err)
	}
	return nil
}

// Check verifies the file's page structure (bbolt's consistency check).
func (s *Store) Check() error {
	return s.db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}

// View implements platform.Storage.
func (s *Store) View(ctx context.Context, fn func(platform.ReadTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(func(tx *bolt.Tx) error {
		return fn(newTx(tx))
	})
}

// Update implements platform.Storage with group commit. The first caller to find the
// store idle becomes the leader: it takes every queued call (up to maxBatch), runs
// them one after the other in one bbolt transaction and commits once; callers that
// arrive meanwhile queue up and the next of them leads the following batch. A lone
// caller never waits for a timer, unlike bbolt's Batch.
//
// When one function of a batch fails, the transaction is rolled back, the failing
// function gets its error, and the others run again without it; that is why
// platform.Storage allows fn to run more than once.
func (s *Store) Update(ctx context.Context, fn func(platform.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := &call{fn: fn, done: make(chan error, 1), lead: make(chan struct{}, 1)}
	s.mu.Lock()
	s.queue = append(s.queue, c)
	if !s.busy {
		s.busy = true
		c.lead <- struct{}{}
	}
	s.mu.Unlock()

	select {
	case err := <-c.done:
		return err
	case <-c.lead:
	}

	s.mu.Lock()
	n := min(len(s.queue), maxBatch)
	batch := make([]*call, n)
	copy(batch, s.queue)
	s.queue = append(s.queue[:0:0], s.queue[n:]...)
	s.mu.Unlock()

	s.runBatch(batch)

	s.mu.Lock()
	if len(s.queue) > 0 {
		s.queue[0].lead <- struct{}{}
	} else {
		s.busy = false
	}
	s.mu.Unlock()
	return <-c.done
}

// runBatch commits batch, delivering each call's result on its done channel.
func (s *Store) runBatch(batch []*call) {
	for len(batch) > 0 {
		failed := -1
		var failErr error
		err := s.db.Update(func(tx *bolt.Tx) error {
			t := newTx(tx)
			for i, c := range batch {
				if err := runGuarded(c.fn, t); err != nil {
					failed, failErr = i, err
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, c := range batch {
				c.done <- err
			}
			return
		}
		bad := batch[failed]
		batch = append(batch[:failed:failed], batch[failed+1:]...)
		if len(batch) == 0 {
			bad.done <- failErr
			return
		}
		// The failure may have depended on what earlier members wrote, so the failing
		// function runs again alone and reports its own outcome.
		bad.done <- s.db.Update(func(tx *bolt.Tx) error { return runGuarded(bad.fn, newTx(tx)) })
	}
}

// runGuarded runs fn, turning a panic into an error: a panicking function must not
// leave the other members of its batch waiting forever.
func runGuarded(fn func(platform.Tx) error, t *txn) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("storage update panicked: %v", v)
		}
	}()
	return fn(t)
}
