-- tillkeep platform schema, version 1.
--
-- Records are JSON (jsonb) under their natural key, as in the embedded bbolt backend,
-- so that a field added to a domain type needs no migration. The columns beside the
-- JSON are the keys that indexes, constraints and row locks work on; the storage code
-- writes them together with the JSON in the same statement.
--
-- Every key column is COLLATE "C": lists are ordered by the bytes of their keys, the
-- same order bbolt gives, whatever the database's default collation is.

-- tillkeep_expect_one fails the statement, and with it the transaction, unless
-- exactly one row was changed. The storage sends an update of a row it holds locked
-- in the same round trip as the COMMIT; the check must therefore happen here, where it
-- can stop the commit, not in the client after it.
CREATE FUNCTION tillkeep_expect_one(changed bigint, what text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF changed <> 1 THEN
        RAISE EXCEPTION '%: % rows changed, expected 1', what, changed
            USING ERRCODE = 'cardinality_violation';
    END IF;
END
$$;

CREATE TABLE meta (
    key   text COLLATE "C" PRIMARY KEY,
    value bytea NOT NULL
);

CREATE TABLE stores (
    id   text COLLATE "C" PRIMARY KEY,
    data jsonb NOT NULL
);

CREATE TABLE customers (
    id   text COLLATE "C" PRIMARY KEY,
    data jsonb NOT NULL
);

CREATE TABLE offers (
    id   text COLLATE "C" PRIMARY KEY,
    data jsonb NOT NULL
);

-- A coupon never changes offer; status and customer_id follow the JSON.
CREATE TABLE coupons (
    code        text COLLATE "C" PRIMARY KEY,
    offer_id    text COLLATE "C" NOT NULL,
    status      text COLLATE "C" NOT NULL,
    customer_id text COLLATE "C" NOT NULL DEFAULT '',
    data        jsonb NOT NULL
);
CREATE INDEX coupons_by_offer ON coupons (offer_id, code);
-- The pool issuance draws from.
CREATE INDEX coupons_unissued ON coupons (offer_id, code) WHERE status = 'active' AND customer_id = '';
CREATE INDEX coupons_by_customer ON coupons (customer_id, offer_id, code) WHERE customer_id <> '';

-- The primary key is the platform's deduplication: a redemption id is recorded once,
-- forever, whichever instance receives it and however often a till sends it.
CREATE TABLE redemptions (
    id             text COLLATE "C" PRIMARY KEY,
    -- recorded orders redemptions by insertion, for "the first redemption recorded
    -- under a POS transaction".
    recorded       bigint GENERATED ALWAYS AS IDENTITY,
    code           text COLLATE "C" NOT NULL,
    offer_id       text COLLATE "C" NOT NULL,
    store_id       text COLLATE "C" NOT NULL,
    till_id        text COLLATE "C" NOT NULL,
    transaction_id text COLLATE "C" NOT NULL,
    mode           text COLLATE "C" NOT NULL,
    status         text COLLATE "C" NOT NULL,
    -- Unix nanoseconds of the event time: timestamptz keeps only microseconds, and
    -- paging must order exactly as the JSON's time does.
    event_ns       bigint NOT NULL,
    data           jsonb NOT NULL
);
CREATE INDEX redemptions_by_coupon ON redemptions (code, id);
CREATE INDEX redemptions_by_transaction ON redemptions (store_id, till_id, transaction_id, recorded) WHERE transaction_id <> '';
CREATE INDEX redemptions_by_time ON redemptions (event_ns, id);
CREATE INDEX redemptions_by_till_time ON redemptions (store_id, till_id, event_ns, id);
CREATE INDEX redemptions_by_offer_time ON redemptions (offer_id, event_ns, id);

-- Limit rows. They are updated on every redemption of their scope: a low fillfactor
-- leaves room on the page for HOT updates, which touch no index.
CREATE TABLE offer_usage (
    offer_id text COLLATE "C" PRIMARY KEY,
    data     jsonb NOT NULL
) WITH (fillfactor = 50);

CREATE TABLE customer_usage (
    customer_id text COLLATE "C" NOT NULL,
    offer_id    text COLLATE "C" NOT NULL,
    data        jsonb NOT NULL,
    PRIMARY KEY (customer_id, offer_id)
) WITH (fillfactor = 70);

-- acked_seq is the till's acknowledged journal sequence. The storage moves it only
-- with UPDATE … WHERE acked_seq = <the value it read under the row lock>, and the
-- trigger below refuses any statement that would move it back: a journal entry that
-- was acknowledged stays acknowledged, whatever a buggy or stale writer does.
CREATE TABLE tills (
    store_id   text COLLATE "C" NOT NULL,
    till_id    text COLLATE "C" NOT NULL,
    token_hash text COLLATE "C" NOT NULL DEFAULT '',
    acked_seq  bigint NOT NULL DEFAULT 0 CHECK (acked_seq >= 0),
    data       jsonb NOT NULL,
    PRIMARY KEY (store_id, till_id)
) WITH (fillfactor = 70);
CREATE UNIQUE INDEX tills_by_token ON tills (token_hash) WHERE token_hash <> '';

CREATE FUNCTION tills_acked_seq_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.acked_seq < OLD.acked_seq THEN
        RAISE EXCEPTION 'acked_seq of till %/% cannot move back from % to %',
            OLD.store_id, OLD.till_id, OLD.acked_seq, NEW.acked_seq
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER tills_acked_seq_forward BEFORE UPDATE OF acked_seq ON tills
    FOR EACH ROW EXECUTE FUNCTION tills_acked_seq_forward();

-- At most one open case per (code, kind): a conflict is flagged exactly once.
CREATE TABLE conflicts (
    id     text COLLATE "C" PRIMARY KEY,
    code   text COLLATE "C" NOT NULL,
    kind   text COLLATE "C" NOT NULL,
    status text COLLATE "C" NOT NULL,
    data   jsonb NOT NULL
);
CREATE UNIQUE INDEX conflicts_open ON conflicts (code, kind) WHERE status = 'open';
CREATE INDEX conflicts_by_status ON conflicts (status, id);

-- The change log. change_head holds the newest sequence; a writer locks it (FOR
-- UPDATE) to number its entries and keeps the lock until it commits, so writers commit
-- in sequence order and a reader never sees seq N+1 before N. It only grows:
-- compaction deletes old entries and never renumbers.
-- The primary key and CHECK (id) allow one row only.
CREATE TABLE change_head (
    id       boolean PRIMARY KEY DEFAULT true CHECK (id),
    last_seq bigint NOT NULL CHECK (last_seq >= 0)
) WITH (fillfactor = 10);
INSERT INTO change_head (id, last_seq) VALUES (true, 0);

CREATE FUNCTION change_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.last_seq < OLD.last_seq THEN
        RAISE EXCEPTION 'the change log cannot move back from seq % to %', OLD.last_seq, NEW.last_seq
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER change_head_forward BEFORE UPDATE ON change_head
    FOR EACH ROW EXECUTE FUNCTION change_head_forward();

CREATE TABLE changes (
    seq  bigint PRIMARY KEY CHECK (seq > 0),
    data jsonb NOT NULL
);

CREATE TABLE anomalies (
    id   text COLLATE "C" PRIMARY KEY,
    data jsonb NOT NULL
);

CREATE TABLE report_parts (
    id   text COLLATE "C" NOT NULL,
    part integer NOT NULL CHECK (part >= 0),
    data bytea NOT NULL,
    PRIMARY KEY (id, part)
);
