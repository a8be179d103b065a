package main

// measurements lists every figure, in the order they run: references first, so that
// ratios can be computed against them.
func measurements() []measurement {
	return []measurement{
		{key: "raw", desc: "raw fdatasync'd appends per second", run: measureRawAppends},
		{key: "sqlite", desc: "SQLite WAL synchronous=FULL inserts per second", run: measureSQLite},
		{key: "pgbench", desc: "PostgreSQL pgbench simple-update TPS, the reference of the postgres rows", run: measurePgbench},
		{key: "agent", desc: "till agent: durable offline redemptions over the POS API, 1 and 16 lanes, and latency", run: measureAgent},
		{key: "platform", desc: "platform: online redemptions and journal ingest with reconciliation over HTTP", run: measurePlatform},
		{key: "postgres", desc: "platform on PostgreSQL: online redemptions (ratio to pgbench) and journal ingest with reconciliation over HTTP", run: measurePostgresPlatform},
		{key: "codegen", desc: "platform: time and peak memory to generate 30M unique codes", run: measureCodegen},
		{key: "catalog", desc: "till catalog: cold bootstrap of a 1M-coupon store, bytes per coupon, peak RSS, a 10,000-change delta", run: measureCatalog},
		{key: "storm", desc: "reconnect storm: 1,000 tills with 100 pending redemptions each", run: measureStorm},
	}
}
