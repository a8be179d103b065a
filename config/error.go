package config

import (
	"errors"
	"strconv"
	"strings"
)

// Error is one mistake in a config file. Its text is "FILE:LINE: key KEY: MESSAGE";
// the line is left out when the key is not in the file (a required key that is missing,
// or a value that came from the environment), and Env then names the variable the value
// came from. Msg never holds the value of a secret.
type Error struct {
	File string // the config file's path as given
	Line int    // 1-based; 0 when the mistake has no line in the file
	Key  string // dotted key, e.g. "offline.max_catalog_age"; "" for a bare syntax error
	Env  string // the TILLKEEP_* variable the value came from, if it came from one
	Msg  string
}

func (e *Error) Error() string {
	var parts []string
	if e.File != "" {
		where := e.File
		if e.Line > 0 {
			where += ":" + strconv.Itoa(e.Line)
		}
		parts = append(parts, where)
	}
	if e.Key != "" {
		key := "key " + e.Key
		if e.Env != "" {
			key += " (from environment variable " + e.Env + ")"
		}
		parts = append(parts, key)
	}
	parts = append(parts, e.Msg)
	return strings.Join(parts, ": ")
}

// Errors returns every *Error held by err (which may be one *Error or several joined
// with errors.Join), in the order they were found.
func Errors(err error) []*Error {
	if err == nil {
		return nil
	}
	var one *Error
	if errors.As(err, &one) && err == error(one) {
		return []*Error{one}
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var all []*Error
		for _, e := range joined.Unwrap() {
			all = append(all, Errors(e)...)
		}
		return all
	}
	if errors.As(err, &one) {
		return []*Error{one}
	}
	return nil
}

// joinErrors turns a list of mistakes into one error: the *Error itself when there is
// one, so that callers can errors.As it directly, or errors.Join of all of them, so
// that store IT sees every mistake in one run of config check.
func joinErrors(errs []*Error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	list := make([]error, len(errs))
	for i, e := range errs {
		list[i] = e
	}
	return errors.Join(list...)
}
