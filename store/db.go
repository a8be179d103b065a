package store

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/store/internal/ledgercore"
)

// Compile-time proof that *DB is a complete ledger.
var (
	_ tillkeep.TillLedger  = (*DB)(nil)
	_ tillkeep.TillJournal = (*DB)(nil)
	_ tillkeep.TillCatalog = (*DB)(nil)
	_ Ledger               = (*DB)(nil)
)

// DefaultTimeout is how long Open waits for the file lock.
const DefaultTimeout = time.Second

// FileName is the ledger's file name inside the agent's data directory.
const FileName = "ledger.db"

// Options configure Open.
type Options struct {
	// Timeout is how long to wait for another process to release the file (default 1s).
	Timeout time.Duration
	// Logger receives the ledger's few log lines (open, upgrade, recovery). Nil: discard.
	Logger *slog.Logger
	// StoreID and TillID identify the till. On a new file they are recorded; an existing
	// file of another store or till is refused (ErrWrongTill), because its journal would
	// be uploaded under the wrong name. Empty: not checked (care commands).
	StoreID string
	TillID  string
}

// DB is the till's ledger on bbolt. It is safe for concurrent use.
type DB struct {
	bolt *bolt.DB
	path string
	log  *slog.Logger
	id   ledgercore.Identity

	// The committer goroutine (commit.go) owns every Record and Reverse transaction.
	queue    chan *writeRequest
	stopping chan struct{}
	stopped  chan struct{}
	commits  atomic.Uint64 // committed batches, for tests and stats
	// batchStarted, when set (tests only), is told the size of each batch before
	// its transaction begins.
	batchStarted func(n int)

	// offers caches decoded offers for committer transactions (offercache.go).
	offers offerCache

	// catalogMu serialises catalog writers: a snapshot is staged over several
	// transactions and no delta may slip in between.
	catalogMu sync.Mutex

	closeOnce sync.Once
	closeErr  error
}

// Open opens (or creates) the ledger at path. The parent directory is created with mode
// 0700 and the file with 0600. If another process holds the file, Open fails after
// opts.Timeout with an error wrapping ErrLocked that says "another tillkeep agent is
// using <dir>". A file of an older schema is backed up next to itself
// (<path>.bak-v<old>-<UTC timestamp>) and upgraded; a newer one is refused
// (ErrSchemaTooNew).
func Open(path string, opts Options) (*DB, error) {
	return open(path, opts, currentSchema)
}

func open(path string, opts Options, plan schemaPlan) (*DB, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create ledger directory %s: %w", dir, err)
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: opts.Timeout,
		// The freelist is rebuilt at open instead of being written at every commit:
		// commits write fewer pages, which is what a lane waits for.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open ledger %s: another tillkeep agent is using %s: %w", path, dir, ErrLocked)
		}
		return nil, fmt.Errorf("open ledger %s: %w", path, err)
	}
	if err := restrictMode(path); err != nil {
		_ = bdb.Close()
		return nil, err
	}
	db := &DB{
		bolt:     bdb,
		path:     path,
		log:      log.With("ledger", path),
		queue:    make(chan *writeRequest, 4*maxBatch),
		stopping: make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	if err := db.prepare(plan, ledgercore.Identity{StoreID: opts.StoreID, TillID: opts.TillID}); err != nil {
		_ = bdb.Close()
		return nil, fmt.Errorf("open ledger %s: %w", path, err)
	}
	go db.commitLoop()
	return db, nil
}

// restrictMode tightens a file that was created or copied with a wider mode: the
// ledger holds customer ids.
func restrictMode(path string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat ledger %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return fmt.Errorf("restrict ledger %s to mode 0600: %w", path, err)
		}
	}
	return nil
}

// prepare initialises a new file, upgrades an old one, checks the identity and clears
// what a crash may have left half-done.
func (db *DB) prepare(plan schemaPlan, want ledgercore.Identity) error {
	version, fresh, err := db.schemaVersion()
	if err != nil {
		return err
	}
	switch {
	case fresh:
		if err := db.bolt.Update(func(tx *bolt.Tx) error { return initSchema(tx, plan.current) }); err != nil {
			return fmt.Errorf("initialise schema: %w", err)
		}
		db.log.Info("created ledger", "schema_version", plan.current)
	case version > plan.current:
		return fmt.Errorf("file has schema version %d, this tillkeep knows up to %d: %w", version, plan.current, ErrSchemaTooNew)
	case version < plan.current:
		if err := db.upgrade(plan, version); err != nil {
			return err
		}
	}
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		if err := claimIdentity(tx, want); err != nil {
			return err
		}
		return dropStagedCatalogs(tx, db.log)
	}); err != nil {
		return err
	}
	return db.bolt.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		db.id = ledgercore.Identity{StoreID: string(meta.Get(metaStoreID)), TillID: string(meta.Get(metaTillID))}
		return nil
	})
}

// schemaVersion reads the version key; fresh reports an empty file.
func (db *DB) schemaVersion() (version uint64, fresh bool, err error) {
	err = db.bolt.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			empty := true
			_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
			if !empty {
				return fmt.Errorf("the file has buckets but no meta bucket: %w", ErrNotLedger)
			}
			fresh = true
			return nil
		}
		v := meta.Get(metaSchema)
		if len(v) != 8 {
			return fmt.Errorf("the meta bucket has no schema version: %w", ErrNotLedger)
		}
		version = getU64(meta, metaSchema)
		return nil
	})
	return version, fresh, err
}

func initSchema(tx *bolt.Tx, version uint64) error {
	for _, name := range topBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	if _, err := meta.CreateBucketIfNotExists(bucketCursor); err != nil {
		return fmt.Errorf("create bucket %s: %w", bucketCursor, err)
	}
	return putU64(meta, metaSchema, version)
}

func claimIdentity(tx *bolt.Tx, want ledgercore.Identity) error {
	meta := tx.Bucket(bucketMeta)
	for _, f := range []struct {
		key        []byte
		want, name string
	}{{metaStoreID, want.StoreID, "store"}, {metaTillID, want.TillID, "till"}} {
		if f.want == "" {
			continue
		}
		have := string(meta.Get(f.key))
		if have == "" {
			if err := meta.Put(f.key, []byte(f.want)); err != nil {
				return fmt.Errorf("record %s id: %w", f.name, err)
			}
			continue
		}
		if have != f.want {
			return fmt.Errorf("the file belongs to %s %s, the configuration says %s: %w", f.name, have, f.want, ErrWrongTill)
		}
	}
	return nil
}

// Close stops the committer (requests still queued fail with ErrClosed; a commit in
// progress finishes) and closes the file. It waits for open read transactions.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		close(db.stopping)
		<-db.stopped
		if err := db.bolt.Close(); err != nil {
			db.closeErr = fmt.Errorf("close ledger %s: %w", db.path, err)
		}
	})
	return db.closeErr
}

// Path returns the file's path.
func (db *DB) Path() string { return db.path }

// storageError turns a bbolt failure into a coded error: a full disk is CodeStorageFull
// (the POS should hear 507, not 500), a closed database is ErrClosed.
func storageError(op string, err error) error {
	if err == nil {
		return nil
	}
	var coded *tillkeep.Error
	if errors.As(err, &coded) {
		return err
	}
	switch {
	case errors.Is(err, bolterrors.ErrDatabaseNotOpen), errors.Is(err, bolterrors.ErrTxClosed):
		return ErrClosed
	case isDiskFull(err):
		return tillkeep.Wrap(tillkeep.CodeStorageFull, err, "The till's disk is full.")
	}
	return tillkeep.Wrap(tillkeep.CodeInternal, fmt.Errorf("%s: %w", op, err), "The till's ledger failed.")
}

// view runs a short read transaction.
func (db *DB) view(op string, fn func(tx *bolt.Tx) error) error {
	if db.isClosed() {
		return ErrClosed
	}
	return storageError(op, db.bolt.View(fn))
}

// update runs a write transaction outside the committer, for rare writes (sync state,
// catalog, care). It shares bbolt's single writer lock with the committer.
func (db *DB) update(op string, fn func(tx *bolt.Tx) error) error {
	if db.isClosed() {
		return ErrClosed
	}
	return storageError(op, db.bolt.Update(func(tx *bolt.Tx) error {
		// Any of these writes may change the catalog. Invalidating here, under the
		// writer lock, means no committer transaction can see the change with stale
		// offers, whether this transaction commits or not.
		db.offers.invalidate()
		return fn(tx)
	}))
}

func (db *DB) isClosed() bool {
	select {
	case <-db.stopping:
		return true
	default:
		return false
	}
}
