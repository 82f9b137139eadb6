package config

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decoder turns YAML bytes into a Config while keeping what yaml.v3's strict mode
// loses: the line of every value (for validation messages) and the list of allowed
// keys when one is unknown.
type decoder struct {
	file   string
	lookup func(string) (string, bool)
	lines  map[string]int
	errs   problems
}

func (d *decoder) decode(data []byte, out *Config) error {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return d.yamlError(err)
	}
	if len(root.Content) == 0 {
		return fmt.Errorf("%s: the file is empty: it needs at least a regions list", d.file)
	}
	doc := root.Content[0]
	d.walk(doc, reflect.TypeOf(*out), "")
	if err := d.errs.err(d.file); err != nil {
		return err
	}
	if err := doc.Decode(out); err != nil {
		return d.yamlError(err)
	}
	return nil
}

// yamlLine matches the "line N: " that yaml.v3 puts in its messages.
var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

// yamlError rewrites yaml.v3's "yaml: line 3: msg" as "file:3: msg".
func (d *decoder) yamlError(err error) error {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var p problems
	for _, m := range msgs {
		line := 0
		if sub := yamlLine.FindStringSubmatch(m); sub != nil {
			line, _ = strconv.Atoi(sub[1])
			m = m[len(sub[0]):]
		}
		p.add(line, "%s", strings.TrimPrefix(m, "yaml: "))
	}
	return p.err(d.file)
}

// walk checks node against the Go type t: known keys only, the right kinds, and
// ${VAR} expansion in scalars. It records the line of every path it visits.
func (d *decoder) walk(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if path != "" {
		d.lines[path] = n.Line
	}
	if isNull(n) {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		d.walkStruct(n, t, path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errs.add(n.Line, "%s must be a mapping of keys to values, not a %s", describe(path), kindName(n.Kind))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			d.walk(n.Content[i+1], t.Elem(), path+"."+n.Content[i].Value)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errs.add(n.Line, "%s must be a list", describe(path))
			return
		}
		for i, item := range n.Content {
			d.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	default:
		if n.Kind != yaml.ScalarNode {
			d.errs.add(n.Line, "%s must be a single value, not a %s", describe(path), kindName(n.Kind))
			return
		}
		d.expand(n, path)
	}
}

func (d *decoder) walkStruct(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.MappingNode {
		d.errs.add(n.Line, "%s must be a mapping of keys to values, not a %s", describe(path), kindName(n.Kind))
		return
	}
	fields := yamlFields(t)
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		f, ok := fields[key.Value]
		if !ok {
			d.errs.add(key.Line, "unknown key %q in %s; allowed: %s", key.Value, describe(path), strings.Join(sortedKeys(fields), ", "))
			continue
		}
		child := key.Value
		if path != "" {
			child = path + "." + key.Value
		}
		d.walk(val, f.Type, child)
		d.lines[child] = key.Line // point at the key, not at a nested value's first line
	}
}

// envRef matches ${NAME} and ${NAME:-default}.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expand replaces ${VAR} references in a scalar. A plain (unquoted) scalar gets its
// tag re-resolved afterwards so that "port: ${PORT}" still decodes as a number.
func (d *decoder) expand(n *yaml.Node, path string) {
	if !strings.Contains(n.Value, "${") {
		return
	}
	n.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
		m := envRef.FindStringSubmatch(ref)
		if v, ok := d.lookup(m[1]); ok {
			return v
		}
		if m[2] != "" {
			return m[3]
		}
		d.errs.add(n.Line, "%s uses ${%s}, which is not set in the environment; set it or write ${%s:-default}", describe(path), m[1], m[1])
		return ref
	})
	if n.Style == 0 {
		n.Tag = ""
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// yamlFields maps each yaml key of struct type t to its field.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.Anonymous && opts == "inline" {
			maps.Copy(out, yamlFields(f.Type)) // an embedded struct's keys are the parent's
			continue
		}
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		out[name] = f
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

func describe(path string) string {
	if path == "" {
		return "the top level"
	}
	return path
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "single value"
	default:
		return "document"
	}
}

// problems collects errors with their line so they can be reported in file order.
type problems []problem

type problem struct {
	line int
	msg  string
}

func (p *problems) add(line int, format string, args ...any) {
	*p = append(*p, problem{line: line, msg: fmt.Sprintf(format, args...)})
}

// err returns one error listing every problem as "file:line: msg", sorted by line.
func (p problems) err(file string) error {
	if len(p) == 0 {
		return nil
	}
	sort.SliceStable(p, func(i, j int) bool { return p[i].line < p[j].line })
	errs := make([]error, len(p))
	for i, pr := range p {
		if pr.line > 0 {
			errs[i] = fmt.Errorf("%s:%d: %s", file, pr.line, pr.msg)
		} else {
			errs[i] = fmt.Errorf("%s: %s", file, pr.msg)
		}
	}
	return errors.Join(errs...)
}
