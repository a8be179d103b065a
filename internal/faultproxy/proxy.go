package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrClosed is returned by Set once the proxy has been closed.
var ErrClosed = errors.New("fault proxy closed")

const (
	// chunkSize bounds what one read takes from either side, and so what Slow and
	// Blackhole hold at a time; the kernel's buffers hold the rest.
	chunkSize = 32 << 10
	// dialTimeout bounds a dial to the (loopback) target; a dial that slow means the
	// target is wedged, and the client is reset as if the link had failed.
	dialTimeout = 5 * time.Second
	// relistenTimeoutDefault bounds how long Set retries listening on the old address after
	// Refuse, should another socket have taken the port meanwhile.
	relistenTimeoutDefault = 3 * time.Second
)

// Proxy forwards connections accepted on 127.0.0.1 to one loopback target, injecting the
// fault its current Mode names. It is safe for concurrent use.
type Proxy struct {
	target string
	addr   *net.TCPAddr
	log    *slog.Logger
	dialer net.Dialer

	// ctx is cancelled by Close; every wait and dial in the proxy selects on it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// relistenTimeout is relistenTimeoutDefault; tests shorten it.
	relistenTimeout time.Duration

	// setMu serialises Set, so that re-listening after Refuse never races another switch.
	setMu sync.Mutex

	mu      sync.Mutex
	closed  bool
	ln      *net.TCPListener // nil while refusing
	mode    Mode
	gen     uint64        // bumped by every Set; CutAfter counts from it
	changed chan struct{} // closed and replaced by every Set, waking blackholed pumps
	conns   map[*conn]struct{}
	nextID  uint64

	stats counters
}

// Stats are the proxy's counters since New, for assertions in tests.
type Stats struct {
	Accepted   int64 // client connections accepted
	Open       int64 // client connections open now
	Dialed     int64 // connections opened to the target
	DialErrors int64 // dials to the target that failed (the client was reset)
	BytesUp    int64 // bytes forwarded from clients to the target
	BytesDown  int64 // bytes forwarded from the target to clients
	Resets     int64 // client connections the proxy closed with RST, whatever the cause
	Cuts       int64 // connections CutAfter cut
	Blackholed int64 // times data or a close was held by Blackhole
	Answered   int64 // HTTP requests HTTPStatus answered without the target
}

type counters struct {
	accepted, dialed, dialErrors       atomic.Int64
	bytesUp, bytesDown                 atomic.Int64
	resets, cuts, blackholed, answered atomic.Int64
}

// New starts a proxy listening on 127.0.0.1 on a free port, forwarding to target
// ("host:port", host a loopback address or "localhost"), in mode Pass. A nil log
// discards. Close it when done.
func New(target string, log *slog.Logger) (*Proxy, error) {
	if err := checkLoopbackTarget(target); err != nil {
		return nil, fmt.Errorf("new fault proxy: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("new fault proxy: listen on 127.0.0.1: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := ln.Addr().(*net.TCPAddr)
	p := &Proxy{
		target: target,
		addr:   addr,
		log:    log.With("component", "faultproxy", "listen", addr.String(), "target", target),
		dialer: net.Dialer{Timeout: dialTimeout, Control: refuseNonLoopback},
		ctx:    ctx,
		cancel: cancel,

		relistenTimeout: relistenTimeoutDefault,
		ln:              ln,
		mode:            Pass{},
		changed:         make(chan struct{}),
		conns:           make(map[*conn]struct{}),
	}
	p.wg.Add(1)
	go p.acceptLoop(ln)
	p.log.Debug("fault proxy started")
	return p, nil
}

// Addr is the proxy's listening address, "127.0.0.1:port"; it stays the same across
// Refuse.
func (p *Proxy) Addr() string { return p.addr.String() }

// URL is "http://" + Addr, the base URL a client under test should use.
func (p *Proxy) URL() string { return "http://" + p.Addr() }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Mode is the current mode. An HTTPStatus comes with its own copy of the header.
func (p *Proxy) Mode() Mode {
	mode, _, _ := p.state()
	if m, ok := mode.(HTTPStatus); ok {
		m.Header = m.Header.Clone()
		return m
	}
	return mode
}

// Set switches the mode for new connections and open ones (see the package comment). It
// returns an error for an invalid mode, after Close, or when listening again on the old
// address after Refuse failed; in that last case the mode is set but connections are
// still refused, and the next Set retries.
func (p *Proxy) Set(mode Mode) error {
	mode, err := normalizeMode(mode)
	if err != nil {
		return fmt.Errorf("set fault proxy mode: %w", err)
	}
	p.setMu.Lock()
	defer p.setMu.Unlock()

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	previous := p.mode
	p.mode = mode
	p.gen++
	close(p.changed)
	p.changed = make(chan struct{})
	_, refusing := mode.(Refuse)
	_, resetting := mode.(Reset)
	var stale *net.TCPListener
	if refusing {
		stale, p.ln = p.ln, nil
	}
	var victims []*conn
	if refusing || resetting {
		victims = make([]*conn, 0, len(p.conns))
		for c := range p.conns {
			victims = append(victims, c)
		}
	}
	relisten := !refusing && p.ln == nil
	p.mu.Unlock()

	p.log.Info("fault proxy mode set", "mode", mode.String(), "previous", previous.String())
	if stale != nil {
		if err := stale.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			p.log.Warn("close listener to refuse connections", "err", err)
		}
	}
	for _, c := range victims {
		c.shutdown(true)
	}
	if relisten {
		return p.relisten()
	}
	return nil
}

// Stats returns a snapshot of the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	open := int64(len(p.conns))
	p.mu.Unlock()
	return Stats{
		Accepted:   p.stats.accepted.Load(),
		Open:       open,
		Dialed:     p.stats.dialed.Load(),
		DialErrors: p.stats.dialErrors.Load(),
		BytesUp:    p.stats.bytesUp.Load(),
		BytesDown:  p.stats.bytesDown.Load(),
		Resets:     p.stats.resets.Load(),
		Cuts:       p.stats.cuts.Load(),
		Blackholed: p.stats.blackholed.Load(),
		Answered:   p.stats.answered.Load(),
	}
}

// Close stops listening, closes every open connection on both sides, and returns once
// every goroutine of the proxy has ended. Closing twice is harmless.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	ln := p.ln
	p.ln = nil
	open := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		open = append(open, c)
	}
	p.mu.Unlock()

	p.cancel()
	var err error
	if ln != nil {
		if cerr := ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = fmt.Errorf("close fault proxy listener %s: %w", p.addr, cerr)
		}
	}
	for _, c := range open {
		c.shutdown(false)
	}
	p.wg.Wait()
	p.log.Debug("fault proxy closed", "accepted", p.stats.accepted.Load())
	return err
}

// state is what a pump decides by: the mode, its generation, and the channel the next
// Set will close.
func (p *Proxy) state() (Mode, uint64, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.gen, p.changed
}

func (p *Proxy) acceptLoop(ln *net.TCPListener) {
	defer p.wg.Done()
	var backoff time.Duration
	for {
		client, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off rather than spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), 500*time.Millisecond)
			p.log.Warn("accept connection", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
				continue
			case <-p.ctx.Done():
				return
			}
		}
		backoff = 0
		p.stats.accepted.Add(1)
		c, mode, ok := p.register(client)
		if !ok {
			_ = client.Close()
			continue
		}
		go c.serve(mode)
	}
}

// register adds a freshly accepted connection to the open set and returns the mode it
// starts in. Registering and reading the mode under one lock means a concurrent
// Set(Reset) either finds the connection to reset or is seen by it.
func (p *Proxy) register(client *net.TCPConn) (*conn, Mode, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, nil, false
	}
	p.nextID++
	c := newConn(p, p.nextID, client)
	p.conns[c] = struct{}{}
	p.wg.Add(1)
	return c, p.mode, true
}

func (p *Proxy) forget(c *conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// relisten listens on the proxy's address again after Refuse. Between closing and now
// the port was free, so another socket (an outgoing connection's ephemeral port, say)
// may hold it for a moment: retry with backoff before giving up.
func (p *Proxy) relisten() error {
	deadline := time.Now().Add(p.relistenTimeout)
	wait := 5 * time.Millisecond
	for {
		ln, err := net.ListenTCP("tcp4", p.addr)
		if err == nil {
			p.mu.Lock()
			if p.closed {
				p.mu.Unlock()
				_ = ln.Close()
				return ErrClosed
			}
			p.ln = ln
			p.wg.Add(1)
			p.mu.Unlock()
			go p.acceptLoop(ln)
			return nil
		}
		if time.Now().After(deadline) {
			p.log.Error("listen again after refuse", "err", err)
			return fmt.Errorf("listen again on %s after refuse: %w", p.addr, err)
		}
		select {
		case <-time.After(wait):
		case <-p.ctx.Done():
			return ErrClosed
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// checkLoopbackTarget accepts "host:port" with a numeric port and a host that is a
// loopback IP or "localhost": the proxy exists for tests on one machine and must not be
// pointable at anything else.
func checkLoopbackTarget(target string) error {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return fmt.Errorf("target %q is not host:port: %w", target, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("target %q: port must be a number from 1 to 65535", target)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("target %q: host must be a loopback address or localhost", target)
}

// refuseNonLoopback runs on every dial after name resolution, so that "localhost"
// resolving to something odd cannot make the proxy reach off the machine.
func refuseNonLoopback(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("dial %s: fault proxy dials loopback addresses only", address)
	}
	return nil
}
