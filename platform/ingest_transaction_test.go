package platform_test

import (
	"testing"

	"github.com/tillkeep/tillkeep"
)

// A till that dies after the platform accepted a redemption online, before it
// journaled the answer, may journal the POS's retry under a new redemption id. The
// upload is the same POS transaction (same till, transaction, code, bill, customer):
// the platform must hold it once, open no case, and map a reversal of the new id to it.
func TestIngestTakesARetriedTransactionForTheOnlineRedemption(t *testing.T) {
	e := newEnv(t)
	e.basic()
	t1 := e.enroll("S001", "T01")
	online := e.must(201, t1.redeem("K1", "", 12000), "online redemption")
	onlineID := online.str("redemption_id")

	retry := t1.entry("K1", "", 12000, e.clock.Now())
	retry.TransactionID = "tx-T01-1" // the transaction t1.redeem sent
	ack := t1.upload(retry)
	if ack.AckedSeq != retry.Seq || len(ack.Results) != 1 {
		t.Fatalf("ack %+v", ack)
	}
	if r := ack.Results[0]; !r.Duplicate || r.Status != tillkeep.RedemptionAccepted || r.ConflictKind != "" {
		t.Fatalf("result %+v, want a duplicate of the accepted online redemption", r)
	}
	c := e.coupon("K1")
	if len(c.Redemptions) != 1 || c.Redemptions[0].ID != onlineID {
		t.Fatalf("coupon K1 redemptions %+v, want only %s", c.Redemptions, onlineID)
	}
	if got := e.conflicts(""); len(got) != 0 {
		t.Fatalf("conflicts %v, want none", got)
	}

	// The POS reverses the redemption it was answered (the new id).
	rev := t1.reversal(retry.RedemptionID, e.clock.Now())
	rev.TransactionID, rev.Code = retry.TransactionID, retry.Code
	ack = t1.upload(rev)
	if r := ack.Results[0]; r.Status != tillkeep.RedemptionReversed {
		t.Fatalf("reversal result %+v, want reversed", r)
	}
	if r := e.redemption(onlineID); r.Status != tillkeep.RedemptionReversed {
		t.Fatalf("online redemption after the reversal: %s", r.Status)
	}
}
