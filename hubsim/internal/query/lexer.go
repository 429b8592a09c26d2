package query

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// tokKind is the kind of a lexical token.
type tokKind int

const (
	tokEOF    tokKind = iota
	tokIdent          // a word: keyword, collection, function or property name
	tokNumber         // decimal or 0x hexadecimal
	tokString         // '…' or "…", unescaped in text
	tokPunct          // ( ) [ ] , . * and the operators
)

// token is one lexical token; pos is its byte offset in the query text.
type token struct {
	kind tokKind
	text string // identifier as written, punctuation, unescaped string or number text
	pos  int
}

// lex splits text into tokens. Errors name the byte offset.
func lex(text string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(text) {
		c := text[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case isIdentStart(c):
			j := i + 1
			for j < len(text) && isIdentPart(text[j]) {
				j++
			}
			toks = append(toks, token{tokIdent, text[i:j], i})
			i = j
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(text) && isDigit(text[i+1]) && !afterValue(toks):
			j, err := scanNumber(text, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{tokNumber, text[i:j], i})
			i = j
		case c == '\'' || c == '"':
			s, j, err := scanString(text, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{tokString, s, i})
			i = j
		default:
			op := ""
			for _, p := range []string{"<=", ">=", "<>", "!=", "(", ")", "[", "]", ",", ".", "*", "=", "<", ">", "+", "-", "/", "%"} {
				if strings.HasPrefix(text[i:], p) {
					op = p
					break
				}
			}
			if op == "" {
				r, _ := utf8.DecodeRuneInString(text[i:])
				return nil, errorf(i, false, "unexpected character %q", r)
			}
			toks = append(toks, token{tokPunct, op, i})
			i += len(op)
		}
	}
	return append(toks, token{tokEOF, "", len(text)}), nil
}

// afterValue reports whether the previous token ends a value, so a "." that
// follows is a path separator rather than the start of ".5".
func afterValue(toks []token) bool {
	if len(toks) == 0 {
		return false
	}
	t := toks[len(toks)-1]
	return t.kind == tokIdent || t.kind == tokNumber || t.kind == tokString || t.text == ")" || t.text == "]"
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
func isIdentPart(c byte) bool { return isIdentStart(c) || isDigit(c) }

// scanNumber scans a decimal literal (digits, optional fraction, optional
// exponent) or a 0x hexadecimal literal starting at i.
func scanNumber(text string, i int) (int, error) {
	j := i
	if strings.HasPrefix(text[i:], "0x") || strings.HasPrefix(text[i:], "0X") {
		j += 2
		for j < len(text) && strings.IndexByte("0123456789abcdefABCDEF", text[j]) >= 0 {
			j++
		}
		if j == i+2 {
			return 0, errorf(i, false, "hexadecimal literal without digits")
		}
	} else {
		for j < len(text) && isDigit(text[j]) {
			j++
		}
		if j < len(text) && text[j] == '.' {
			j++
			for j < len(text) && isDigit(text[j]) {
				j++
			}
		}
		if j < len(text) && (text[j] == 'e' || text[j] == 'E') {
			k := j + 1
			if k < len(text) && (text[k] == '+' || text[k] == '-') {
				k++
			}
			if k < len(text) && isDigit(text[k]) {
				for k < len(text) && isDigit(text[k]) {
					k++
				}
				j = k
			}
		}
	}
	if j < len(text) && isIdentPart(text[j]) {
		return 0, errorf(j, false, "unexpected character %q after number", text[j])
	}
	return j, nil
}

// scanString scans a quoted string starting at i. Escapes are the documented
// ones: \' \" \\ and \uXXXX.
func scanString(text string, i int) (string, int, error) {
	q := text[i]
	var b strings.Builder
	j := i + 1
	for j < len(text) {
		c := text[j]
		switch {
		case c == q:
			return b.String(), j + 1, nil
		case c == '\\':
			if j+1 >= len(text) {
				return "", 0, errorf(j, false, "unterminated escape in string")
			}
			switch e := text[j+1]; e {
			case '\'', '"', '\\':
				b.WriteByte(e)
				j += 2
			case 'u':
				if j+6 > len(text) {
					return "", 0, errorf(j, false, `\u needs four hexadecimal digits`)
				}
				n, err := strconv.ParseUint(text[j+2:j+6], 16, 32)
				if err != nil {
					return "", 0, errorf(j, false, `\u needs four hexadecimal digits`)
				}
				b.WriteRune(rune(n))
				j += 6
			default:
				return "", 0, errorf(j, false, `unsupported escape \%c (allowed: \' \" \\ \uXXXX)`, e)
			}
		default:
			b.WriteByte(c)
			j++
		}
	}
	return "", 0, errorf(i, false, "unterminated string")
}
