package platform

import (
	"net/http"

	"github.com/tillkeep/tillkeep/internal/httpapi"
)

// The till API: what the agent on each till calls. Enrollment takes the shared enroll
// token in its body; everything else takes the till's own bearer token, and a till
// acts only as itself.

func (s *Server) enroll(w http.ResponseWriter, r *http.Request) error {
	var body EnrollRequest
	if err := httpapi.DecodeJSON(w, r, httpapi.MaxBodyBytes, &body); err != nil {
		return err
	}
	res, err := s.svc.Enroll(r.Context(), body)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, res)
	return nil
}

func (s *Server) tillValidate(w http.ResponseWriter, r *http.Request, t TillRef) error {
	var body ValidateRequest
	if err := httpapi.DecodeJSON(w, r, httpapi.MaxBodyBytes, &body); err != nil {
		return err
	}
	res, err := s.svc.Validate(r.Context(), t, body)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) tillRedeem(w http.ResponseWriter, r *http.Request, t TillRef) error {
	var body RedeemRequest
	if err := httpapi.DecodeJSON(w, r, httpapi.MaxBodyBytes, &body); err != nil {
		return err
	}
	res, err := s.svc.Redeem(r.Context(), t, body)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, res)
	return nil
}

func (s *Server) tillReverse(w http.ResponseWriter, r *http.Request, t TillRef) error {
	res, err := s.svc.TillReverse(r.Context(), t, r.PathValue("id"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) tillUploadJournal(w http.ResponseWriter, r *http.Request, t TillRef) error {
	var body JournalUpload
	if err := httpapi.DecodeJSON(w, r, maxJournalBytes, &body); err != nil {
		return err
	}
	ack, err := s.svc.Ingest(r.Context(), t, body)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, ack)
	return nil
}

func (s *Server) tillJournalPosition(w http.ResponseWriter, r *http.Request, t TillRef) error {
	pos, err := s.svc.JournalPosition(r.Context(), t)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, pos)
	return nil
}
