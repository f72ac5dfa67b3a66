package serve

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// openAPIDoc is the part of openapi.yaml the tests compare with the code.
type openAPIDoc struct {
	OpenAPI    string                          `yaml:"openapi"`
	Paths      map[string]map[string]yaml.Node `yaml:"paths"`
	Components struct {
		Schemas map[string]struct {
			Properties map[string]yaml.Node `yaml:"properties"`
		} `yaml:"schemas"`
	} `yaml:"components"`
}

func readOpenAPI(t *testing.T) openAPIDoc {
	var doc openAPIDoc
	require.NoError(t, yaml.Unmarshal(openAPI, &doc))
	require.True(t, strings.HasPrefix(doc.OpenAPI, "3."), "openapi %q", doc.OpenAPI)
	return doc
}

// TestOpenAPIMatchesRoutes: every route the server serves is in
// openapi.yaml with its method, and every operation there is served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := readOpenAPI(t)
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" || method == "summary" || method == "description" {
				continue
			}
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	s := &Server{opts: DefaultOptions(), met: newMetrics()}
	var served []string
	for _, r := range s.routeTable() {
		served = append(served, r.pattern)
	}
	slices.Sort(documented)
	slices.Sort(served)
	require.Equal(t, served, documented, "routes in routeTable (served) and paths in openapi.yaml (documented)")
}

// jsonFields are the JSON names of a struct's fields.
func jsonFields(v any) []string {
	var out []string
	rt := reflect.TypeOf(v)
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// TestOpenAPIMatchesSchemas: the request and response schemas name the
// JSON fields the handlers read and write.
func TestOpenAPIMatchesSchemas(t *testing.T) {
	doc := readOpenAPI(t)
	for _, tc := range []struct {
		schema string
		v      any
	}{
		{"PredictRequest", predictRequest{}},
		{"AutoRequest", autoRequest{}},
		{"Mask", maskOut{}},
		{"PredictResponse", predictResponse{}},
		{"AutoResponse", autoResponse{}},
		{"Model", modelInfo{}},
		{"Image", imageInfo{}},
	} {
		sch, ok := doc.Components.Schemas[tc.schema]
		require.True(t, ok, "schema %s", tc.schema)
		var props []string
		for p := range sch.Properties {
			props = append(props, p)
		}
		slices.Sort(props)
		require.Equal(t, jsonFields(tc.v), props, "schema %s", tc.schema)
	}
}
