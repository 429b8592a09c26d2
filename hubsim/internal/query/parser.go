package query

import (
	"math"
	"strconv"
	"strings"
)

// MaxQueryLength bounds the query text, in bytes.
const MaxQueryLength = 8192

// maxDepth bounds the nesting of conditions (parentheses and NOT).
const maxDepth = 64

// Function names (canonical spelling).
const (
	FuncIsDefined  = "IS_DEFINED"
	FuncStartsWith = "STARTSWITH"
	FuncEndsWith   = "ENDSWITH"
)

// reserved words cannot start a property path.
var reserved = map[string]bool{
	"SELECT": true, "TOP": true, "FROM": true, "WHERE": true, "GROUP": true, "BY": true,
	"AS": true, "AND": true, "OR": true, "NOT": true, "IN": true, "NIN": true,
	"TRUE": true, "FALSE": true, "NULL": true, "ORDER": true, "UNDEFINED": true,
}

// functions the IoT Hub query language documents (twin queries or routing)
// that hubsim does not implement, refused by name.
var unsupportedFuncs = map[string]bool{
	"ABS": true, "EXP": true, "POWER": true, "SQUARE": true, "CEILING": true, "FLOOR": true,
	"SIGN": true, "SQRT": true, "AS_NUMBER": true, "IS_ARRAY": true, "IS_BOOL": true,
	"IS_NULL": true, "IS_NUMBER": true, "IS_OBJECT": true, "IS_PRIMITIVE": true, "IS_STRING": true,
	"CONCAT": true, "LENGTH": true, "LOWER": true, "UPPER": true, "SUBSTRING": true,
	"INDEX_OF": true, "CONTAINS": true, "HAS_INTERFACE": true,
}

// Parse parses an IoT Hub twin query (grammar in the package doc).
func Parse(text string) (*Query, error) {
	if len(text) > MaxQueryLength {
		return nil, errorf(MaxQueryLength, false, "query is longer than %d bytes", MaxQueryLength)
	}
	toks, err := lex(text)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	q, err := p.query()
	if err != nil {
		return nil, err
	}
	return q, nil
}

type parser struct {
	toks  []token
	i     int
	depth int
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) peekAt(n int) token {
	if p.i+n < len(p.toks) {
		return p.toks[p.i+n]
	}
	return p.toks[len(p.toks)-1]
}
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

// isWord reports whether t is the identifier w (case-insensitive).
func isWord(t token, w string) bool { return t.kind == tokIdent && strings.EqualFold(t.text, w) }

func isPunct(t token, s string) bool { return t.kind == tokPunct && t.text == s }

func (p *parser) acceptWord(w string) bool {
	if isWord(p.peek(), w) {
		p.i++
		return true
	}
	return false
}

func (p *parser) acceptPunct(s string) bool {
	if isPunct(p.peek(), s) {
		p.i++
		return true
	}
	return false
}

func (p *parser) expectWord(w string) error {
	if !p.acceptWord(w) {
		return p.unexpected(w)
	}
	return nil
}

func (p *parser) expectPunct(s string) error {
	if !p.acceptPunct(s) {
		return p.unexpected("'" + s + "'")
	}
	return nil
}

// unexpected reports the current token where want was expected; arithmetic
// operators get their own message.
func (p *parser) unexpected(want string) *Error {
	t := p.peek()
	switch {
	case t.kind == tokEOF:
		return errorf(t.pos, false, "expected %s, found end of query", want)
	case t.kind == tokPunct && strings.Contains("+-*/%", t.text) && t.text != "*" || t.text == "*" && want != "*":
		return errorf(t.pos, true, "arithmetic operator %q (arithmetic is not supported in twin queries)", t.text)
	case t.kind == tokString:
		return errorf(t.pos, false, "expected %s, found string %q", want, t.text)
	default:
		return errorf(t.pos, false, "expected %s, found %q", want, t.text)
	}
}

func (p *parser) query() (*Query, error) {
	q := &Query{Top: -1}
	if err := p.expectWord("SELECT"); err != nil {
		return nil, err
	}
	if p.acceptWord("TOP") {
		t := p.next()
		n, err := strconv.Atoi(t.text)
		if t.kind != tokNumber || err != nil || n < 0 {
			return nil, errorf(t.pos, false, "TOP needs a non-negative integer, found %q", t.text)
		}
		q.Top = n
	}
	if p.acceptPunct("*") {
		q.Star = true
	} else {
		for {
			f, err := p.field()
			if err != nil {
				return nil, err
			}
			q.Fields = append(q.Fields, f)
			if !p.acceptPunct(",") {
				break
			}
		}
	}
	if err := p.expectWord("FROM"); err != nil {
		return nil, err
	}
	from, err := p.collection()
	if err != nil {
		return nil, err
	}
	q.From = from
	if p.acceptWord("WHERE") {
		c, err := p.or()
		if err != nil {
			return nil, err
		}
		q.Where = c
	}
	if t := p.peek(); isWord(t, "GROUP") {
		p.i++
		if err := p.expectWord("BY"); err != nil {
			return nil, err
		}
		for {
			path, err := p.path()
			if err != nil {
				return nil, err
			}
			q.GroupBy = append(q.GroupBy, path)
			if !p.acceptPunct(",") {
				break
			}
		}
	}
	if t := p.peek(); isWord(t, "ORDER") {
		return nil, errorf(t.pos, true, "ORDER BY (results come in device id, module id order)")
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.unexpected("end of query")
	}
	return q, validate(q)
}

func (p *parser) collection() (Collection, error) {
	t := p.peek()
	if !p.acceptWord("devices") {
		if t.kind == tokIdent && !reserved[strings.ToUpper(t.text)] {
			return 0, errorf(t.pos, false, "unknown collection %q (twin queries read devices or devices.modules)", t.text)
		}
		return 0, p.unexpected("collection devices or devices.modules")
	}
	if !p.acceptPunct(".") {
		return Devices, nil
	}
	t = p.next()
	switch {
	case isWord(t, "modules"):
		return Modules, nil
	case isWord(t, "jobs"):
		return 0, errorf(t.pos, true, "FROM devices.jobs (jobs are not simulated)")
	default:
		return 0, errorf(t.pos, false, "unknown collection devices.%s (twin queries read devices or devices.modules)", t.text)
	}
}

func (p *parser) field() (Field, error) {
	t := p.peek()
	var f Field
	if t.kind == tokIdent && isPunct(p.peekAt(1), "(") {
		name := strings.ToUpper(t.text)
		switch name {
		case AggCount, AggSum, AggAvg, AggMin, AggMax:
		default:
			return f, errorf(t.pos, unsupportedFuncs[name] || name == FuncIsDefined || name == FuncStartsWith || name == FuncEndsWith,
				"function %s in SELECT (projections are property paths and COUNT, SUM, AVG, MIN, MAX)", t.text)
		}
		p.i += 2
		f.Agg = name
		if name == AggCount {
			if !isPunct(p.peek(), ")") {
				return f, errorf(p.peek().pos, false, "COUNT takes no argument: COUNT()")
			}
		} else {
			path, err := p.path()
			if err != nil {
				return f, err
			}
			f.Path = path
		}
		if err := p.expectPunct(")"); err != nil {
			return f, err
		}
	} else {
		path, err := p.path()
		if err != nil {
			return f, err
		}
		f.Path = path
	}
	if p.acceptWord("AS") {
		t := p.next()
		if t.kind != tokIdent || reserved[strings.ToUpper(t.text)] {
			return f, errorf(t.pos, false, "expected an alias name after AS, found %q", t.text)
		}
		f.Alias = t.text
	}
	return f, nil
}

// path parses ident { "." ident }. Segments after the first may be any word,
// reserved or not (tags.from is a tag named "from").
func (p *parser) path() (Path, error) {
	t := p.peek()
	if t.kind != tokIdent || reserved[strings.ToUpper(t.text)] {
		return nil, p.unexpected("a property path")
	}
	p.i++
	path := Path{canonicalRoot(t.text)}
	for isPunct(p.peek(), ".") {
		p.i++
		s := p.next()
		if s.kind != tokIdent {
			return nil, errorf(s.pos, false, "expected a property name after '.', found %q", s.text)
		}
		path = append(path, s.text)
	}
	if t := p.peek(); isPunct(t, "[") {
		return nil, errorf(t.pos, true, "array indexing or bracketed property names in a path")
	}
	return path, nil
}

// roots are the twin document's top-level properties; a path's first
// segment matches them case-insensitively (SELECT DeviceID works, as in
// Azure's examples) and is rewritten to the document's spelling.
var roots = []string{
	"deviceId", "moduleId", "etag", "deviceEtag", "status", "statusReason", "statusUpdateTime",
	"connectionState", "lastActivityTime", "cloudToDeviceMessageCount", "authenticationType",
	"x509Thumbprint", "capabilities", "version", "tags", "properties", "modelId",
}

func canonicalRoot(s string) string {
	for _, r := range roots {
		if strings.EqualFold(r, s) {
			return r
		}
	}
	return s
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return errorf(p.peek().pos, false, "conditions nested deeper than %d", maxDepth)
	}
	return nil
}

func (p *parser) or() (Cond, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.acceptWord(OpOr) {
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = Logic{Op: OpOr, L: l, R: r}
	}
	return l, nil
}

func (p *parser) and() (Cond, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.acceptWord(OpAnd) {
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = Logic{Op: OpAnd, L: l, R: r}
	}
	return l, nil
}

func (p *parser) unary() (Cond, error) {
	if p.acceptWord("NOT") {
		if err := p.enter(); err != nil {
			return nil, err
		}
		defer func() { p.depth-- }()
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return Not{X: x}, nil
	}
	return p.primary()
}

func (p *parser) primary() (Cond, error) {
	t := p.peek()
	if p.acceptPunct("(") {
		c, err := p.or()
		if err != nil {
			return nil, err
		}
		if err := p.expectPunct(")"); err != nil {
			return nil, err
		}
		return c, nil
	}
	if t.kind == tokIdent && isPunct(p.peekAt(1), "(") {
		return p.function()
	}
	l, err := p.operand()
	if err != nil {
		return nil, err
	}
	op := p.peek()
	switch {
	case op.kind == tokPunct && (op.text == "=" || op.text == "!=" || op.text == "<>" || op.text == "<" || op.text == ">" || op.text == "<=" || op.text == ">="):
		p.i++
		r, err := p.operand()
		if err != nil {
			return nil, err
		}
		if _, lp := l.(Path); !lp {
			if _, rp := r.(Path); !rp {
				return nil, errorf(t.pos, true, "a comparison between two constants")
			}
		}
		return Compare{Op: op.text, L: l, R: r}, nil
	case isWord(op, "IN") || isWord(op, "NIN"):
		path, ok := l.(Path)
		if !ok {
			return nil, errorf(t.pos, true, "a constant on the left of %s", strings.ToUpper(op.text))
		}
		p.i++
		list, err := p.array()
		if err != nil {
			return nil, err
		}
		return Member{X: path, Not: isWord(op, "NIN"), List: list}, nil
	case isWord(op, "NOT") && isWord(p.peekAt(1), "IN"):
		return nil, errorf(op.pos, true, "NOT IN (write NIN [...])")
	}
	if path, ok := l.(Path); ok {
		return Truthy{X: path}, nil
	}
	return nil, p.unexpected("a comparison operator, IN or NIN")
}

func (p *parser) array() ([]Literal, error) {
	if t := p.peek(); isPunct(t, "(") {
		return nil, errorf(t.pos, false, "IN and NIN take an array in square brackets: IN ['a', 'b']")
	}
	if err := p.expectPunct("["); err != nil {
		return nil, err
	}
	var list []Literal
	for {
		t := p.peek()
		o, err := p.operand()
		if err != nil {
			return nil, err
		}
		l, ok := o.(Literal)
		if !ok {
			return nil, errorf(t.pos, false, "array elements must be constants, found %q", t.text)
		}
		list = append(list, l)
		if !p.acceptPunct(",") {
			break
		}
	}
	if err := p.expectPunct("]"); err != nil {
		return nil, err
	}
	return list, nil
}

func (p *parser) function() (Cond, error) {
	t := p.next()
	p.next() // "("
	name := strings.ToUpper(t.text)
	switch name {
	case "STARTS_WITH":
		name = FuncStartsWith
	case "ENDS_WITH":
		name = FuncEndsWith
	}
	switch name {
	case FuncIsDefined, FuncStartsWith, FuncEndsWith:
	case AggCount, AggSum, AggAvg, AggMin, AggMax:
		return nil, errorf(t.pos, false, "aggregate %s in WHERE", name)
	default:
		if unsupportedFuncs[name] {
			return nil, errorf(t.pos, true, "function %s (twin queries support IS_DEFINED, STARTSWITH, ENDSWITH)", name)
		}
		return nil, errorf(t.pos, false, "unknown function %s", t.text)
	}
	path, err := p.path()
	if err != nil {
		return nil, err
	}
	f := Func{Name: name, Path: path}
	if name != FuncIsDefined {
		if err := p.expectPunct(","); err != nil {
			return nil, err
		}
		a := p.next()
		if a.kind != tokString {
			return nil, errorf(a.pos, true, "%s with a second argument that is not a string constant", name)
		}
		f.Arg = a.text
	}
	if err := p.expectPunct(")"); err != nil {
		return nil, err
	}
	return f, nil
}

func (p *parser) operand() (Operand, error) {
	t := p.peek()
	switch {
	case t.kind == tokString:
		p.i++
		return Literal{Kind: LitString, Str: t.text}, nil
	case t.kind == tokNumber:
		p.i++
		return number(t, false)
	case isPunct(t, "-") && p.peekAt(1).kind == tokNumber:
		p.i += 2
		return number(p.toks[p.i-1], true)
	case isWord(t, "true") || isWord(t, "false"):
		p.i++
		return Literal{Kind: LitBool, Bool: isWord(t, "true")}, nil
	case isWord(t, "null"):
		p.i++
		return Literal{Kind: LitNull}, nil
	case isWord(t, "undefined"):
		return nil, errorf(t.pos, true, "the undefined constant (use IS_DEFINED)")
	case isPunct(t, "["):
		return nil, errorf(t.pos, true, "an array constant outside IN/NIN")
	case isPunct(t, "{"):
		return nil, errorf(t.pos, true, "an object constant")
	}
	return p.path()
}

func number(t token, neg bool) (Literal, error) {
	var v float64
	if s, ok := strings.CutPrefix(strings.ToLower(t.text), "0x"); ok {
		n, err := strconv.ParseUint(s, 16, 64)
		if err != nil || n > 1<<53 {
			return Literal{}, errorf(t.pos, false, "hexadecimal literal %s out of range", t.text)
		}
		v = float64(n)
	} else {
		f, err := strconv.ParseFloat(t.text, 64)
		if err != nil || math.IsInf(f, 0) {
			return Literal{}, errorf(t.pos, false, "number %s out of range", t.text)
		}
		v = f
	}
	if neg {
		v = -v
	}
	return Literal{Kind: LitNumber, Num: v}, nil
}

// validate checks the rules that span clauses.
func validate(q *Query) error {
	hasAgg := false
	for _, f := range q.Fields {
		if f.Agg != AggNone {
			hasAgg = true
		}
	}
	if len(q.GroupBy) > 0 && q.Star {
		return errorf(0, false, "SELECT * cannot be combined with GROUP BY; select the grouped properties and aggregates")
	}
	if hasAgg || len(q.GroupBy) > 0 {
		for _, f := range q.Fields {
			if f.Agg != AggNone {
				continue
			}
			grouped := false
			for _, g := range q.GroupBy {
				if g.String() == f.Path.String() {
					grouped = true
				}
			}
			if !grouped {
				return errorf(0, false, "%s is selected with aggregates but is not in GROUP BY", f.Path)
			}
		}
	}
	seen := map[string]bool{}
	for i, f := range q.Fields {
		n := f.Name(i + 1)
		if seen[n] {
			return errorf(0, false, "two projections are named %q; give one an alias with AS", n)
		}
		seen[n] = true
	}
	return nil
}
