package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// The values schema is derived from values.yaml so that there is one place
// to document a value:
//
//   - a key's comment (the lines above it) is its description;
//   - its default gives its type; a mapping is an object that allows only
//     the keys it lists, a sequence is an array of items like its first
//     element;
//   - a comment line "+schema: {...}" merges JSON Schema keywords over the
//     derived ones. An object given "additionalProperties" becomes free
//     form (its default's keys are then examples, not a closed list); a
//     null default needs a "type".

const schemaMarker = "+schema:"

var (
	errNoType       = errors.New("null default without a +schema type")
	errBadMarker    = errors.New("bad +schema line")
	errNotAMapping  = errors.New("values.yaml is not a mapping")
	errUnknownValue = errors.New("unsupported YAML value")
)

// valuesSchema returns the JSON Schema (draft-07) of values.yaml.
func valuesSchema(values []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(values, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errNotAMapping
	}
	top, err := nodeSchema("", "", doc.Content[0])
	if err != nil {
		return nil, err
	}
	// Helm hands every chart a "global" object (shared with subcharts).
	top["properties"].(map[string]any)["global"] = map[string]any{
		"type": "object", "description": "Values shared with subcharts; unused by this chart.",
	}
	top["$schema"] = "http://json-schema.org/draft-07/schema#"
	top["title"] = "Values of the quill chart"
	out, err := json.MarshalIndent(top, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// nodeSchema derives the schema of one value; path names it in errors and
// comment is the comment of its key.
func nodeSchema(path, comment string, n *yaml.Node) (map[string]any, error) {
	desc, extra, err := parseComment(comment)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s := map[string]any{}
	if desc != "" {
		s["description"] = desc
	}
	_, free := extra["additionalProperties"]
	switch n.Kind {
	case yaml.MappingNode:
		s["type"] = "object"
		if free {
			break // free form: the default only shows an example
		}
		props := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			child, err := nodeSchema(join(path, k.Value), k.HeadComment, v)
			if err != nil {
				return nil, err
			}
			props[k.Value] = child
		}
		s["properties"] = props
		s["additionalProperties"] = false
	case yaml.SequenceNode:
		s["type"] = "array"
		if _, ok := extra["items"]; !ok && len(n.Content) > 0 {
			item, err := nodeSchema(path+"[]", "", n.Content[0])
			if err != nil {
				return nil, err
			}
			s["items"] = item
		}
		if def, err := decode(n); err == nil {
			s["default"] = def
		}
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			s["type"] = "string"
		case "!!int":
			s["type"] = "integer"
		case "!!float":
			s["type"] = "number"
		case "!!bool":
			s["type"] = "boolean"
		case "!!null":
			if _, ok := extra["type"]; !ok {
				return nil, fmt.Errorf("%s: %w", path, errNoType)
			}
		default:
			return nil, fmt.Errorf("%s: %w %s", path, errUnknownValue, n.Tag)
		}
		def, err := decode(n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		s["default"] = def
	default:
		return nil, fmt.Errorf("%s: %w (kind %d)", path, errUnknownValue, n.Kind)
	}
	maps.Copy(s, extra)
	return s, nil
}

// parseComment splits a key's comment into its description and its
// +schema keywords.
func parseComment(comment string) (string, map[string]any, error) {
	var desc []string
	extra := map[string]any{}
	for line := range strings.SplitSeq(comment, "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#"))
		if rest, ok := strings.CutPrefix(line, schemaMarker); ok {
			var kw map[string]any
			if err := json.Unmarshal([]byte(rest), &kw); err != nil {
				return "", nil, fmt.Errorf("%w %q: %w", errBadMarker, line, err)
			}
			maps.Copy(extra, kw)
			continue
		}
		if line != "" {
			desc = append(desc, line)
		}
	}
	return strings.Join(desc, " "), extra, nil
}

// decode turns a YAML node into the JSON value of its default.
func decode(n *yaml.Node) (any, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		return strconv.ParseInt(n.Value, 0, 64)
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
