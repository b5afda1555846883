package main

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// A manifest set is a folder of hand-written cluster-scoped manifests in
// config/ that the chart ships as one template, gated by a value.
type manifestSet struct {
	// source is the folder, relative to the repository root.
	source string
	// template is the file written under charts/quill/templates.
	template string
	// gate is the value that turns the whole set on.
	gate string
	// kinds are the kinds the set may hold, each with an extra gate ("" for
	// none) that must also be true.
	kinds map[string]string
}

var manifestSets = []manifestSet{
	{
		source:   "config/admission",
		template: "admission-policies.yaml",
		gate:     ".Values.admissionPolicies.enabled",
		kinds: map[string]string{
			"ValidatingAdmissionPolicy":        "",
			"ValidatingAdmissionPolicyBinding": "",
			"MutatingAdmissionPolicy":          ".Values.admissionPolicies.mutating.enabled",
			"MutatingAdmissionPolicyBinding":   ".Values.admissionPolicies.mutating.enabled",
		},
	},
	{
		source:   "config/rbac/roles",
		template: "rbac-roles.yaml",
		gate:     ".Values.rbac.roles.enabled",
		kinds:    map[string]string{"ClusterRole": ""},
	},
}

var (
	errManifestKind = errors.New("kind not allowed in this folder")
	errManifestMeta = errors.New("unsupported metadata")
)

// writeManifests writes each manifest set's template.
func writeManifests(root, chart string) error {
	for _, set := range manifestSets {
		out, err := set.render(root)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(chart, "templates", set.template), out, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// render returns the template text of the set: every document of every
// *.yaml file in the folder, in file order, with the chart's labels added.
func (s manifestSet) render(root string) ([]byte, error) {
	srcs, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(s.source), "*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(srcs) == 0 {
		return nil, fmt.Errorf("%s: no manifests", s.source)
	}
	slices.Sort(srcs)
	var b bytes.Buffer
	fmt.Fprintf(&b, header, s.source+"/*.yaml")
	fmt.Fprintf(&b, "{{- if %s }}\n", s.gate)
	for _, src := range srcs {
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		rel, _ := filepath.Rel(root, src)
		rel = filepath.ToSlash(rel)
		if bytes.Contains(data, []byte("{{")) {
			return nil, fmt.Errorf("%s: %w", rel, errTemplating)
		}
		for doc := range strings.SplitSeq(string(data), "\n---\n") {
			if err := s.renderDoc(&b, rel, doc); err != nil {
				return nil, fmt.Errorf("%s: %w", rel, err)
			}
		}
	}
	b.WriteString("{{- end }}\n")
	return b.Bytes(), nil
}

// renderDoc appends one document: its text as written, comments
// included, with the metadata block rebuilt around the chart's labels. The
// result is decoded again and compared with the source, so the template
// holds exactly what the API server would receive from the file.
func (s manifestSet) renderDoc(b *bytes.Buffer, source, doc string) error {
	// In the file every document ends with a line break (before "---" or
	// at the end), which a block scalar on its last line keeps.
	doc = strings.TrimRight(doc, "\n") + "\n"
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
		return err
	}
	if len(obj) == 0 {
		return nil
	}
	kind, _ := obj["kind"].(string)
	gate, ok := s.kinds[kind]
	if !ok {
		return fmt.Errorf("%w: %q", errManifestKind, kind)
	}
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	if name == "" {
		return fmt.Errorf("%w: %s without a name", errManifestMeta, kind)
	}
	for k := range meta {
		if k != "name" && k != "labels" && k != "annotations" {
			return fmt.Errorf("%w: %s %s has metadata.%s (cluster-scoped manifests carry name, labels and annotations only)", errManifestMeta, kind, name, k)
		}
	}

	// The metadata block runs from "metadata:" to the next top-level key.
	lines := strings.Split(strings.TrimRight(doc, "\n"), "\n")
	from := slices.Index(lines, "metadata:")
	if from < 0 {
		return fmt.Errorf("%w: %s %s: no top-level \"metadata:\" line", errManifestMeta, kind, name)
	}
	to := from + 1
	for to < len(lines) && (lines[to] == "" || strings.HasPrefix(lines[to], " ") || strings.HasPrefix(lines[to], "#")) {
		to++
	}
	var m strings.Builder
	fmt.Fprintf(&m, "metadata:\n  name: %s\n", name)
	for _, field := range []string{"annotations", "labels"} {
		values, _ := meta[field].(map[string]any)
		if len(values) == 0 && field == "annotations" {
			continue
		}
		fmt.Fprintf(&m, "  %s:\n", field)
		keys := slices.Sorted(maps.Keys(values))
		for _, k := range keys {
			fmt.Fprintf(&m, "    %s: %q\n", k, fmt.Sprint(values[k]))
		}
		if field == "labels" {
			m.WriteString(labelsInclude)
		}
	}
	text := strings.Join(lines[:from], "\n") + "\n" + m.String() + strings.Join(lines[to:], "\n") + "\n"
	if from == 0 {
		text = m.String() + strings.Join(lines[to:], "\n") + "\n"
	}

	var back map[string]any
	if err := yaml.Unmarshal([]byte(strings.Replace(text, labelsInclude, "", 1)), &back); err != nil {
		return fmt.Errorf("%s %s: rebuilt metadata does not parse: %w", kind, name, err)
	}
	for _, o := range []map[string]any{obj, back} {
		if md, _ := o["metadata"].(map[string]any); md != nil && md["labels"] == nil {
			delete(md, "labels")
		}
	}
	if !reflect.DeepEqual(obj, back) {
		return fmt.Errorf("%w: %s %s: rebuilding its metadata changed it", errManifestMeta, kind, name)
	}

	if gate != "" {
		fmt.Fprintf(b, "{{- if %s }}\n", gate)
	}
	fmt.Fprintf(b, "---\n# Source: %s\n%s", source, text)
	if gate != "" {
		b.WriteString("{{- end }}\n")
	}
	return nil
}

// labelsInclude adds the chart's labels inside a metadata.labels block.
const labelsInclude = "    {{- include \"quill.labels\" . | nindent 4 }}\n"
