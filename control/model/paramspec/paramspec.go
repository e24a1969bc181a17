// Package paramspec reads, from the model's source, the request parameters each API
// action's handler reads and the rules it reads them with: required or not, a fixed
// set of values, a default, a list (Name.1, Name.2, ...). The model's parameter table
// (control/model/params_gen.go) is generated from it, so the parameters eipctl offers
// and documents are the ones the server applies, and cannot drift from them: a test
// regenerates the table and compares.
//
// What counts as reading a parameter, within the model package, from each action's
// handler through the package's functions it calls:
//   - the name given to a Params accessor (required, oneOf, intIn, list, ipv4, text,
//     entryName, matches) on c.Params or a Params receiver;
//   - the name passed after a Params argument to a helper (idParam(c.Params, "X", ...));
//   - a literal key of c.Params, or of a Params receiver or argument;
//   - in a function that reads by a variable name, the names of its tables
//     ({"X", &e.Field} rows, "X": &e.Field entries) and the literals its callers give it.
package paramspec

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Spec is one parameter of an action.
type Spec struct {
	Name     string   // as the API spells it; for a list, without the ".N"
	Required bool     // read with required (or ipv4(name, true))
	List     bool     // Name.1, Name.2, ...
	Default  string   // oneOf's or intIn's default
	Values   []string // oneOf's accepted values
	Range    [2]int   // intIn's bounds, when set
}

// read is what one function reads of one parameter.
type read struct {
	required, list bool
	def            string
	values         []string
	intRange       *[2]int
}

// Extract reads the model package's non-test sources in dir and returns each
// registered action's parameters, sorted by name.
func Extract(dir string) (map[string][]Spec, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	var parsed []*ast.File
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || strings.HasSuffix(f, "_gen.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		file, err := parser.ParseFile(fset, f, src, 0)
		if err != nil {
			return nil, err
		}
		parsed = append(parsed, file)
	}
	consts := stringConsts(parsed)
	str := func(e ast.Expr) (string, bool) {
		switch x := e.(type) {
		case *ast.BasicLit:
			if x.Kind != token.STRING {
				return "", false
			}
			s, err := strconv.Unquote(x.Value)
			return s, err == nil
		case *ast.Ident:
			s, ok := consts[x.Name]
			return s, ok
		}
		return "", false
	}
	integer := func(e ast.Expr) (int, bool) {
		if b, ok := e.(*ast.BasicLit); ok && b.Kind == token.INT {
			n, err := strconv.Atoi(b.Value)
			return n, err == nil
		}
		if b, ok := e.(*ast.BinaryExpr); ok && b.Op == token.SHL { // 1<<30
			l, ok1 := b.X.(*ast.BasicLit)
			r, ok2 := b.Y.(*ast.BasicLit)
			if ok1 && ok2 {
				x, _ := strconv.Atoi(l.Value)
				y, _ := strconv.Atoi(r.Value)
				return x << y, true
			}
		}
		return 0, false
	}
	isParams := func(e ast.Expr) bool {
		switch x := e.(type) {
		case *ast.Ident:
			return x.Name == "p" || x.Name == "params"
		case *ast.SelectorExpr:
			return x.Sel.Name == "Params"
		}
		return false
	}
	isAddr := func(e ast.Expr) bool { u, ok := e.(*ast.UnaryExpr); return ok && u.Op == token.AND }
	accessors := map[string]bool{"required": true, "intIn": true, "oneOf": true, "list": true, "requiredList": true, "ipv4": true,
		"text": true, "entryName": true, "matches": true, "match": true, "commaSet": true, "filters": true,
		"tagPairs": true, "tagFilter": true}

	reads := map[string]map[string]*read{} // function -> parameter -> how
	calls := map[string]map[string]bool{}
	type lit struct {
		pos   int
		value string
	}
	callLits := map[[2]string][]lit{}
	requiredArg := map[string]map[int]bool{} // function -> positions of arguments it requires by name
	requiredRows := map[string]bool{}        // functions that require every row of their table
	nameArg := map[string]map[int]bool{}     // function -> positions of arguments it reads as names
	markName := func(fn string, pos int) {
		if nameArg[fn] == nil {
			nameArg[fn] = map[int]bool{}
		}
		nameArg[fn][pos] = true
	}
	byName := map[string]bool{}      // reads parameters by a variable name
	takesParams := map[string]bool{} // Params methods and functions given a Params
	handlers := map[string]string{}
	for _, file := range parsed {
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			name := fn.Name.Name
			fields := append([]*ast.Field{}, fn.Type.Params.List...)
			if fn.Recv != nil {
				fields = append(fields, fn.Recv.List...)
			}
			for _, f := range fields {
				if id, ok := f.Type.(*ast.Ident); ok && id.Name == "Params" {
					takesParams[name] = true
				}
			}
			if reads[name] == nil {
				reads[name], calls[name] = map[string]*read{}, map[string]bool{}
			}
			argPos := map[string]int{}
			pos := 0
			for _, f := range fn.Type.Params.List {
				for _, n := range f.Names {
					argPos[n.Name] = pos
					pos++
				}
				if len(f.Names) == 0 {
					pos++
				}
			}
			note := func(param string) *read {
				r := reads[name][param]
				if r == nil {
					r = &read{}
					reads[name][param] = r
				}
				return r
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				switch x := n.(type) {
				case *ast.CallExpr:
					var callee string
					sel, _ := x.Fun.(*ast.SelectorExpr)
					switch fun := x.Fun.(type) {
					case *ast.Ident:
						callee = fun.Name
					case *ast.SelectorExpr:
						callee = fun.Sel.Name
					}
					calls[name][callee] = true
					for i, a := range x.Args {
						if v, ok := str(a); ok {
							callLits[[2]string{name, callee}] = append(callLits[[2]string{name, callee}], lit{i, v})
						}
					}
					if callee == "register" && len(x.Args) >= 3 {
						action, _ := str(x.Args[0])
						if h, ok := x.Args[2].(*ast.SelectorExpr); ok {
							handlers[action] = h.Sel.Name
						}
					}
					if accessors[callee] && len(x.Args) > 0 && (sel == nil || isParams(sel.X)) {
						param, ok := str(x.Args[0])
						if !ok {
							if sel != nil {
								byName[name] = true
								if id, isID := x.Args[0].(*ast.Ident); isID {
									if pos, isArg := argPos[id.Name]; isArg {
										markName(name, pos)
									}
								}
								// required(tableParam): the caller's name at that position is
								// required; required(row.name): the table's rows are.
								if callee == "required" {
									if id, isID := x.Args[0].(*ast.Ident); isID {
										if pos, isArg := argPos[id.Name]; isArg {
											if requiredArg[name] == nil {
												requiredArg[name] = map[int]bool{}
											}
											requiredArg[name][pos] = true
										}
									} else if _, isSel := x.Args[0].(*ast.SelectorExpr); isSel {
										requiredRows[name] = true
									}
								}
							}
							break
						}
						r := note(param)
						switch callee {
						case "required":
							r.required = true
						case "ipv4":
							if len(x.Args) > 1 {
								if id, ok := x.Args[1].(*ast.Ident); ok && id.Name == "true" {
									r.required = true
								}
							}
						case "list", "filters", "tagPairs", "tagFilter":
							r.list = true
						case "requiredList":
							r.list, r.required = true, true
						case "oneOf":
							if len(x.Args) > 1 {
								r.def, _ = str(x.Args[1])
							}
							for _, a := range x.Args[2:] {
								if v, ok := str(a); ok {
									r.values = append(r.values, v)
								}
							}
						case "intIn":
							if len(x.Args) == 4 {
								def, ok1 := integer(x.Args[1])
								lo, ok2 := integer(x.Args[2])
								hi, ok3 := integer(x.Args[3])
								if ok1 && ok2 && ok3 {
									r.def, r.intRange = strconv.Itoa(def), &[2]int{lo, hi}
								}
							}
						}
					}
					for i := 0; i+1 < len(x.Args); i++ {
						if isParams(x.Args[i]) {
							if v, ok := str(x.Args[i+1]); ok {
								note(v)
							}
						}
					}
				case *ast.IndexExpr:
					if !isParams(x.X) {
						break
					}
					if v, ok := str(x.Index); ok {
						note(v)
					} else {
						byName[name] = true
						if id, isID := x.Index.(*ast.Ident); isID {
							if pos, isArg := argPos[id.Name]; isArg {
								markName(name, pos)
							}
						}
					}
				}
				return true
			})
			if byName[name] {
				ast.Inspect(fn.Body, func(n ast.Node) bool {
					cl, ok := n.(*ast.CompositeLit)
					if !ok {
						return true
					}
					for _, e := range cl.Elts {
						switch row := e.(type) {
						case *ast.KeyValueExpr:
							if v, ok := str(row.Key); ok && isAddr(row.Value) {
								note(v)
							}
						case *ast.CompositeLit:
							if len(row.Elts) == 2 && isAddr(row.Elts[1]) {
								if v, ok := str(row.Elts[0]); ok {
									note(v).required = note(v).required || requiredRows[name]
								}
							}
						}
					}
					return true
				})
			}
		}
	}
	// A function reading by names it is given reads the names its callers give it.
	for pair, lits := range callLits {
		if byName[pair[1]] && !takesParams[pair[1]] {
			for _, l := range lits {
				if !nameArg[pair[1]][l.pos] {
					continue
				}
				r := reads[pair[0]][l.value]
				if r == nil {
					r = &read{}
					reads[pair[0]][l.value] = r
				}
				r.required = r.required || requiredArg[pair[1]][l.pos]
			}
		}
	}
	out := map[string][]Spec{}
	for action, h := range handlers {
		merged := map[string]*read{}
		seen := map[string]bool{}
		var walk func(string)
		walk = func(fn string) {
			if seen[fn] {
				return
			}
			seen[fn] = true
			for p, r := range reads[fn] {
				m := merged[p]
				if m == nil {
					m = &read{}
					merged[p] = m
				}
				m.required = m.required || r.required
				m.list = m.list || r.list
				if r.def != "" {
					m.def = r.def
				}
				if len(r.values) > 0 {
					m.values = r.values
				}
				if r.intRange != nil {
					m.intRange = r.intRange
				}
			}
			for c := range calls[fn] {
				if _, ok := reads[c]; ok {
					walk(c)
				}
			}
		}
		walk(h)
		var specs []Spec
		for p, r := range merged {
			s := Spec{Name: p, Required: r.required, List: r.list, Default: r.def, Values: r.values}
			if r.intRange != nil {
				s.Range = *r.intRange
			}
			specs = append(specs, s)
		}
		sort.Slice(specs, func(i, j int) bool { return specs[i].Name < specs[j].Name })
		out[action] = specs
	}
	return out, nil
}

// stringConsts are the package's string constants (TypeEcs = "EcsInstance").
func stringConsts(files []*ast.File) map[string]string {
	out := map[string]string{}
	for _, f := range files {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i < len(vs.Values) {
						if b, ok := vs.Values[i].(*ast.BasicLit); ok && b.Kind == token.STRING {
							if v, err := strconv.Unquote(b.Value); err == nil {
								out[n.Name] = v
							}
						}
					}
				}
			}
		}
	}
	return out
}

// Format writes the table as the model's generated Go file.
func Format(specs map[string][]Spec) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("// Code generated by go run ./paramspec/genparams; DO NOT EDIT.\n\n")
	b.WriteString("package model\n\n")
	b.WriteString("// actionParams are the parameters each action's handler reads, with the rules it\n")
	b.WriteString("// reads them with, as paramspec finds them in this package's source.\n")
	b.WriteString("var actionParams = map[string][]Param{\n")
	actions := make([]string, 0, len(specs))
	for a := range specs {
		actions = append(actions, a)
	}
	sort.Strings(actions)
	for _, a := range actions {
		fmt.Fprintf(&b, "\t%q: {\n", a)
		for _, s := range specs[a] {
			fmt.Fprintf(&b, "\t\t{Name: %q", s.Name)
			if s.Required {
				b.WriteString(", Required: true")
			}
			if s.List {
				b.WriteString(", List: true")
			}
			if s.Default != "" {
				fmt.Fprintf(&b, ", Default: %q", s.Default)
			}
			if len(s.Values) > 0 {
				fmt.Fprintf(&b, ", Values: %#v", s.Values)
			}
			if s.Range != [2]int{} {
				fmt.Fprintf(&b, ", Range: [2]int{%d, %d}", s.Range[0], s.Range[1])
			}
			b.WriteString("},\n")
		}
		b.WriteString("\t},\n")
	}
	b.WriteString("}\n")
	return format.Source(b.Bytes())
}
