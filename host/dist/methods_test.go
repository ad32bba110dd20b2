package dist

import (
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"slices"
	"strings"
	"testing"
)

// methodSigs parses file and returns "Name(params) results" for every
// exported method whose receiver is recv or *recv; parameter names are
// dropped, so only the types must agree.
func methodSigs(t *testing.T, file, recv string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
	list := func(fl *ast.FieldList) string {
		if fl == nil {
			return ""
		}
		var out []string
		for _, field := range fl.List {
			n := max(len(field.Names), 1)
			for range n {
				out = append(out, types.ExprString(field.Type))
			}
		}
		return strings.Join(out, ", ")
	}
	var sigs []string
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Recv == nil || !fd.Name.IsExported() {
			continue
		}
		rt := fd.Recv.List[0].Type
		if st, ok := rt.(*ast.StarExpr); ok {
			rt = st.X
		}
		if id, ok := rt.(*ast.Ident); !ok || id.Name != recv {
			continue
		}
		sigs = append(sigs, fd.Name.Name+"("+list(fd.Type.Params)+") ("+list(fd.Type.Results)+")")
	}
	slices.Sort(sigs)
	return sigs
}

// TestMethodSets keeps the three worlds interchangeable: the trainer holds
// one interface over Local and MPI, and its code must compile with and
// without the mpi tag, so Local, MPI (mpi.go) and MPI without the tag
// (mpi_nompi.go) have the same exported methods with the same types.
func TestMethodSets(t *testing.T) {
	local := methodSigs(t, "local.go", "Local")
	withTag := methodSigs(t, "mpi.go", "MPI")
	withoutTag := methodSigs(t, "mpi_nompi.go", "MPI")
	if len(local) < 13 {
		t.Fatalf("Local has %d methods, want at least 13: %v", len(local), local)
	}
	for _, tc := range []struct {
		name string
		got  []string
	}{{"mpi.go MPI", withTag}, {"mpi_nompi.go MPI", withoutTag}} {
		if !slices.Equal(tc.got, local) {
			t.Errorf("%s methods\n  %s\nwant those of Local\n  %s", tc.name, strings.Join(tc.got, "\n  "), strings.Join(local, "\n  "))
		}
	}
}
