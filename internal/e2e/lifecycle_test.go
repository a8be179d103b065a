package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// The daemons as a service manager sees them: they serve /healthz, a till enrolls with
// the store's enrollment token and is online, SIGTERM stops both with status 0 within
// 5 s, and both come back on the same data with the enrollment kept.
func TestDaemonsEnrollStopAndRestart(t *testing.T) {
	c := newCluster(t)
	ctx := t.Context()
	ops := c.Platform.Ops()
	must(t, ops.PutStore(ctx, "S001", DemoStore()))
	if _, err := NewOpsClient(c.Platform.URL(), "wrong-token-0123456789").Tills(ctx, "S001"); !isAPIError(err, http.StatusUnauthorized, "unauthorized") {
		t.Errorf("ops call with a wrong token: %v, want 401 unauthorized", err)
	}

	till := addTill(t, c, "T01", AgentOptions{})
	waitEnrolled := func() {
		t.Helper()
		must(t, WaitFor(ctx, syncTimeout, "till T01 enrolled and seen by the platform", func(ctx context.Context) (bool, string, error) {
			tills, err := ops.Tills(ctx, "S001")
			if err != nil {
				return false, "", err
			}
			st, err := till.POS().Status(ctx)
			if err != nil {
				return false, "", err
			}
			ok := len(tills) == 1 && tills[0].TillID == "T01" && tills[0].Enrolled && st.Sync != nil && st.Sync.Enrolled && st.Mode == "online"
			return ok, fmt.Sprintf("platform tills %+v; %s", tills, DescribeStatus(till.Name(), st)), nil
		}))
	}
	waitEnrolled()
	if _, err := NewPOSClient("http://"+till.Addr, "wrong-token-0123456789").Status(ctx); !isAPIError(err, http.StatusUnauthorized, "unauthorized") {
		t.Errorf("POS call with a wrong token: %v, want 401 unauthorized", err)
	}

	for _, stop := range []func() error{till.Stop, c.Platform.Stop} {
		start := time.Now()
		must(t, stop())
		t.Logf("stopped with SIGTERM in %s", time.Since(start).Round(time.Millisecond))
	}
	must(t, c.Platform.Start(ctx))
	must(t, till.Start(ctx))
	waitEnrolled()
}

func isAPIError(err error, status int, code string) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && apiErr.Status == status && apiErr.Code == code
}
