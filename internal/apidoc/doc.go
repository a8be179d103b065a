// Package apidoc keeps docs/openapi.yaml, the description of both HTTP APIs, true to the
// code. It holds only tests: they parse the spec and check that it is well formed, that
// its codes, rules and statuses are the ones the source defines, that every route the
// agent and the platform register is documented and every documented route is served
// (by probing the real routers), and that the real answers of both daemons to a
// scripted session validate against the documented schemas.
//
// It must not add hooks to the packages it checks: it reads their source and drives
// their public HTTP handlers, nothing else. docs/openapi.yaml stays the one source of
// truth; nothing here generates it.
package apidoc
