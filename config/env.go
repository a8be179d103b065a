package config

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
)

// applyEnv overrides every key whose TILLKEEP_* variable is set. It works over the
// struct's toml tags, so a key added to the structs can be overridden with no more code.
// Only values that fail to parse are quoted in errors, and only keys that are not strings
// can fail, so a secret is never repeated.
func (d *document) applyEnv(root reflect.Value, leaves []leaf, lookup func(string) (string, bool)) []*Error {
	var errs []*Error
	for _, l := range leaves {
		name := EnvName(l.key)
		value, ok := lookup(name)
		if !ok {
			continue
		}
		d.fromEnv[l.key] = name
		if err := setFromText(root.FieldByIndex(l.index), value); err != nil {
			errs = append(errs, &Error{File: d.name, Key: l.key, Env: name,
				Msg: fmt.Sprintf("expected %s: %v", describeType(l.typ), err)})
		}
	}
	return errs
}

// setFromText sets v from the text of an environment variable.
func setFromText(v reflect.Value, text string) error {
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return u.UnmarshalText([]byte(text))
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(text)
	case reflect.Bool:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return fmt.Errorf("%q is not true or false", text)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(text, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not an integer in range", text)
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(text, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not a non-negative integer in range", text)
		}
		v.SetUint(n)
	default:
		return fmt.Errorf("keys of type %s cannot be set from the environment", v.Type())
	}
	return nil
}
