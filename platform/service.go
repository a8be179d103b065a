package platform

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tillkeep/tillkeep"
)

// DefaultMaxClockSkew is how far a till's clock may be off before its redemptions are
// flagged, when the configuration does not say.
const DefaultMaxClockSkew = 5 * time.Minute

// PrincipalAdmin is the ops principal recorded in audit trails while the ops API has
// one shared admin token.
const PrincipalAdmin = "admin"

// principalPlatform is the actor of what the platform does by itself.
const principalPlatform = "platform"

// Config configures a Service.
type Config struct {
	// EnrollToken is what tills present once to enroll ("": enrollment refused).
	EnrollToken string
	// AutoRevoke revokes a coupon as soon as a conflict is flagged on it.
	AutoRevoke bool
	// MaxClockSkew bounds a till's clock error before its redemptions are flagged
	// (0: DefaultMaxClockSkew).
	MaxClockSkew time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Logger receives the service's logs (nil: discard).
	Logger *slog.Logger
	// Metrics receives counters (nil: none).
	Metrics *Metrics
	// TempDir holds report spool files while a bulk operation runs ("": os.TempDir).
	TempDir string
}

// Service is the platform's business logic over a Storage. It is safe for concurrent
// use; all state lives in the Storage.
type Service struct {
	st   Storage
	cfg  Config
	log  *slog.Logger
	m    *Metrics
	locs sync.Map // time zone name → *time.Location
}

// NewService returns a Service over st.
func NewService(st Storage, cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxClockSkew <= 0 {
		cfg.MaxClockSkew = DefaultMaxClockSkew
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Service{st: st, cfg: cfg, log: log, m: cfg.Metrics}
}

// Storage returns the service's storage (for the catalog feed, which reads it).
func (s *Service) Storage() Storage { return s.st }

// Epoch is the storage's epoch.
func (s *Service) Epoch() string { return s.st.Epoch() }

// now is the service clock in UTC.
func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// location resolves a store's IANA time zone; "" is UTC. Zones are cached because
// loading one reads the zone database.
func (s *Service) location(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	if l, ok := s.locs.Load(name); ok {
		return l.(*time.Location), nil
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	s.locs.Store(name, l)
	return l, nil
}

// storeLocation is the zone of st, UTC when st is nil or its zone no longer loads
// (it was checked when the store was saved).
func (s *Service) storeLocation(st *tillkeep.Store) *time.Location {
	if st == nil {
		return time.UTC
	}
	l, err := s.location(st.Timezone)
	if err != nil {
		s.log.Warn("store time zone does not load; using UTC", "store", st.ID, "timezone", st.Timezone, "err", err)
		return time.UTC
	}
	return l
}

// newID returns a UUIDv7: unique, and sorting by creation time.
func newID() (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("make id: %w", err)
	}
	return id.String(), nil
}

// maxIDLen bounds store, till, customer and redemption ids.
const maxIDLen = 64

// checkID validates an id of a store, till, customer, transaction or redemption: 1 to
// 64 ASCII letters, digits or one of - _ . : @ +. Ids are storage keys, path segments
// and CSV fields, so separators, spaces and control characters are refused.
func checkID(field, id string) error {
	if id == "" {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "%s is required", field)
	}
	if len(id) > maxIDLen {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "%s is longer than %d characters", field, maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '_' || c == '.' || c == ':' || c == '@' || c == '+':
		default:
			return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "%s %q may hold only letters, digits and - _ . : @ +", field, id)
		}
	}
	return nil
}

// checkCode validates a coupon code (the root package's rule), naming it.
func checkCode(code string) error {
	if err := tillkeep.CheckCode(code); err != nil {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "code %.70q: %s", code, tillkeep.ErrorMessage(err))
	}
	return nil
}

// requestHash digests what makes two redemption requests "the same": the till, the
// POS transaction, the code, the customer and the bill. Times are left out because a
// retry may be stamped anew.
func requestHash(storeID, tillID, transactionID, code, customerID string, bill tillkeep.Money) string {
	h := sha256.New()
	for _, p := range []string{storeID, tillID, transactionID, code, customerID, strconv.FormatInt(bill.Amount, 10), bill.Currency} {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// hashToken is how till tokens are stored: hex SHA-256. Tokens are 256-bit random, so
// a fast unsalted hash is enough to make a stolen database useless for impersonation.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// notFound maps a storage ErrNotFound to a coded 404, other errors to themselves.
func notFound(err error, format string, args ...any) error {
	if errors.Is(err, ErrNotFound) {
		return tillkeep.Errorf(tillkeep.CodeNotFound, format, args...)
	}
	return err
}

// storageErr turns an infrastructure failure into a coded error so that the HTTP layer
// answers 503 for a cancelled or timed-out request and 500 otherwise, logging the cause.
func storageErr(err error, what string) error {
	if err == nil {
		return nil
	}
	var coded *tillkeep.Error
	if errors.As(err, &coded) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return tillkeep.Wrap(tillkeep.CodeUnavailable, err, "%s was interrupted; retry", what)
	}
	return tillkeep.Wrap(tillkeep.CodeInternal, err, "%s failed", what)
}

// maxPerCoupon is the offer's coupon limit with its default (0 means once).
func maxPerCoupon(o tillkeep.Offer) int {
	if o.Rules.MaxRedemptionsPerCoupon <= 0 {
		return 1
	}
	return o.Rules.MaxRedemptionsPerCoupon
}
