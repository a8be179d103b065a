package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tillkeep/tillkeep/platform/pgstore"
	"github.com/tillkeep/tillkeep/sync/wire"
)

// The PostgreSQL rows (issue #7): pgbench's simple-update TPS as the reference, and
// the platform rows of platform.go — online redemptions and upload ingest with
// reconciliation — against a platform.Server on pgstore. Each measurement works in a
// database of its own, tillkeep_bench_<random>, created on the server and dropped
// when it ends, whether it succeeded or not. Without a reachable server or without
// pgbench, the rows are skipped with the reason.

// benchPGDSNEnv names the server to measure: a DSN of a maintenance database whose user
// may create databases. By default the local server is tried as root, then as postgres
// (trust authentication), as the tests do.
const benchPGDSNEnv = "TILLKEEP_BENCH_PG_DSN"

var defaultBenchPGDSNs = []string{
	"postgres://root@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=3",
	"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=3",
}

// pgbenchKey is the pgbench reference row, by the results key main sets.
const pgbenchKey = "postgres/pgbench simple-update TPS"

const (
	pgbenchScale   = 10
	pgbenchClients = 16
	pgbenchThreads = 2
	// benchDatabasePrefix names the throwaway databases; one older than
	// staleBenchDatabase with nobody connected was left by a bench that was killed.
	benchDatabasePrefix = "tillkeep_bench_"
	staleBenchDatabase  = time.Hour
)

// benchPGAdmin returns the maintenance DSN of the server to measure, or why there is
// none.
func benchPGAdmin(ctx context.Context) (string, error) {
	candidates := defaultBenchPGDSNs
	if v := os.Getenv(benchPGDSNEnv); v != "" {
		candidates = []string{v}
	}
	var errs []error
	for _, dsn := range candidates {
		err := probeBenchPG(ctx, dsn)
		if err == nil {
			sweepBenchDatabases(ctx, dsn)
			return dsn, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", redactDSN(dsn), err))
	}
	return "", fmt.Errorf("PostgreSQL is not reachable (%w); start it (pg_isready -h 127.0.0.1) or set %s to a maintenance database DSN whose user may create databases",
		errors.Join(errs...), benchPGDSNEnv)
}

func probeBenchPG(ctx context.Context, dsn string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var canCreate bool
	if err := conn.QueryRow(ctx, "SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user").Scan(&canCreate); err != nil {
		return fmt.Errorf("read the user's role: %w", err)
	}
	if !canCreate {
		return errors.New("the user may not create databases")
	}
	return nil
}

// sweepBenchDatabases drops throwaway databases left by benches that were killed
// before they could drop their own. One that is young or has a connection may belong
// to a bench running now, and is kept. Failing to sweep is not failing to measure.
func sweepBenchDatabases(ctx context.Context, admin string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database d
		WHERE datname LIKE $1
		  AND (pg_stat_file('base/' || oid || '/PG_VERSION')).modification < now() - $2::interval
		  AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)`,
		strings.ReplaceAll(benchDatabasePrefix, "_", `\_`)+"%", staleBenchDatabase.String())
	if err != nil {
		return // pg_stat_file needs a superuser: leave them
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	for _, name := range names {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()); err == nil {
			stepf("postgres: dropped %s, left by a bench that was killed", name)
		}
	}
}

// benchDatabase is a throwaway database on the server under test.
type benchDatabase struct {
	admin, name string
	// dsn is the admin DSN pointed at this database.
	dsn string
	// server is "PostgreSQL <version> on host:port, fsync=…, synchronous_commit=…",
	// for notes: both the reference and the platform depend on these settings.
	server string
}

func createBenchDatabase(ctx context.Context, admin string) (*benchDatabase, error) {
	var raw [6]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	name := benchDatabasePrefix + hex.EncodeToString(raw[:])
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", benchPGDSNEnv, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, admin)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redactDSN(admin), err)
	}
	defer conn.Close(cctx)
	var version, fsync, syncCommit string
	if err := conn.QueryRow(cctx, "SELECT current_setting('server_version'), current_setting('fsync'), current_setting('synchronous_commit')").
		Scan(&version, &fsync, &syncCommit); err != nil {
		return nil, fmt.Errorf("read the server's settings: %w", err)
	}
	if _, err := conn.Exec(cctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	return &benchDatabase{
		admin: admin, name: name, dsn: withDatabaseName(admin, name),
		server: fmt.Sprintf("PostgreSQL %s on %s:%d, fsync=%s, synchronous_commit=%s", version, cfg.Host, cfg.Port, fsync, syncCommit),
	}, nil
}

// drop drops the database with any connection still open. It has its own deadline,
// not the run's context: it must also run after an interrupt.
func (d *benchDatabase) drop() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.admin)
	if err != nil {
		stepf("postgres: drop database %s: %v", d.name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{d.name}.Sanitize()+" WITH (FORCE)"); err != nil {
		stepf("postgres: drop database %s: %v", d.name, err)
	}
}

// withDatabaseName replaces the database of a URL or key=value DSN.
func withDatabaseName(dsn, to string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		head, query, _ := strings.Cut(dsn, "?")
		if i := strings.LastIndex(head, "/"); i > strings.Index(head, "//")+1 {
			head = head[:i]
		}
		out := head + "/" + to
		if query != "" {
			out += "?" + query
		}
		return out
	}
	// In a key=value DSN the last dbname wins.
	return dsn + " dbname=" + to
}

// redactDSN names the server a DSN points at, without its password, for messages.
func redactDSN(dsn string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	return fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// measurePgbench runs pgbench's built-in simple-update script against a fresh database
// at scale 10: the reference the platform's online redemptions on PostgreSQL are held
// against, measured on the same server in the same run.
func measurePgbench(ctx context.Context, e *env) ([]Row, error) {
	bin, err := exec.LookPath("pgbench")
	if err != nil {
		return nil, fmt.Errorf("pgbench is not installed (it comes with the PostgreSQL client tools, e.g. apt-get install postgresql-client): %w", err)
	}
	admin, err := benchPGAdmin(ctx)
	if err != nil {
		return nil, err
	}
	db, err := createBenchDatabase(ctx, admin)
	if err != nil {
		return nil, err
	}
	defer db.drop()

	conninfo, env, err := libpqConnection(db.dsn)
	if err != nil {
		return nil, err
	}
	began := time.Now()
	if _, err := runPgbench(ctx, bin, env, "-i", "-q", "-s", strconv.Itoa(pgbenchScale), conninfo); err != nil {
		return nil, fmt.Errorf("pgbench -i -s %d: %w", pgbenchScale, err)
	}
	stepf("postgres: pgbench tables at scale %d created in %s", pgbenchScale, time.Since(began).Round(time.Millisecond))

	secs := 15
	if e.quick {
		secs = 5
	}
	load := loadAverage()
	out, err := runPgbench(ctx, bin, env, "-b", "simple-update", "-c", strconv.Itoa(pgbenchClients), "-j", strconv.Itoa(pgbenchThreads),
		"-T", strconv.Itoa(secs), conninfo)
	if err != nil {
		return nil, fmt.Errorf("pgbench -b simple-update: %w", err)
	}
	res, err := parsePgbench(out)
	if err != nil {
		return nil, err
	}
	stepf("postgres: pgbench simple-update %.0f TPS (%d transactions in %d s)", res.tps, res.transactions, secs)
	return []Row{{
		Group: "postgres", Name: "pgbench simple-update TPS", Value: res.tps, Unit: "transactions/s", Target: "reference",
		Note: fmt.Sprintf("pgbench -b simple-update -c %d -j %d -T %d at scale %d (-i -s %d) in a throwaway database; %d transactions, %d failed, latency average %.2f ms; %s",
			pgbenchClients, pgbenchThreads, secs, pgbenchScale, pgbenchScale, res.transactions, res.failed, res.latencyMS, db.server) + loadNote(load),
	}}, nil
}

// libpqConnection turns a pgx DSN into what pgbench (libpq) takes: a key=value
// connection string without the password, which goes in PGPASSWORD so that it is not
// on a command line that ps shows. pgx-only parameters (pool_max_conns, …) are left
// out; libpq would refuse them.
func libpqConnection(dsn string) (conninfo string, env []string, err error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "", nil, fmt.Errorf("parse the bench database's DSN: %w", err)
	}
	quote := func(v string) string {
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
	}
	conninfo = fmt.Sprintf("host=%s port=%d user=%s dbname=%s", quote(cfg.Host), cfg.Port, quote(cfg.User), quote(cfg.Database))
	sslmode := "disable"
	if cfg.TLSConfig != nil {
		sslmode = "require"
	}
	env = append(os.Environ(), "PGSSLMODE="+sslmode, "PGCONNECT_TIMEOUT=10")
	if cfg.Password != "" {
		env = append(env, "PGPASSWORD="+cfg.Password)
	}
	return conninfo, env, nil
}

// runPgbench runs pgbench and returns what it printed; when it fails, the error ends
// with the last lines it wrote.
func runPgbench(ctx context.Context, bin string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%w: %s", err, lastLines(out.String(), 5))
	}
	return out.String(), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

type pgbenchResult struct {
	tps          float64
	transactions int64
	failed       int64
	latencyMS    float64
}

var (
	pgbenchTPS      = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)
	pgbenchTxns     = regexp.MustCompile(`(?m)^number of transactions actually processed: ([0-9]+)`)
	pgbenchFailed   = regexp.MustCompile(`(?m)^number of failed transactions: ([0-9]+)`)
	pgbenchLatency  = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
	errNoPgbenchTPS = errors.New(`pgbench printed no "tps = N (without initial connection time)" line`)
)

// parsePgbench reads pgbench's summary. Only the TPS line is required; the others
// (their wording differs between versions) only feed the note.
func parsePgbench(out string) (pgbenchResult, error) {
	var r pgbenchResult
	m := pgbenchTPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("%w: %s", errNoPgbenchTPS, lastLines(out, 5))
	}
	tps, err := strconv.ParseFloat(m[1], 64)
	if err != nil || tps <= 0 {
		return r, fmt.Errorf("pgbench reported tps %q", m[1])
	}
	r.tps = tps
	if m := pgbenchTxns.FindStringSubmatch(out); m != nil {
		r.transactions, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := pgbenchFailed.FindStringSubmatch(out); m != nil {
		r.failed, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := pgbenchLatency.FindStringSubmatch(out); m != nil {
		r.latencyMS, _ = strconv.ParseFloat(m[1], 64)
	}
	return r, nil
}

// pgbenchReference returns the pgbench TPS of this run; when the pgbench row did not
// run (-only), it is measured here, so that the ratio is never taken against a figure
// of another run or another server.
func pgbenchReference(ctx context.Context, e *env) (tps float64, measuredHere bool, err error) {
	if r := e.results[pgbenchKey]; r > 0 {
		return r, false, nil
	}
	rows, err := measurePgbench(ctx, e)
	if err != nil {
		return 0, false, fmt.Errorf("measure the pgbench reference: %w", err)
	}
	return rows[0].Value, true, nil
}

// measurePostgresPlatform is measurePlatform (platform.go) on a pgstore in a database
// of its own: the same offers, tills, load and checks, through the same helpers.
func measurePostgresPlatform(ctx context.Context, e *env) ([]Row, error) {
	run, warm := 5*time.Second, 500*time.Millisecond
	onlineCoupons, perTill := 40_000, 10_000
	if e.quick {
		run, warm, onlineCoupons, perTill = 1500*time.Millisecond, 200*time.Millisecond, 10_000, 2_000
	}
	// The reference first: pgbench must not run while this platform's database is busy.
	// Without it (no pgbench installed) the rows are still measured, and the online row
	// says why it has no ratio rather than taking one against another run's figure.
	ref, refHere, refErr := pgbenchReference(ctx, e)
	admin, err := benchPGAdmin(ctx)
	if err != nil {
		return nil, err
	}
	db, err := createBenchDatabase(ctx, admin)
	if err != nil {
		return nil, err
	}
	defer db.drop() // after p.close below: deferred calls run last-in first-out
	st, err := pgstore.Open(ctx, db.dsn, pgstore.Options{
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return nil, fmt.Errorf("open the platform's PostgreSQL store: %w", err)
	}
	p, err := startBenchPlatformOn(ctx, filepath.Join(e.dir, "pgplatform"), st)
	if err != nil {
		return nil, err
	}
	defer p.close()

	seeded, err := p.seedLoad(ctx, "postgres", onlineCoupons, perTill)
	if err != nil {
		return nil, err
	}
	client, tills, onlineCodes, ingestCodes, now := seeded.client, seeded.tills, seeded.onlineCodes, seeded.ingestCodes, seeded.now

	online := &onlineLoad{url: p.daemon.url + wire.PathRedemptions, client: client, tills: tills[:onlineCallers], codes: onlineCodes}
	if _, err := online.run(ctx, warm); err != nil {
		return nil, fmt.Errorf("online warm-up: %w", err)
	}
	retriesBefore := st.Retries()
	load := loadAverage()
	stop := profilePhase("postgres-online")
	on, err := online.run(ctx, run)
	stop()
	if err != nil {
		return nil, fmt.Errorf("online redemptions: %w", err)
	}
	stepf("postgres: %d online redemptions in %s", on.accepted, on.elapsed.Round(time.Millisecond))
	onlineRow := Row{Group: "postgres", Name: "online redemptions over HTTP", Value: on.rate(), Unit: "redemptions/s",
		Target: ">= 0.5x pgbench",
		Note: fmt.Sprintf("%d tills at once, each sequential POST %s; pgstore (pool of %d) in a throwaway database, each answer after its commit; p50 %.2f ms, p99 %.2f ms; %d serialization/deadlock retries; %s",
			onlineCallers, wire.PathRedemptions, pgstore.DefaultMaxConns, millis(latencyPercentile(on.sorted(), 50)), millis(latencyPercentile(on.sorted(), 99)),
			st.Retries()-retriesBefore, db.server)}
	switch {
	case refErr != nil:
		onlineRow.Note += fmt.Sprintf("; no ratio: %v", refErr)
	default:
		onlineRow.Reference = "pgbench simple-update TPS"
		onlineRow.Ratio = on.rate() / ref
		onlineRow.Pass = pass(onlineRow.Ratio >= 0.5)
		if refHere {
			onlineRow.Note += fmt.Sprintf("; reference %.0f TPS measured for this row (the pgbench row was not selected)", ref)
		}
	}
	if on.exhausted {
		onlineRow.Note += "; coupons ran out before the time was up"
	}
	onlineRow.Note += loadNote(load)

	retriesBefore = st.Retries()
	ingestRow, err := measureIngest(ctx, p, client, tills[onlineCallers:], ingestCodes, perTill, now)
	if err != nil {
		return []Row{onlineRow}, fmt.Errorf("ingest (the online row was measured: %.0f redemptions/s): %w", on.rate(), err)
	}
	// measureIngest judges against the bolt row's target; #7 sets none for PostgreSQL.
	ingestRow.Group = "postgres"
	ingestRow.Target = ""
	ingestRow.Pass = nil
	ingestRow.Note = fmt.Sprintf("no target in #7 (the bolt row's is >= 20000/s); %d serialization/deadlock retries; ", st.Retries()-retriesBefore) + ingestRow.Note
	return []Row{onlineRow, ingestRow}, nil
}
