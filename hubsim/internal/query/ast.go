package query

import (
	"strconv"
	"strings"
)

// Collection is the document collection a query reads.
type Collection int

const (
	// Devices is "FROM devices": device twins.
	Devices Collection = iota
	// Modules is "FROM devices.modules": module twins.
	Modules
)

func (c Collection) String() string {
	if c == Modules {
		return "devices.modules"
	}
	return "devices"
}

// Query is a parsed query.
type Query struct {
	// Top is the TOP n limit; negative when absent.
	Top int
	// Star is "SELECT *"; otherwise Fields lists the projections.
	Star    bool
	Fields  []Field
	From    Collection
	Where   Cond   // nil when absent
	GroupBy []Path // empty when absent
}

// Aggregate functions of a projection.
const (
	AggNone  = ""
	AggCount = "COUNT"
	AggSum   = "SUM"
	AggAvg   = "AVG"
	AggMin   = "MIN"
	AggMax   = "MAX"
)

// Field is one projection: a property path or an aggregate, with an alias.
type Field struct {
	Agg   string // AggNone for a plain path
	Path  Path   // the property (empty for COUNT())
	Alias string // "" when not given
}

// Name is the key the field has in a result row: the alias, else the last
// path segment, else "$<n>" (n counts from 1) for an unnamed aggregate.
func (f Field) Name(n int) string {
	switch {
	case f.Alias != "":
		return f.Alias
	case f.Agg == AggNone:
		return f.Path[len(f.Path)-1]
	default:
		return "$" + strconv.Itoa(n)
	}
}

// Path is a dotted property path into the twin document, e.g.
// tags.location.region.
type Path []string

func (p Path) String() string { return strings.Join(p, ".") }

// Cond is a WHERE condition.
type Cond interface {
	cond()
	write(b *strings.Builder)
}

// Logical operators.
const (
	OpAnd = "AND"
	OpOr  = "OR"
)

// Logic is "L AND R" or "L OR R".
type Logic struct {
	Op   string
	L, R Cond
}

// Not is "NOT X".
type Not struct{ X Cond }

// Compare is "L op R" with op one of = != <> < > <= >=.
type Compare struct {
	Op   string
	L, R Operand
}

// Member is "X IN [..]" or "X NIN [..]".
type Member struct {
	X    Path
	Not  bool // NIN
	List []Literal
}

// Func is IS_DEFINED(path), STARTSWITH(path, 'prefix') or ENDSWITH(path, 'suffix').
type Func struct {
	Name string // canonical upper-case name
	Path Path
	Arg  string // the string argument of STARTSWITH/ENDSWITH
}

// Truthy is a bare path used as a condition: true when the property is the
// Boolean true.
type Truthy struct{ X Path }

func (Logic) cond()   {}
func (Not) cond()     {}
func (Compare) cond() {}
func (Member) cond()  {}
func (Func) cond()    {}
func (Truthy) cond()  {}

// Operand is a side of a comparison: a Path or a Literal.
type Operand interface{ operand() }

func (Path) operand()    {}
func (Literal) operand() {}

// Literal kinds.
const (
	LitString = iota
	LitNumber
	LitBool
	LitNull
)

// Literal is a constant: a string, number, Boolean or null.
type Literal struct {
	Kind int
	Str  string  // LitString
	Num  float64 // LitNumber
	Bool bool    // LitBool
}

// String renders q in canonical form: keywords upper case, single-quoted
// strings, explicit parentheses around every AND/OR/NOT operand. Parsing the
// result gives back an equal Query.
func (q *Query) String() string {
	var b strings.Builder
	b.WriteString("SELECT ")
	if q.Top >= 0 {
		b.WriteString("TOP " + strconv.Itoa(q.Top) + " ")
	}
	if q.Star {
		b.WriteString("*")
	}
	for i, f := range q.Fields {
		if i > 0 {
			b.WriteString(", ")
		}
		if f.Agg == AggNone {
			b.WriteString(f.Path.String())
		} else {
			b.WriteString(f.Agg + "(" + f.Path.String() + ")")
		}
		if f.Alias != "" {
			b.WriteString(" AS " + f.Alias)
		}
	}
	b.WriteString(" FROM " + q.From.String())
	if q.Where != nil {
		b.WriteString(" WHERE ")
		q.Where.write(&b)
	}
	if len(q.GroupBy) > 0 {
		b.WriteString(" GROUP BY ")
		for i, p := range q.GroupBy {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(p.String())
		}
	}
	return b.String()
}

func (c Logic) write(b *strings.Builder) {
	b.WriteString("(")
	c.L.write(b)
	b.WriteString(") " + c.Op + " (")
	c.R.write(b)
	b.WriteString(")")
}

func (c Not) write(b *strings.Builder) {
	b.WriteString("NOT (")
	c.X.write(b)
	b.WriteString(")")
}

func (c Compare) write(b *strings.Builder) {
	writeOperand(b, c.L)
	b.WriteString(" " + c.Op + " ")
	writeOperand(b, c.R)
}

func (c Member) write(b *strings.Builder) {
	b.WriteString(c.X.String())
	if c.Not {
		b.WriteString(" NIN [")
	} else {
		b.WriteString(" IN [")
	}
	for i, l := range c.List {
		if i > 0 {
			b.WriteString(", ")
		}
		l.write(b)
	}
	b.WriteString("]")
}

func (c Func) write(b *strings.Builder) {
	b.WriteString(c.Name + "(" + c.Path.String())
	if c.Name != FuncIsDefined {
		b.WriteString(", ")
		Literal{Kind: LitString, Str: c.Arg}.write(b)
	}
	b.WriteString(")")
}

func (c Truthy) write(b *strings.Builder) { b.WriteString(c.X.String()) }

func writeOperand(b *strings.Builder, o Operand) {
	switch o := o.(type) {
	case Path:
		b.WriteString(o.String())
	case Literal:
		o.write(b)
	}
}

func (l Literal) write(b *strings.Builder) {
	switch l.Kind {
	case LitString:
		b.WriteByte('\'')
		for i := 0; i < len(l.Str); i++ {
			if c := l.Str[i]; c == '\'' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(l.Str[i])
		}
		b.WriteByte('\'')
	case LitNumber:
		b.WriteString(strconv.FormatFloat(l.Num, 'g', -1, 64))
	case LitBool:
		b.WriteString(strconv.FormatBool(l.Bool))
	case LitNull:
		b.WriteString("null")
	}
}
