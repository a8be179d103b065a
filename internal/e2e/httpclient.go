package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// APIError is a non-2xx answer of either API, with the contract's error body.
type APIError struct {
	Method  string
	URL     string
	Status  int
	Code    string
	Message string
	Rule    string
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("%s %s: HTTP %d %s: %s", e.Method, e.URL, e.Status, e.Code, e.Message)
	if e.Rule != "" {
		s += " (rule " + e.Rule + ")"
	}
	return s
}

// answer is what came back from one call.
type answer struct {
	status int
	header http.Header
}

// callTimeout bounds one API call. Generous: a shared machine can stall for seconds,
// and the scenarios assert outcomes, not speed (except where a budget is the point).
const callTimeout = 30 * time.Second

// doJSON sends in (when not nil) as JSON with a bearer token and decodes a 2xx answer
// into out (when not nil). A non-2xx answer is an *APIError.
func doJSON(ctx context.Context, client *http.Client, method, url, token string, in, out any) (answer, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return answer{}, fmt.Errorf("encode %s %s: %w", method, url, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return answer{}, fmt.Errorf("build %s %s: %w", method, url, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: read the answer: %w", method, url, err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var eb struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
				Rule    string `json:"rule"`
			} `json:"error"`
		}
		if err := json.Unmarshal(raw, &eb); err != nil || eb.Error.Code == "" {
			return a, &APIError{Method: method, URL: url, Status: resp.StatusCode, Code: "(no error body)",
				Message: fmt.Sprintf("%.200s", raw)}
		}
		return a, &APIError{Method: method, URL: url, Status: resp.StatusCode, Code: eb.Error.Code,
			Message: eb.Error.Message, Rule: eb.Error.Rule}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return a, fmt.Errorf("%s %s: decode the answer %.200q: %w", method, url, raw, err)
		}
	}
	return a, nil
}
