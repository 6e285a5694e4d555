// Package field is how kplane's arguments report what is wrong: every error at once, each at
// the path a user types in the environment file (kplane:security.teams[0].name), saying the
// value, what is wrong and the fix. k8s.io/apimachinery's validation/field is the model.
//
// A component's Validate reports paths from its own arguments (teams[0].name); the stack that
// reads them from config puts them under the config key (Under).
package field

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Path is where a value sits in the arguments: a chain of keys and list indexes.
type Path struct {
	parent *Path
	name   string // a key, or "[i]" for an index
}

// NewPath starts a path at name (a config key or an argument's key).
func NewPath(name string, more ...string) *Path {
	p := &Path{name: name}
	for _, m := range more {
		p = p.Child(m)
	}
	return p
}

// Root is the path of the arguments themselves: children of Root print without a leading dot.
func Root() *Path { return nil }

// Child is the key name below p.
func (p *Path) Child(name string, more ...string) *Path {
	c := &Path{parent: p, name: name}
	for _, m := range more {
		c = c.Child(m)
	}
	return c
}

// Index is the list element i of p.
func (p *Path) Index(i int) *Path { return &Path{parent: p, name: "[" + strconv.Itoa(i) + "]"} }

// Key is the map entry k of p.
func (p *Path) Key(k string) *Path { return &Path{parent: p, name: "[" + k + "]"} }

// String is the path as the user writes it: teams[0].name.
func (p *Path) String() string {
	if p == nil {
		return ""
	}
	parent := p.parent.String()
	switch {
	case parent == "":
		return p.name
	case strings.HasPrefix(p.name, "["):
		return parent + p.name
	}
	return parent + "." + p.name
}

// Error is one thing wrong with the arguments.
type Error struct {
	Path string
	// Value is the offending value, quoted in the message; nil when the value is missing.
	Value any
	// Detail says what is wrong and the fix.
	Detail string
}

func (e *Error) Error() string {
	switch v := reflect.ValueOf(e.Value); {
	case e.Value == nil:
		return e.Path + ": " + e.Detail
	case v.Kind() == reflect.String: // typed enums too
		return fmt.Sprintf("%s %q: %s", e.Path, v.String(), e.Detail)
	default:
		return fmt.Sprintf("%s %v: %s", e.Path, e.Value, e.Detail)
	}
}

// Invalid: value at p is wrong; detail says why and what to write instead.
func Invalid(p *Path, value any, detail string) *Error {
	return &Error{Path: p.String(), Value: value, Detail: detail}
}

// Required: nothing at p, and there must be; detail says what to give.
func Required(p *Path, detail string) *Error {
	return &Error{Path: p.String(), Detail: "required; " + detail}
}

// NotSupported: value at p is not one of allowed ("" among them: the value may be left unset).
func NotSupported[T ~string](p *Path, value T, allowed ...T) *Error {
	var quoted []string
	optional := false
	for _, a := range allowed {
		if a == "" {
			optional = true
			continue
		}
		quoted = append(quoted, strconv.Quote(string(a)))
	}
	detail := "use " + strings.Join(quoted, " or ")
	if len(quoted) > 2 {
		detail = "use one of " + strings.Join(quoted, ", ")
	}
	if optional {
		detail += ", or leave it unset for the default"
	}
	return &Error{Path: p.String(), Value: string(value), Detail: detail}
}

// Duplicate: value at p was declared before.
func Duplicate(p *Path, value any) *Error {
	return &Error{Path: p.String(), Value: value, Detail: "declared twice"}
}

// Enum checks value against allowed ("" allowed when it is listed): nil, or NotSupported.
func Enum[T ~string](p *Path, value T, allowed ...T) *Error {
	if slices.Contains(allowed, value) {
		return nil
	}
	return NotSupported(p, value, allowed...)
}

// ErrorList is every error found; as an error it prints one per line.
type ErrorList []*Error

// Add appends the errors that are not nil.
func (l *ErrorList) Add(errs ...*Error) {
	for _, e := range errs {
		if e != nil {
			*l = append(*l, e)
		}
	}
}

// Addf appends an Invalid error at p with a formatted detail.
func (l *ErrorList) Addf(p *Path, value any, format string, args ...any) {
	*l = append(*l, Invalid(p, value, fmt.Sprintf(format, args...)))
}

// Merge appends the errors of err: an ErrorList's under p, or any other error at p.
func (l *ErrorList) Merge(p *Path, err error) {
	if err == nil {
		return
	}
	var list ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			*l = append(*l, &Error{Path: join(p.String(), e.Path), Value: e.Value, Detail: e.Detail})
		}
		return
	}
	*l = append(*l, &Error{Path: p.String(), Detail: err.Error()})
}

func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	if len(lines) > 1 {
		return fmt.Sprintf("%d errors:\n  %s", len(lines), strings.Join(lines, "\n  "))
	}
	return strings.Join(lines, "")
}

// OrNil is l as an error: nil when there is none.
func (l ErrorList) OrNil() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// Under puts err's paths under root (a config key such as "kplane:security"); an error that is
// not an ErrorList is prefixed with root.
func Under(root string, err error) error {
	if err == nil {
		return nil
	}
	var list ErrorList
	if !errors.As(err, &list) {
		return fmt.Errorf("%s: %w", root, err)
	}
	out := make(ErrorList, len(list))
	for i, e := range list {
		out[i] = &Error{Path: join(root, e.Path), Value: e.Value, Detail: e.Detail}
	}
	return out
}

func join(root, path string) string {
	switch {
	case root == "":
		return path
	case path == "":
		return root
	case strings.HasPrefix(path, "["):
		return root + path
	}
	return root + "." + path
}

// At is the path written out, with fmt verbs for the indexes: At("revisions[%d].name", i).
func At(format string, args ...any) *Path {
	s := fmt.Sprintf(format, args...)
	if s == "" {
		return nil
	}
	return &Path{name: s}
}

// Prefix puts prefix before every path of err's errors (a config namespace such as "kplane:");
// an error that is not an ErrorList is returned as it is.
func Prefix(prefix string, err error) error {
	var list ErrorList
	if !errors.As(err, &list) {
		return err
	}
	out := make(ErrorList, len(list))
	for i, e := range list {
		out[i] = &Error{Path: prefix + e.Path, Value: e.Value, Detail: e.Detail}
	}
	return out
}
