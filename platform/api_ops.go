package platform

import (
	"mime"
	"net/http"
	"time"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/internal/httpapi"
)

// The ops API: what central ops call with the admin token. Every answer is JSON except
// reports (CSV); every error goes through httpapi.WriteError.

const (
	defaultPage = 100
	maxPage     = 1000
)

// decodeWithPathID decodes a PUT body into body and sets its id (*id, a field of
// body) from the path: a body naming another id is refused rather than silently
// written under the path's.
func decodeWithPathID(w http.ResponseWriter, r *http.Request, body any, id *string) error {
	if err := httpapi.DecodeJSON(w, r, httpapi.MaxBodyBytes, body); err != nil {
		return err
	}
	path := r.PathValue("id")
	if *id != "" && *id != path {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "the body's id %q differs from the path's %q", *id, path)
	}
	*id = path
	return nil
}

func (s *Server) putStore(w http.ResponseWriter, r *http.Request) error {
	var body tillkeep.Store
	if err := decodeWithPathID(w, r, &body, &body.ID); err != nil {
		return err
	}
	st, err := s.svc.PutStore(r.Context(), body)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) getStore(w http.ResponseWriter, r *http.Request) error {
	st, err := s.svc.GetStore(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) listStores(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryLimit(r, defaultPage, maxPage)
	if err != nil {
		return err
	}
	out, next, err := s.svc.ListStores(r.Context(), r.URL.Query().Get("after"), limit)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"stores": out, "next_cursor": next})
	return nil
}

func (s *Server) putCustomer(w http.ResponseWriter, r *http.Request) error {
	var body tillkeep.Customer
	if err := decodeWithPathID(w, r, &body, &body.ID); err != nil {
		return err
	}
	c, err := s.svc.PutCustomer(r.Context(), body)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) getCustomer(w http.ResponseWriter, r *http.Request) error {
	c, err := s.svc.GetCustomer(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) createOffer(w http.ResponseWriter, r *http.Request) error {
	var body tillkeep.Offer
	if err := httpapi.DecodeJSON(w, r, httpapi.MaxBodyBytes, &body); err != nil {
		return err
	}
	o, err := s.svc.CreateOffer(r.Context(), body)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, o)
	return nil
}

func (s *Server) getOffer(w http.ResponseWriter, r *http.Request) error {
	o, err := s.svc.GetOfferDetail(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, o)
	return nil
}

func (s *Server) listOffers(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryLimit(r, defaultPage, maxPage)
	if err != nil {
		return err
	}
	out, next, err := s.svc.ListOffers(r.Context(), r.URL.Query().Get("after"), limit)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"offers": out, "next_cursor": next})
	return nil
}

// progressLogger extends a long request's deadlines at every chunk and logs progress
// now and then.
func (s *Server) progressLogger(w http.ResponseWriter, what, id string) Progress {
	last := time.Now()
	return func(done int64) {
		extendDeadlines(w)
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			s.log.Info("bulk operation progress", "what", what, "offer", id, "done", done)
		}
	}
}

func (s *Server) createCoupons(w http.ResponseWriter, r *http.Request) error {
	var body CouponsRequest
	if err := httpapi.DecodeJSON(w, r, httpapi.MaxBodyBytes, &body); err != nil {
		return err
	}
	id := r.PathValue("id")
	res, err := s.svc.CreateCoupons(r.Context(), id, body, s.progressLogger(w, "create coupons", id))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, res)
	return nil
}

// requireCSV refuses a JSON body sent to a CSV endpoint.
func requireCSV(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "Content-Type %q is malformed", ct)
	}
	switch mt {
	case "text/csv", "text/plain", "application/csv", "application/octet-stream":
		return nil
	}
	return tillkeep.Errorf(tillkeep.CodeInvalidRequest, "send the rows as text/csv, not %s", mt)
}

func (s *Server) uploadCoupons(w http.ResponseWriter, r *http.Request) error {
	if err := requireCSV(r); err != nil {
		return err
	}
	id := r.PathValue("id")
	extendDeadlines(w)
	res, err := s.svc.UploadCoupons(r.Context(), id, r.Body, s.progressLogger(w, "upload coupons", id))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
	return nil
}

// IssueJSON is the JSON form of an issuance: customer ids, each to get one coupon.
type IssueJSON struct {
	Customers []string `json:"customers"`
}

func (s *Server) issueCoupons(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var rows RowSource
	if mt == "application/json" {
		var body IssueJSON
		if err := httpapi.DecodeJSON(w, r, httpapi.MaxBodyBytes, &body); err != nil {
			return err
		}
		rows = customerRows(body.Customers)
	} else {
		if err := requireCSV(r); err != nil {
			return err
		}
		rows = csvIssueRows(newCSVRows(r.Body, "customer_id"))
	}
	extendDeadlines(w)
	res, err := s.svc.Issue(r.Context(), id, rows, s.progressLogger(w, "issue coupons", id))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) getCoupon(w http.ResponseWriter, r *http.Request) error {
	c, err := s.svc.GetCoupon(r.Context(), r.PathValue("code"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) revokeCoupons(w http.ResponseWriter, r *http.Request) error {
	var body RevokeRequest
	if err := httpapi.DecodeJSON(w, r, httpapi.MaxBodyBytes, &body); err != nil {
		return err
	}
	res, err := s.svc.Revoke(r.Context(), body, s.progressLogger(w, "revoke coupons", body.OfferID))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) getReport(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.svc.ReportExists(r.Context(), id); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="report-`+id+`.csv"`)
	w.WriteHeader(http.StatusOK)
	if err := s.svc.WriteReport(r.Context(), id, w); err != nil {
		// The status is sent; all that is left is to cut the body short and log.
		s.log.Error("send report", "id", id, "err", err)
	}
	return nil
}

func (s *Server) listRedemptions(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := queryLimit(r, defaultPage, maxPage)
	if err != nil {
		return err
	}
	from, err := queryTime(r, "from")
	if err != nil {
		return err
	}
	to, err := queryTime(r, "to")
	if err != nil {
		return err
	}
	f := RedemptionFilter{
		StoreID: q.Get("store_id"), TillID: q.Get("till_id"), OfferID: q.Get("offer_id"), Code: q.Get("code"),
		Mode: q.Get("mode"), Status: q.Get("status"), From: from, To: to,
	}
	out, next, err := s.svc.ListRedemptions(r.Context(), f, q.Get("cursor"), limit)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"redemptions": out, "next_cursor": next})
	return nil
}

func (s *Server) getRedemption(w http.ResponseWriter, r *http.Request) error {
	red, err := s.svc.GetRedemption(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, red)
	return nil
}

func (s *Server) reverseRedemption(w http.ResponseWriter, r *http.Request) error {
	red, err := s.svc.ReverseRedemption(r.Context(), r.PathValue("id"), PrincipalAdmin)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, red)
	return nil
}

// conflictSummary is a case in the list: the contract's fields first.
type conflictSummary struct {
	ID            string    `json:"id"`
	Kind          string    `json:"kind"`
	Code          string    `json:"code"`
	RedemptionIDs []string  `json:"redemption_ids"`
	TillIDs       []string  `json:"till_ids"`
	Status        string    `json:"status"`
	OfferID       string    `json:"offer_id,omitempty"`
	StoreIDs      []string  `json:"store_ids"`
	WinnerIDs     []string  `json:"winner_ids,omitempty"`
	Rule          string    `json:"rule,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
	Resolution    string    `json:"resolution,omitempty"`
}

func (s *Server) listConflicts(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryLimit(r, maxPage, maxPage)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	cases, next, err := s.svc.ListConflicts(r.Context(), q.Get("status"), q.Get("after"), limit)
	if err != nil {
		return err
	}
	out := make([]conflictSummary, 0, len(cases))
	for _, c := range cases {
		out = append(out, conflictSummary{
			ID: c.ID, Kind: c.Kind, Code: c.Code, RedemptionIDs: c.RedemptionIDs, TillIDs: c.TillIDs,
			Status: c.Status, OfferID: c.OfferID, StoreIDs: c.StoreIDs, WinnerIDs: c.WinnerIDs, Rule: c.Rule,
			CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, Resolution: c.Resolution,
		})
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"conflicts": out, "next_cursor": next})
	return nil
}

func (s *Server) getConflict(w http.ResponseWriter, r *http.Request) error {
	d, err := s.svc.GetConflict(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, d)
	return nil
}

func (s *Server) resolveConflict(w http.ResponseWriter, r *http.Request) error {
	var body ResolveRequest
	if err := httpapi.DecodeJSON(w, r, httpapi.MaxBodyBytes, &body); err != nil {
		return err
	}
	c, err := s.svc.ResolveConflict(r.Context(), r.PathValue("id"), PrincipalAdmin, body)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) listTills(w http.ResponseWriter, r *http.Request) error {
	tills, err := s.svc.ListTills(r.Context(), r.URL.Query().Get("store_id"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"tills": tills})
	return nil
}

func (s *Server) resetTill(w http.ResponseWriter, r *http.Request) error {
	t, err := s.svc.ResetTill(r.Context(), r.PathValue("store_id"), r.PathValue("till_id"), PrincipalAdmin)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) listAnomalies(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryLimit(r, defaultPage, maxPage)
	if err != nil {
		return err
	}
	out, next, err := s.svc.ListAnomalies(r.Context(), r.URL.Query().Get("after"), limit)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"anomalies": out, "next_cursor": next})
	return nil
}
