package config

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A Set is the variables of one component (the platform, a service), in
// the order they were declared. Each variable is declared once, with its
// default and meaning, and read through its declaration, so the code, the
// error messages and docs/configuration.md (generated from every Set) cannot
// disagree.
type Set struct {
	// Name heads the set's section in the reference ("points-ledger").
	Name string
	// Intro is a paragraph under the heading: who reads these variables.
	Intro string
	// Order places the set in the reference; lower first, then by name.
	Order int

	mu   sync.Mutex
	vars []*Var
}

// Var describes one variable.
type Var struct {
	Name    string
	Default string // as an operator would write it; empty when unset
	Help    string // one or two sentences: what it does, which values
	Kind    string // string, integer, duration, boolean, number
	Range   string // the values allowed, for numbers and durations
	// Placeholder is the part of a family's Name that stands for a name
	// (NATS_<USER>_PASSWORD); empty for a single variable.
	Placeholder string
}

// Matches reports whether name is the variable, or one of its family.
func (v *Var) Matches(name string) bool {
	if v.Placeholder == "" {
		return name == v.Name
	}
	prefix, suffix, _ := strings.Cut(v.Name, v.Placeholder)
	return len(name) > len(prefix)+len(suffix) && strings.HasPrefix(name, prefix) && strings.HasSuffix(name, suffix)
}

var registry = struct {
	sync.Mutex
	sets  []*Set
	names map[string]string // variable → set that declared it
}{names: map[string]string{}}

// NewSet registers a set of variables. Sets are package-level values,
// declared once; a second set of the same name panics.
func NewSet(name string, order int, intro string) *Set {
	registry.Lock()
	defer registry.Unlock()
	for _, s := range registry.sets {
		if s.Name == name {
			panic(fmt.Sprintf("config: set %q declared twice", name))
		}
	}
	s := &Set{Name: name, Intro: intro, Order: order}
	registry.sets = append(registry.sets, s)
	return s
}

// Sets returns every registered set in reference order.
func Sets() []*Set {
	registry.Lock()
	sets := slices.Clone(registry.sets)
	registry.Unlock()
	slices.SortStableFunc(sets, func(a, b *Set) int {
		if a.Order != b.Order {
			return a.Order - b.Order
		}
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return sets
}

// Lookup returns the declaration of a variable, if any set declares it.
func Lookup(name string) (*Var, bool) {
	for _, s := range Sets() {
		for _, v := range s.Vars() {
			if v.Matches(name) {
				return v, true
			}
		}
	}
	return nil, false
}

// Vars returns the set's variables in declaration order.
func (s *Set) Vars() []*Var {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.vars)
}

func (s *Set) add(name, def, kind, help string) *Var {
	registry.Lock()
	if other, ok := registry.names[name]; ok {
		registry.Unlock()
		panic(fmt.Sprintf("config: %s declared by %q and again by %q", name, other, s.Name))
	}
	registry.names[name] = s.Name
	registry.Unlock()
	v := &Var{Name: name, Default: def, Help: help, Kind: kind}
	s.mu.Lock()
	s.vars = append(s.vars, v)
	s.mu.Unlock()
	return v
}

// StringVar is a declared text variable.
type StringVar struct {
	*Var
	def string
}

// String declares a text variable.
func (s *Set) String(name, def, help string) StringVar {
	return StringVar{s.add(name, def, "string", help), def}
}

// Read returns the variable's value, or its default when unset or empty.
func (v StringVar) Read(r *Reader) string { return r.String(v.Name, v.def) }

// IntVar is a declared integer variable.
type IntVar struct {
	*Var
	def, min, max int
}

// Int declares an integer variable whose value must lie in [min, max].
func (s *Set) Int(name string, def, min, max int, help string) IntVar {
	v := s.add(name, strconv.Itoa(def), "integer", help)
	v.Range = fmt.Sprintf("%d–%d", min, max)
	if max == math.MaxInt {
		v.Range = fmt.Sprintf("%d or more", min)
	}
	return IntVar{v, def, min, max}
}

// Read returns the variable's value, or its default; a value out of the
// declared range is reported and the default used.
func (v IntVar) Read(r *Reader) int {
	n := r.Int(v.Name, v.def)
	if n < v.min || n > v.max {
		r.Fail(v.Name, "%d, want %d..%d", n, v.min, v.max)
		return v.def
	}
	return n
}

// Forever is the largest duration, the upper bound of a duration
// variable without one.
const Forever = time.Duration(math.MaxInt64)

// DurationVar is a declared duration variable.
type DurationVar struct {
	*Var
	def, min, max time.Duration
}

// Duration declares a duration variable whose value must lie in [min,
// max]; a zero min lets 0 mean "off" or "unlimited", as its help must say.
func (s *Set) Duration(name string, def, min, max time.Duration, help string) DurationVar {
	v := s.add(name, formatDuration(def), "duration", help)
	v.Range = formatDuration(min) + "–" + formatDuration(max)
	if max == Forever {
		v.Range = formatDuration(min) + " or more"
	}
	return DurationVar{v, def, min, max}
}

// Read returns the variable's value, or its default; a value out of the
// declared range is reported and the default used.
func (v DurationVar) Read(r *Reader) time.Duration {
	d := r.Duration(v.Name, v.def)
	if d < v.min || d > v.max {
		r.Fail(v.Name, "%s, want %s..%s", formatDuration(d), formatDuration(v.min), formatDuration(v.max))
		return v.def
	}
	return d
}

// BoolVar is a declared boolean variable.
type BoolVar struct {
	*Var
	def bool
}

// Bool declares a boolean variable.
func (s *Set) Bool(name string, def bool, help string) BoolVar {
	return BoolVar{s.add(name, strconv.FormatBool(def), "boolean", help), def}
}

// Read returns the variable's value, or its default.
func (v BoolVar) Read(r *Reader) bool { return r.Bool(v.Name, v.def) }

// FloatVar is a declared number variable.
type FloatVar struct {
	*Var
	def, min, max float64
}

// Float declares a number variable whose value must lie in [min, max].
func (s *Set) Float(name string, def, min, max float64, help string) FloatVar {
	v := s.add(name, strconv.FormatFloat(def, 'g', -1, 64), "number", help)
	v.Range = strconv.FormatFloat(min, 'g', -1, 64) + "–" + strconv.FormatFloat(max, 'g', -1, 64)
	return FloatVar{v, def, min, max}
}

// Read returns the variable's value, or its default; a value out of the
// declared range is reported and the default used.
func (v FloatVar) Read(r *Reader) float64 {
	f := r.Float(v.Name, v.def)
	if f < v.min || f > v.max {
		r.Fail(v.Name, "%g, want %g..%g", f, v.min, v.max)
		return v.def
	}
	return f
}

// FamilyVar is a declared family of variables, one per name the program
// knows (NATS_<USER>_PASSWORD for each bus user): the reference lists the
// pattern once.
type FamilyVar struct {
	*Var
	placeholder string
}

// Family declares variables named by pattern, whose placeholder (such as
// "<USER>") stands for a name in upper case.
func (s *Set) Family(pattern, placeholder, help string) FamilyVar {
	v := s.add(pattern, "", "string", help)
	v.Placeholder = placeholder
	return FamilyVar{v, placeholder}
}

// For is the variable of the family for one name.
func (v FamilyVar) For(name string) string {
	return strings.Replace(v.Name, v.placeholder, strings.ToUpper(name), 1)
}

// Read returns the family's variable for name, or "" when unset.
func (v FamilyVar) Read(r *Reader, name string) string { return r.String(v.For(name), "") }

// formatDuration writes whole hours and days as an operator would
// (720h rather than 720h0m0s); zero is "0".
func formatDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	s := d.String()
	for _, suffix := range []string{"m0s", "h0m"} {
		if len(s) > len(suffix) && s[len(s)-len(suffix):] == suffix {
			s = s[:len(s)-len(suffix)+1]
		}
	}
	return s
}
