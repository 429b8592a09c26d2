package query

import (
	"encoding/json"
	"strconv"
	"strings"
)

// sqlBuilder accumulates SQL text and its parameters in order. Every value
// that comes from the query text (paths, constants) is a parameter; the SQL
// text itself only ever contains fixed fragments written here.
type sqlBuilder struct {
	b    strings.Builder
	args []any
	seen map[any]int // arg value → its parameter number
}

func (s *sqlBuilder) sql(frag string) { s.b.WriteString(frag) }

// arg writes a numbered parameter "?N" whose value is v. Equal values share
// one parameter: a path used twenty times is bound once, which keeps long
// conditions cheap to bind.
func (s *sqlBuilder) arg(v any) {
	if s.seen == nil {
		s.seen = map[any]int{}
	}
	n, ok := s.seen[v]
	if !ok {
		s.args = append(s.args, v)
		n = len(s.args)
		s.seen[v] = n
	}
	s.b.WriteString("?" + strconv.Itoa(n))
}

// jsonPath is the SQLite JSON path of p: $."seg1"."seg2". Segments are
// identifiers ([A-Za-z_$][A-Za-z0-9_$]*), so they never contain a quote.
func jsonPath(p Path) string {
	var b strings.Builder
	b.WriteString("$")
	for _, s := range p {
		b.WriteString(`."` + s + `"`)
	}
	return b.String()
}

// The twin document column; the compiled SQL reads twin_docs (see Execute).
const docCol = "doc"

// typeOf writes json_type(doc, path): NULL when the property is undefined,
// else 'null', 'true', 'false', 'integer', 'real', 'text', 'array' or 'object'.
func (s *sqlBuilder) typeOf(p Path) {
	s.sql("json_type(" + docCol + ", ")
	s.arg(jsonPath(p))
	s.sql(")")
}

// valueOf writes json_extract(doc, path): the SQL value of a primitive.
func (s *sqlBuilder) valueOf(p Path) {
	s.sql("json_extract(" + docCol + ", ")
	s.arg(jsonPath(p))
	s.sql(")")
}

// typeFamily is the SQL set of json_type values a literal compares with.
func typeFamily(l Literal) string {
	switch l.Kind {
	case LitString:
		return "('text')"
	case LitNumber:
		return "('integer','real')"
	case LitBool:
		return "('true','false')"
	default:
		return "('null')"
	}
}

// literalValue is the SQL value json_extract yields for a JSON value equal to l.
func literalValue(l Literal) any {
	switch l.Kind {
	case LitString:
		return l.Str
	case LitNumber:
		if l.Num == float64(int64(l.Num)) {
			return int64(l.Num)
		}
		return l.Num
	case LitBool:
		if l.Bool {
			return int64(1)
		}
		return int64(0)
	default:
		return nil
	}
}

// cond writes c as an SQL expression with SQL's three-valued logic standing
// for the query language's undefined: a comparison whose operands are not
// primitives of the same type is NULL (undefined), NOT NULL is NULL, and a
// row is returned only when the WHERE condition is true.
func (s *sqlBuilder) cond(c Cond) {
	switch c := c.(type) {
	case Logic:
		// A chain "a OR b OR c …" parses left-deep; SQLite refuses
		// expression trees deeper than 1000, so emit it balanced (AND and
		// OR are associative in three-valued logic too).
		s.balanced(c.Op, flatten(c.Op, c, nil))
	case Not:
		s.sql("(NOT ")
		s.cond(c.X)
		s.sql(")")
	case Compare:
		s.compare(c)
	case Member:
		s.member(c)
	case Func:
		s.function(c)
	case Truthy:
		// true and false are themselves; anything else is undefined.
		s.sql("(CASE ")
		s.typeOf(c.X)
		s.sql(" WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)")
	}
}

// flatten lists the operands of a chain of op.
func flatten(op string, c Cond, out []Cond) []Cond {
	if l, ok := c.(Logic); ok && l.Op == op {
		return flatten(op, l.R, flatten(op, l.L, out))
	}
	return append(out, c)
}

// balanced writes operands joined by op as a balanced tree.
func (s *sqlBuilder) balanced(op string, operands []Cond) {
	if len(operands) == 1 {
		s.cond(operands[0])
		return
	}
	mid := len(operands) / 2
	s.sql("(")
	s.balanced(op, operands[:mid])
	s.sql(" " + op + " ")
	s.balanced(op, operands[mid:])
	s.sql(")")
}

// member writes x IN [..] / x NIN [..]: true when x equals an element of
// its own type, false when x is a primitive equal to none, undefined when x
// is undefined, an object or an array; NIN is the negation. The list is one
// parameter, a JSON array read with json_each, however long it is.
func (s *sqlBuilder) member(c Member) {
	list := make([]any, len(c.List))
	for i, l := range c.List {
		switch l.Kind {
		case LitString:
			list[i] = l.Str
		case LitNumber:
			list[i] = l.Num
		case LitBool:
			list[i] = l.Bool
		default:
			list[i] = nil
		}
	}
	arr, _ := json.Marshal(list) // strings, finite numbers, Booleans, nulls
	if c.Not {
		s.sql("(NOT ")
	}
	s.sql("(CASE WHEN ")
	s.typeOf(c.X)
	s.sql(" IN ('null','true','false','integer','real','text') THEN EXISTS (SELECT 1 FROM json_each(")
	s.arg(string(arr))
	s.sql(") AS e WHERE " + familyExpr("e.type") + " = ")
	s.family(c.X)
	s.sql(" AND (e.type = 'null' OR e.value = ")
	s.valueOf(c.X)
	s.sql(")) END)")
	if c.Not {
		s.sql(")")
	}
}

// familyExpr is the type family of a json_type value held by expr.
func familyExpr(expr string) string {
	return "(CASE " + expr + " WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number' WHEN 'true' THEN 'bool' WHEN 'false' THEN 'bool' ELSE " + expr + " END)"
}

func sqlOp(op string) string {
	if op == "!=" {
		return "<>"
	}
	return op
}

// compare writes a comparison of primitives of one type; anything else is NULL.
func (s *sqlBuilder) compare(c Compare) {
	lp, lIsPath := c.L.(Path)
	rp, rIsPath := c.R.(Path)
	switch {
	case lIsPath && rIsPath:
		// Both from the document: same type family, neither object nor array.
		s.sql("(CASE WHEN ")
		s.family(lp)
		s.sql(" = ")
		s.family(rp)
		s.sql(" AND ")
		s.typeOf(lp)
		s.sql(" NOT IN ('array','object') THEN ")
		s.valueOf(lp)
		s.sql(" " + sqlOp(c.Op) + " ")
		s.valueOf(rp)
		s.sql(" END)")
	default:
		path, lit, op := lp, Literal{}, c.Op
		if lIsPath {
			lit = c.R.(Literal)
		} else {
			path, lit = rp, c.L.(Literal)
			op = mirror(op)
		}
		s.sql("(CASE WHEN ")
		s.typeOf(path)
		s.sql(" IN " + typeFamily(lit) + " THEN ")
		if lit.Kind == LitNull {
			// null = null is true; null <> null is false; null < null etc. false.
			if op == "=" || op == "<=" || op == ">=" {
				s.sql("1")
			} else {
				s.sql("0")
			}
		} else {
			s.valueOf(path)
			s.sql(" " + sqlOp(op) + " ")
			s.arg(literalValue(lit))
		}
		s.sql(" END)")
	}
}

// mirror turns "lit op path" into "path op' lit".
func mirror(op string) string {
	switch op {
	case "<":
		return ">"
	case ">":
		return "<"
	case "<=":
		return ">="
	case ">=":
		return "<="
	}
	return op
}

// family writes the type family of a property: 'number' for integer and
// real, 'bool' for true and false, else json_type.
func (s *sqlBuilder) family(p Path) {
	s.sql("(CASE ")
	s.typeOf(p)
	s.sql(" WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number' WHEN 'true' THEN 'bool' WHEN 'false' THEN 'bool' ELSE ")
	s.typeOf(p)
	s.sql(" END)")
}

func (s *sqlBuilder) function(f Func) {
	switch f.Name {
	case FuncIsDefined:
		// Defined includes an explicit null.
		s.sql("(")
		s.typeOf(f.Path)
		s.sql(" IS NOT NULL)")
	case FuncStartsWith, FuncEndsWith:
		// substr, not LIKE: the argument's % and _ are plain characters.
		s.sql("(CASE WHEN ")
		s.typeOf(f.Path)
		s.sql(" = 'text' THEN ")
		if f.Arg == "" {
			s.sql("1")
		} else {
			s.sql("substr(")
			s.valueOf(f.Path)
			if f.Name == FuncStartsWith {
				s.sql(", 1, ")
				s.arg(int64(len([]rune(f.Arg))))
			} else {
				s.sql(", ")
				s.arg(-int64(len([]rune(f.Arg))))
			}
			s.sql(") = ")
			s.arg(f.Arg)
		}
		s.sql(" END)")
	}
}

// aggregate writes the SQL aggregate of f over the grouped rows. SUM, AVG,
// MIN and MAX take the numeric values only.
func (s *sqlBuilder) aggregate(f Field) {
	if f.Agg == AggCount {
		s.sql("COUNT(*)")
		return
	}
	s.sql(f.Agg + "(CASE WHEN ")
	s.typeOf(f.Path)
	s.sql(" IN ('integer','real') THEN ")
	s.valueOf(f.Path)
	s.sql(" END)")
}
