package pgstore

import (
	"encoding/binary"
	"encoding/hex"
)

// Redemption paging cursors have the same form as the bbolt backend's: the hex of
// the event time (8 bytes, big-endian Unix nanoseconds with the sign bit flipped, so
// that bytes order as times do) followed by the redemption id. A cursor stays valid
// across instances, restarts and backends.

func makeCursor(eventNS int64, id string) string {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(id)), uint64(eventNS)^(1<<63))
	return hex.EncodeToString(append(b, id...))
}

func parseCursor(cursor string) (eventNS int64, id string, ok bool) {
	k, err := hex.DecodeString(cursor)
	if err != nil || len(k) < 8 {
		return 0, "", false
	}
	return int64(binary.BigEndian.Uint64(k[:8]) ^ (1 << 63)), string(k[8:]), true
}
