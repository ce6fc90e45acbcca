// Package config reads configuration from environment variables. Only a
// program's main reads the environment; it hands a Source to the service
// configurations, which collect every problem into one error so an operator
// sees them all at once.
package config

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Source looks a variable up; os.LookupEnv is the usual one.
type Source func(name string) (string, bool)

// Environ is the process environment.
func Environ() Source { return os.LookupEnv }

// Map is a Source for tests.
func Map(m map[string]string) Source {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// Reader reads typed values and remembers what was wrong.
type Reader struct {
	src  Source
	errs []error
}

// NewReader returns a reader over src.
func NewReader(src Source) *Reader { return &Reader{src: src} }

func (r *Reader) lookup(name string) (string, bool) {
	v, ok := r.src(name)
	if !ok {
		return "", false
	}
	v = strings.TrimSpace(v)
	return v, v != ""
}

// String returns the variable or def when it is unset or empty.
func (r *Reader) String(name, def string) string {
	if v, ok := r.lookup(name); ok {
		return v
	}
	return def
}

// Int returns the variable as an integer.
func (r *Reader) Int(name string, def int) int {
	v, ok := r.lookup(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		r.Fail(name, "want an integer, got %q", v)
		return def
	}
	return n
}

// Duration returns the variable as a Go duration ("250ms", "6h").
func (r *Reader) Duration(name string, def time.Duration) time.Duration {
	v, ok := r.lookup(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		r.Fail(name, "want a duration such as 30s or 6h, got %q", v)
		return def
	}
	return d
}

// Bool returns the variable as a boolean.
func (r *Reader) Bool(name string, def bool) bool {
	v, ok := r.lookup(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.Fail(name, "want true or false, got %q", v)
		return def
	}
	return b
}

// Float returns the variable as a number.
func (r *Reader) Float(name string, def float64) float64 {
	v, ok := r.lookup(name)
	if !ok {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		r.Fail(name, "want a number, got %q", v)
		return def
	}
	return f
}

// Fail records a problem with a variable.
func (r *Reader) Fail(name, format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
}

// Err returns every recorded problem, or nil.
func (r *Reader) Err() error {
	if len(r.errs) == 0 {
		return nil
	}
	return fmt.Errorf("configuration: %w", errors.Join(r.errs...))
}

// Check runs check over a reader of no variables and returns what it
// reported: a configuration's Validate, for the rules its variables'
// declarations cannot state (required values, values that depend on each
// other), shared by LoadConfig and by configurations built in code.
func Check(check func(*Reader)) error {
	r := NewReader(Map(nil))
	check(r)
	return r.Err()
}
