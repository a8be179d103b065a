// Package faultproxy is a fault-injecting TCP proxy for end-to-end tests, the partition
// matrix and the demo. It sits between a till agent and the platform and, on command,
// passes traffic, resets connections, blackholes them, slows them down, cuts a response
// short, answers HTTP requests itself with a chosen status (5xx, or 429 with Retry-After),
// or refuses connections altogether. Tests switch modes with Set while traffic flows.
//
// A switch applies to new connections and to those already open: HTTP clients keep
// connections alive and reuse them, so a fault that spared open connections would test
// nothing. Reset and Refuse reset every open connection at once; the other modes take
// effect at the next chunk of data that crosses an open connection, in either direction.
// Behaviour worth knowing when writing a scenario:
//
//   - Blackhole holds data (and a closing FIN) as a partitioned network does; TCP would
//     retransmit it, so when the link heals the held bytes are delivered. A request whose
//     client gave up during the blackhole may therefore still land on the target after
//     healing: exactly the case idempotency keys exist for. To drop held data instead,
//     Set(Reset{}) before Set(Pass{}).
//   - CutAfter counts the bytes sent to the client on each connection from the moment the
//     mode was set (or the connection opened), then resets that connection.
//   - HTTPStatus takes over a connection at the next request the client sends on it; the
//     target's connection is closed and receives nothing of it.
//   - Refuse closes the listener; Set back to any other mode listens again on the same
//     address (retrying for a while should the port have been taken in the meantime).
//
// It must only ever be used in tests and demos between processes on one machine. It
// listens on 127.0.0.1 only, New refuses a target whose host is not a loopback address or
// "localhost", and its dialer refuses any resolved address that is not loopback: it never
// dials anything but the target it was given. It is not a product component; the agent
// and the platform must not import it.
package faultproxy
