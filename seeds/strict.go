package seeds

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// strictDecoder decodes a YAML node tree into a struct, collecting every
// unknown key, duplicate key and wrong type with its line instead of stopping
// at the first, and remembering the line of every field it saw so that the
// semantic checks after it can point at the right line too.
type strictDecoder struct {
	file  string
	errs  *Errors
	lines map[string]int
}

func newStrictDecoder(file string, errs *Errors) *strictDecoder {
	return &strictDecoder{file: file, errs: errs, lines: map[string]int{}}
}

// parse reads YAML text into v. A syntax error is reported with its line.
func (d *strictDecoder) parse(data []byte, v any) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		d.errs.add(d.file, yamlErrLine(err), "", "not valid YAML: "+strings.TrimPrefix(err.Error(), "yaml: "))
		return
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		d.errs.add(d.file, 1, "", "the file is empty; see docs/site-file.md for the fields")
		return
	}
	d.decode(root.Content[0], reflect.ValueOf(v).Elem(), "")
}

// line returns the line where field path was seen, or the line of its
// nearest parent, so that an error about a missing field points at the
// object that lacks it.
func (d *strictDecoder) line(path string) int {
	for p := path; ; {
		if l, ok := d.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			return d.lines[""]
		}
		p = p[:i]
	}
}

func (d *strictDecoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.errs.add(d.file, n.Line, path, fmt.Sprintf(format, args...))
}

func (d *strictDecoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if _, ok := d.lines[path]; !ok {
		d.lines[path] = n.Line
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an explicit null leaves the zero value, as an absent key does
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, path, "want a mapping of fields (%s), got %s", strings.Join(fieldNames(v.Type()), ", "), describe(n))
			return
		}
		fields := fieldIndex(v.Type())
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			sub := join(path, k.Value)
			if first, dup := seen[k.Value]; dup {
				d.errorf(k, sub, "duplicate key; it is already set on line %d", first)
				continue
			}
			seen[k.Value] = k.Line
			idx, ok := fields[k.Value]
			if !ok {
				d.errorf(k, sub, "unknown field %q; valid fields here are: %s", k.Value, strings.Join(fieldNames(v.Type()), ", "))
				continue
			}
			d.lines[sub] = k.Line
			d.decode(val, v.Field(idx), sub)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "want a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, path, "want a mapping, got %s", describe(n))
			return
		}
		m := reflect.MakeMap(v.Type())
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			sub := join(path, k.Value)
			if first, dup := seen[k.Value]; dup {
				d.errorf(k, sub, "duplicate key; it is already set on line %d", first)
				continue
			}
			seen[k.Value] = k.Line
			d.lines[sub] = k.Line
			ev := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, ev, sub)
			m.SetMapIndex(reflect.ValueOf(k.Value), ev)
		}
		v.Set(m)
	default:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "want %s, got %s", kindName(v.Kind()), describe(n))
			return
		}
		if v.Kind() == reflect.String && n.Tag != "!!str" {
			// Keep what the user typed (a bare 0600 or 10.0 is meant as text
			// here), but refuse booleans and numbers where a name is expected
			// only if yaml cannot represent them as text, which it always can.
			v.SetString(n.Value)
			return
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.errorf(n, path, "want %s, got %q", kindName(v.Kind()), n.Value)
		}
	}
}

func (es *Errors) add(file string, line int, field, msg string) {
	*es = append(*es, FieldError{File: file, Line: line, Field: field, Msg: msg})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func fieldIndex(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		if name := yamlName(t.Field(i)); name != "" {
			m[name] = i
		}
	}
	return m
}

func fieldNames(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		if name := yamlName(t.Field(i)); name != "" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

func yamlName(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	if tag == "-" || !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(tag, ",")
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "a whole number"
	case reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return k.String()
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// yamlErrLine pulls "line N" out of a yaml.v3 syntax error.
func yamlErrLine(err error) int {
	var line int
	msg := err.Error()
	if i := strings.Index(msg, "line "); i >= 0 {
		fmt.Sscanf(msg[i:], "line %d", &line)
	}
	return line
}
