package agent

import (
	"container/list"
	"sync"
)

// maxRememberedAttempts bounds the memory of inconclusive attempts. A till sees a few
// thousand transactions a day; an outage long enough to overflow this has long since
// made the first entries' online calls irrelevant.
const maxRememberedAttempts = 4096

// attemptMemory remembers, per transaction_id, the redemption id of an attempt whose
// online call may have landed on the platform but which the till did not record (the
// platform did not answer and the offline path refused, or the platform accepted and
// the journal write failed). When the POS retries the same request, the Redeemer
// reuses that id, so the platform sees the same redemption again instead of a second
// one — the bug that turned 8 orders into 19 charges at a card vendor.
//
// It is memory only: after a restart a retry gets a new id, which the platform's own
// limit check then judges like any other attempt.
type attemptMemory struct {
	mu    sync.Mutex
	byTx  map[string]*list.Element
	order *list.List // of rememberedAttempt, oldest first
}

type rememberedAttempt struct {
	transactionID string
	requestHash   string
	redemptionID  string
}

func newAttemptMemory() *attemptMemory {
	return &attemptMemory{byTx: make(map[string]*list.Element), order: list.New()}
}

// recall returns the remembered redemption id of transactionID, if the request is
// the same; a different body is a different attempt and gets a fresh id.
func (m *attemptMemory) recall(transactionID, requestHash string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.byTx[transactionID]
	if !ok {
		return "", false
	}
	a := e.Value.(rememberedAttempt)
	if a.requestHash != requestHash {
		return "", false
	}
	return a.redemptionID, true
}

func (m *attemptMemory) remember(transactionID, requestHash, redemptionID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := rememberedAttempt{transactionID: transactionID, requestHash: requestHash, redemptionID: redemptionID}
	if e, ok := m.byTx[transactionID]; ok {
		e.Value = a
		m.order.MoveToBack(e)
		return
	}
	m.byTx[transactionID] = m.order.PushBack(a)
	for m.order.Len() > maxRememberedAttempts {
		oldest := m.order.Front()
		m.order.Remove(oldest)
		delete(m.byTx, oldest.Value.(rememberedAttempt).transactionID)
	}
}

func (m *attemptMemory) forget(transactionID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.byTx[transactionID]; ok {
		m.order.Remove(e)
		delete(m.byTx, transactionID)
	}
}
