package faultproxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// conn is one client connection and, while a forwarding mode needs it, its connection to
// the target. Two pumps move data: serve (client to target, and the HTTPStatus answers)
// runs for the connection's whole life; pumpDown (target to client) runs while a target
// connection exists. Each decides what to do with a chunk by the mode current when the
// chunk arrived, which is how a switch reaches open keep-alive connections.
type conn struct {
	p      *Proxy
	client *net.TCPConn
	in     *bufio.Reader // client input; serve peeks at it to decide before consuming
	log    *slog.Logger
	done   chan struct{} // closed by shutdown

	mu       sync.Mutex
	closed   bool
	upstream *net.TCPConn  // nil until dialed, and after HTTPStatus detached it
	downDone chan struct{} // closed when the pumpDown of upstream has returned

	// Used only by the running pumpDown; pumpDowns of one connection run one after the
	// other, ordered by downDone.
	cutGen  uint64
	cutSent int
}

func newConn(p *Proxy, id uint64, client *net.TCPConn) *conn {
	return &conn{
		p:      p,
		client: client,
		in:     bufio.NewReaderSize(client, chunkSize),
		log:    p.log.With("conn", id, "client", client.RemoteAddr().String()),
		done:   make(chan struct{}),
	}
}

// serve runs the connection from accept to close.
func (c *conn) serve(first Mode) {
	defer c.p.wg.Done()
	defer c.p.forget(c)
	defer c.shutdown(false)

	switch first.(type) {
	case Reset, Refuse:
		c.shutdown(true)
		return
	case Pass, Slow, CutAfter:
		// Dial at once, as a real link would: the target sees the connection open.
		if c.dial() == nil {
			return
		}
	}

	buf := make([]byte, chunkSize)
	for {
		_, peekErr := c.in.Peek(1)
		if peekErr != nil && !errors.Is(peekErr, io.EOF) {
			return // the client broke the connection, or shutdown closed it
		}
		mode, _, changed := c.p.state()
		switch m := mode.(type) {
		case Reset, Refuse:
			c.shutdown(true)
			return
		case Blackhole:
			if !c.hold(changed) {
				return
			}
		case HTTPStatus:
			if peekErr != nil {
				c.finishUp()
				return
			}
			if !c.answer(m) {
				return
			}
		default:
			if peekErr != nil {
				c.finishUp()
				return
			}
			if !c.forwardUp(buf, m) {
				return
			}
		}
	}
}

// forwardUp forwards what the client has sent, dialing the target first if the
// connection began in a mode that needed none.
func (c *conn) forwardUp(buf []byte, mode Mode) bool {
	up := c.currentUpstream()
	if up == nil {
		if up = c.dial(); up == nil {
			return false
		}
	}
	n, _ := c.in.Read(buf) // serve peeked, so this returns buffered bytes at once
	return c.write(up, buf[:n], mode, &c.p.stats.bytesUp)
}

// finishUp passes the client's close on to the target as a half-close and waits for the
// target's side to finish, as TCP proxies do; serve then closes both.
func (c *conn) finishUp() {
	c.mu.Lock()
	up, downDone := c.upstream, c.downDone
	c.mu.Unlock()
	if up == nil {
		return
	}
	_ = up.CloseWrite()
	select {
	case <-downDone:
	case <-c.done:
	}
}

// dial opens the target connection and starts its pump. On failure the client is reset:
// after accepting, that is the nearest a TCP proxy can come to "connection refused".
func (c *conn) dial() *net.TCPConn {
	ctx, cancel := context.WithTimeout(c.p.ctx, dialTimeout)
	defer cancel()
	nc, err := c.p.dialer.DialContext(ctx, "tcp", c.p.target)
	if err != nil {
		c.p.stats.dialErrors.Add(1)
		c.log.Debug("dial target", "err", err)
		c.shutdown(true)
		return nil
	}
	up := nc.(*net.TCPConn)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = up.Close()
		return nil
	}
	downDone := make(chan struct{})
	c.upstream, c.downDone = up, downDone
	c.p.wg.Add(1)
	c.mu.Unlock()
	c.p.stats.dialed.Add(1)
	go c.pumpDown(up, downDone)
	return up
}

func (c *conn) currentUpstream() *net.TCPConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.upstream
}

// detachUpstream closes the target connection so HTTPStatus can answer on the client
// connection alone, and waits for its pump so that nothing else writes to the client.
func (c *conn) detachUpstream() {
	c.mu.Lock()
	up, downDone := c.upstream, c.downDone
	c.upstream, c.downDone = nil, nil
	c.mu.Unlock()
	if up == nil {
		return
	}
	_ = up.Close()
	select {
	case <-downDone:
	case <-c.done:
	}
}

func (c *conn) pumpDown(up *net.TCPConn, downDone chan struct{}) {
	defer c.p.wg.Done()
	defer close(downDone)
	buf := make([]byte, chunkSize)
	for {
		n, err := up.Read(buf)
		if n > 0 && !c.deliverDown(buf[:n]) {
			return
		}
		if err == nil {
			continue
		}
		if c.currentUpstream() != up {
			return // detached by HTTPStatus: its close is not the target's
		}
		if !errors.Is(err, io.EOF) {
			c.shutdown(false)
			return
		}
		c.deliverEOF(up)
		return
	}
}

// deliverDown sends a chunk from the target to the client as the mode says; false means
// the connection is over.
func (c *conn) deliverDown(data []byte) bool {
	for {
		mode, gen, changed := c.p.state()
		switch m := mode.(type) {
		case Reset, Refuse:
			c.shutdown(true)
			return false
		case Blackhole:
			if !c.hold(changed) {
				return false
			}
			continue
		case CutAfter:
			if c.cutGen != gen {
				c.cutGen, c.cutSent = gen, 0
			}
			room := m.Bytes - c.cutSent
			if room > len(data) {
				c.cutSent += len(data)
				return c.write(c.client, data, m, &c.p.stats.bytesDown)
			}
			if !c.write(c.client, data[:room], m, &c.p.stats.bytesDown) {
				return false
			}
			c.p.stats.cuts.Add(1)
			c.log.Debug("cut response", "after_bytes", m.Bytes)
			c.shutdown(true)
			return false
		default:
			// HTTPStatus too: this answers a request forwarded before the switch.
			return c.write(c.client, data, m, &c.p.stats.bytesDown)
		}
	}
}

// deliverEOF passes the target's close on to the client as a half-close, unless the mode
// says to hold or reset it.
func (c *conn) deliverEOF(up *net.TCPConn) {
	for {
		mode, _, changed := c.p.state()
		switch mode.(type) {
		case Reset, Refuse:
			c.shutdown(true)
			return
		case Blackhole:
			if !c.hold(changed) {
				return
			}
			continue
		}
		if c.currentUpstream() == up {
			_ = c.client.CloseWrite()
		}
		return
	}
}

// hold waits while the link is blackholed: until the next Set, or the end of the
// connection or of the proxy. True means decide again.
func (c *conn) hold(changed <-chan struct{}) bool {
	c.p.stats.blackholed.Add(1)
	select {
	case <-changed:
	case <-c.done:
		return false
	case <-c.p.ctx.Done():
		return false
	}
	// A Set(Reset) shuts the connection down right after waking us: never let a later
	// Set(Pass) deliver what the reset dropped.
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// write writes data to dst, slowly if the mode is Slow, counting what was written.
func (c *conn) write(dst *net.TCPConn, data []byte, mode Mode, written *atomic.Int64) bool {
	slow, ok := mode.(Slow)
	if !ok || (slow.Latency == 0 && slow.BytesPerSecond == 0) {
		return writeCounted(dst, data, written)
	}
	if !c.sleep(slow.Latency) {
		return false
	}
	if slow.BytesPerSecond == 0 {
		return writeCounted(dst, data, written)
	}
	// Pieces of about 50 ms of budget each keep the rate smooth. Each piece waits its
	// transmission time before it is written, as on a real link, so the last byte of n
	// arrives no sooner than n/BytesPerSecond after the first was due.
	piece := max(1, slow.BytesPerSecond/20)
	for len(data) > 0 {
		k := min(piece, len(data))
		if !c.sleep(time.Duration(k) * time.Second / time.Duration(slow.BytesPerSecond)) {
			return false
		}
		if !writeCounted(dst, data[:k], written) {
			return false
		}
		data = data[k:]
	}
	return true
}

// writeCounted counts before writing, so that a client which has read the bytes never
// sees a counter without them; what could not be written is taken back.
func writeCounted(dst *net.TCPConn, data []byte, written *atomic.Int64) bool {
	written.Add(int64(len(data)))
	n, err := dst.Write(data)
	if n < len(data) {
		written.Add(int64(n - len(data)))
	}
	return err == nil
}

// sleep waits d unless the connection or the proxy ends first.
func (c *conn) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.done:
		return false
	case <-c.p.ctx.Done():
		return false
	}
}

// answer reads one HTTP request from the client and answers it with m, without the
// target. False means the connection is over.
func (c *conn) answer(m HTTPStatus) bool {
	c.detachUpstream()
	req, err := http.ReadRequest(c.in)
	if err != nil {
		if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			c.log.Debug("read request to answer", "err", err)
			_, _ = io.WriteString(c.client, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		}
		return false
	}
	// With Expect: 100-continue the client waits before sending its body; answer at once
	// and close rather than read a body that may or may not follow.
	expectContinue := strings.EqualFold(req.Header.Get("Expect"), "100-continue")
	if !expectContinue {
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			c.log.Debug("read request body to answer", "err", err)
			return false
		}
	}
	_ = req.Body.Close()
	closeAfter := req.Close || expectContinue || strings.EqualFold(m.Header.Get("Connection"), "close")

	// Counted first, so a client that has the answer never sees a count without it.
	c.p.stats.answered.Add(1)
	if _, err := c.client.Write(renderResponse(m, req.Method, closeAfter)); err != nil {
		return false
	}
	c.log.Debug("answered request", "method", req.Method, "path", req.URL.Path, "status", m.Code)
	return !closeAfter
}

// renderResponse writes the answer by hand rather than with http.Response.Write, which
// leaves out Content-Length: 0 for GET and so would end keep-alive.
func renderResponse(m HTTPStatus, method string, closeAfter bool) []byte {
	h := m.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Del("Content-Length")
	h.Del("Transfer-Encoding")
	h.Del("Connection")
	if m.Body != "" && h.Get("Content-Type") == "" {
		h.Set("Content-Type", "text/plain; charset=utf-8")
	}
	if bodyAllowed(m.Code) {
		h.Set("Content-Length", strconv.Itoa(len(m.Body)))
	}
	if closeAfter {
		h.Set("Connection", "close")
	}
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 " + strconv.Itoa(m.Code) + " " + http.StatusText(m.Code) + "\r\n")
	_ = h.Write(&b) // sanitises newlines in values
	b.WriteString("\r\n")
	if method != http.MethodHead && bodyAllowed(m.Code) {
		b.WriteString(m.Body)
	}
	return b.Bytes()
}

// shutdown closes both sides of the connection once; rst closes the client side with a
// TCP RST (SO_LINGER 0) instead of a FIN, and the target side too.
func (c *conn) shutdown(rst bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	up := c.upstream
	c.mu.Unlock()

	if rst {
		c.p.stats.resets.Add(1)
		_ = c.client.SetLinger(0)
		if up != nil {
			_ = up.SetLinger(0)
		}
		c.log.Debug("reset connection")
	}
	_ = c.client.Close()
	if up != nil {
		_ = up.Close()
	}
	close(c.done)
}
