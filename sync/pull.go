package sync

import "context"

// Pull brings the till's catalog up to date: a snapshot when it has none or the platform
// asks for a re-fetch, deltas otherwise.
func (s *Syncer) Pull(ctx context.Context) error {
	// Filled in with the catalog feed.
	return nil
}
