package faultproxy

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Mode is the state of the proxy's link; Set switches it. Only this package's modes
// qualify: Pass, Reset, Blackhole, Slow, CutAfter, HTTPStatus and Refuse.
type Mode interface {
	fmt.Stringer
	faultMode()
}

// Pass forwards both ways untouched.
type Pass struct{}

// Reset accepts connections and closes them with a TCP RST; open connections are reset
// when the mode is set.
type Reset struct{}

// Blackhole accepts connections and reads from them but never answers and never closes,
// until the mode changes or the proxy closes. Held data is delivered if the next mode
// forwards (see the package comment).
type Blackhole struct{}

// Slow holds every chunk for Latency before forwarding it, then forwards it at no more
// than BytesPerSecond (0: unthrottled), in both directions. A chunk is what one read
// returned, so a long transfer pays the latency more than once: a slow link, not a pure
// delay line.
type Slow struct {
	Latency        time.Duration
	BytesPerSecond int
}

// CutAfter forwards requests untouched, forwards the first Bytes bytes towards the client
// and then resets the connection: a response cut in the middle.
type CutAfter struct {
	Bytes int
}

// HTTPStatus answers every HTTP request itself, one answer per request on keep-alive
// connections, with Code, Header and Body, and forwards nothing to the target.
type HTTPStatus struct {
	Code   int
	Header http.Header
	Body   string
}

// Refuse stops listening, so connecting is refused, and resets open connections.
type Refuse struct{}

func (Pass) faultMode()       {}
func (Reset) faultMode()      {}
func (Blackhole) faultMode()  {}
func (Slow) faultMode()       {}
func (CutAfter) faultMode()   {}
func (HTTPStatus) faultMode() {}
func (Refuse) faultMode()     {}

func (Pass) String() string      { return "pass" }
func (Reset) String() string     { return "reset" }
func (Blackhole) String() string { return "blackhole" }
func (Refuse) String() string    { return "refuse" }

func (m Slow) String() string {
	return fmt.Sprintf("slow(latency=%s, bytes/s=%d)", m.Latency, m.BytesPerSecond)
}

func (m CutAfter) String() string { return fmt.Sprintf("cut-after(%d bytes)", m.Bytes) }

func (m HTTPStatus) String() string { return fmt.Sprintf("http-status(%d)", m.Code) }

// normalizeMode validates mode and returns the value the pumps will read: pointers are
// dereferenced and HTTPStatus.Header is copied, so that a caller changing its header map
// afterwards cannot race with connections answering from it.
func normalizeMode(mode Mode) (Mode, error) {
	switch m := mode.(type) {
	case nil:
		return nil, errors.New("no mode given")
	case *Pass:
		if m != nil {
			return *m, nil
		}
	case *Reset:
		if m != nil {
			return *m, nil
		}
	case *Blackhole:
		if m != nil {
			return *m, nil
		}
	case *Refuse:
		if m != nil {
			return *m, nil
		}
	case *Slow:
		if m != nil {
			return normalizeMode(*m)
		}
	case *CutAfter:
		if m != nil {
			return normalizeMode(*m)
		}
	case *HTTPStatus:
		if m != nil {
			return normalizeMode(*m)
		}
	case Pass, Reset, Blackhole, Refuse:
		return m, nil
	case Slow:
		if m.Latency < 0 || m.BytesPerSecond < 0 {
			return nil, fmt.Errorf("%s: latency and bytes per second must not be negative", m)
		}
		return m, nil
	case CutAfter:
		if m.Bytes < 0 {
			return nil, fmt.Errorf("%s: bytes must not be negative", m)
		}
		return m, nil
	case HTTPStatus:
		// 1xx answers are not final, so a client would wait for another that never comes.
		if m.Code < 200 || m.Code > 599 {
			return nil, fmt.Errorf("%s: code must be a final status, 200-599", m)
		}
		if !bodyAllowed(m.Code) && m.Body != "" {
			return nil, fmt.Errorf("%s: status %d must not have a body", m, m.Code)
		}
		for key := range m.Header {
			if !isToken(key) {
				return nil, fmt.Errorf("%s: header name %q is not a valid HTTP token", m, key)
			}
		}
		m.Header = m.Header.Clone()
		return m, nil
	}
	return nil, fmt.Errorf("mode %v (%T) is nil or unknown", mode, mode)
}

func bodyAllowed(code int) bool {
	return code != http.StatusNoContent && code != http.StatusNotModified
}

// isToken reports whether s is an RFC 9110 token, the grammar of header names.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
