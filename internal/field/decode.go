package field

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Decode reads the JSON value raw into v strictly: every key v's type does not have and every
// value of the wrong type is an error at its full path under p (kplane:backup.schedules[0].ttl),
// all of them at once; v is filled only when there is none. Empty raw leaves v as it is.
func Decode(p *Path, raw string, v any) ErrorList {
	if strings.TrimSpace(raw) == "" {
		return nil
	}
	var generic any
	if err := json.Unmarshal([]byte(raw), &generic); err != nil {
		return ErrorList{Invalid(p, nil, "not valid YAML/JSON: "+err.Error())}
	}
	var errs ErrorList
	check(&errs, p, generic, reflect.TypeOf(v).Elem())
	if len(errs) > 0 {
		return errs
	}
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		return ErrorList{Invalid(p, nil, err.Error())}
	}
	return nil
}

var unmarshaler = reflect.TypeFor[json.Unmarshaler]()

// check compares a decoded JSON value with the Go type it is read into.
func check(errs *ErrorList, p *Path, v any, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil || t.Kind() == reflect.Interface || reflect.PointerTo(t).Implements(unmarshaler) {
		return
	}
	wrong := func(want string) {
		errs.Add(Invalid(p, fmt.Sprint(v), fmt.Sprintf("expected %s, found %s", want, jsonKind(v))))
	}
	switch t.Kind() {
	case reflect.String:
		if _, ok := v.(string); !ok {
			wrong("a string")
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			wrong("true or false")
		}
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		if _, ok := v.(float64); !ok {
			wrong("a number")
		}
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			wrong("a list")
			return
		}
		for i, e := range list {
			check(errs, p.Index(i), e, t.Elem())
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			wrong("a mapping")
			return
		}
		for _, k := range sortedKeys(m) {
			check(errs, p.Key(k), m[k], t.Elem())
		}
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			wrong("a mapping")
			return
		}
		fields := jsonFields(t)
		for _, k := range sortedKeys(m) {
			ft, known := fields[k]
			if !known {
				errs.Add(Invalid(p.Child(k), nil, "unknown key; known keys: "+strings.Join(sortedKeys(fields), ", ")))
				continue
			}
			check(errs, p.Child(k), m[k], ft)
		}
	}
}

// jsonFields are the keys encoding/json reads into a struct type, embedded structs' included.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	var embedded []reflect.Type
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
			embedded = append(embedded, ft)
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	// An embedded struct's keys are promoted unless the outer struct has the same key.
	for _, e := range embedded {
		for k, v := range jsonFields(e) {
			if _, shadowed := out[k]; !shadowed {
				out[k] = v
			}
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "true/false"
	case float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}
