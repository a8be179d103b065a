package agent

import (
	"context"
	"errors"
	"io/fs"
	"syscall"

	"github.com/tillkeep/tillkeep"
)

// storageFailure turns a ledger error into a coded error the POS can act on. The
// ledger's own codes (refusals, idempotency reuse, not found...) pass through; raw
// operating-system failures get a stable code instead of a 500, because a cashier
// needs to hear "the till's disk is full" rather than "internal error" — and never a
// 201 the till could not keep.
func storageFailure(op string, err error) error {
	var coded *tillkeep.Error
	if errors.As(err, &coded) && coded.Code != tillkeep.CodeInternal {
		return err
	}
	switch {
	case isDiskFull(err):
		return tillkeep.Wrap(tillkeep.CodeStorageFull, err,
			"the till's disk is full: nothing was recorded (%s); free space in the agent's data directory", op)
	case errors.Is(err, syscall.EROFS), errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EIO):
		return tillkeep.Wrap(tillkeep.CodeUnavailable, err,
			"the till's data directory cannot be written: nothing was recorded (%s)", op)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return tillkeep.Wrap(tillkeep.CodeUnavailable, err, "the request ended before the till could answer (%s)", op)
	}
	return tillkeep.Wrap(tillkeep.CodeInternal, err, "the till could not %s", op)
}
