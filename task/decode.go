package task

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The decoder below reads one task from JSON in a single pass, without
// reflection, allocating only the batch id and owner strings: it sits on
// the receiver's hot path (BenchmarkDecode). It accepts exactly what
// encoding/json accepts for the wire type, which FuzzDecode checks.

// fields the decoder knows, in the order their errors are reported.
const (
	fBatchID = iota
	fID
	fOwner
	fPriority
	fBatchSize
	numFields
)

var fieldNames = [numFields]string{"batchid", "id", "owner", "priority", "batchsize"}

type decoder struct {
	data []byte
	pos  int
	err  *FieldError // first malformed-JSON error

	seen     [numFields]bool
	fieldErr [numFields]*FieldError
	t        Task
}

// Decode parses and validates one task from JSON. Unknown fields are
// ignored; a missing, null or wrong-typed required field, or a body that is
// not one JSON object, is a *FieldError naming the problem.
func Decode(data []byte) (Task, error) {
	if !utf8.Valid(data) {
		return Task{}, &FieldError{Problem: "body is not valid UTF-8"}
	}
	d := decoder{data: data}
	d.skipSpace()
	if d.pos == len(d.data) {
		return Task{}, &FieldError{Problem: "body is empty"}
	}
	if d.data[d.pos] != '{' {
		return Task{}, &FieldError{Problem: "body must be a JSON object"}
	}
	d.object()
	if d.err == nil {
		d.skipSpace()
		if d.pos < len(d.data) {
			d.fail("invalid character " + quoteChar(d.data[d.pos]) + " after top-level value")
		}
	}
	if d.err != nil {
		return Task{}, d.err
	}
	for f := range numFields {
		if d.fieldErr[f] != nil {
			return Task{}, d.fieldErr[f]
		}
		if !d.seen[f] && f != fBatchSize {
			return Task{}, &FieldError{Field: fieldNames[f], Problem: "is required"}
		}
	}
	d.t.BatchID = CanonicalUUID(d.t.BatchID)
	return d.t, d.t.Validate()
}

// CanonicalUUID returns a UUID in lower case, its canonical form (RFC
// 9562), so that the same batch written in upper case is the same batch:
// Decode stores batch ids so, and a batch is looked up so.
func CanonicalUUID(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'F' {
			return strings.ToLower(s)
		}
	}
	return s
}

func (d *decoder) fail(problem string) {
	if d.err == nil {
		d.err = &FieldError{Problem: "malformed JSON: " + problem + " at offset " + strconv.Itoa(d.pos)}
	}
}

func (d *decoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\r', '\n':
			d.pos++
		default:
			return
		}
	}
}

// object reads the top-level object, dispatching known keys.
func (d *decoder) object() {
	d.pos++ // '{'
	d.skipSpace()
	if d.peek() == '}' {
		d.pos++
		return
	}
	for d.err == nil {
		d.skipSpace()
		if d.peek() != '"' {
			d.fail("expected a string key")
			return
		}
		key, ok := d.rawString()
		if !ok {
			return
		}
		d.skipSpace()
		if d.peek() != ':' {
			d.fail("expected ':' after object key")
			return
		}
		d.pos++
		d.skipSpace()
		d.field(fieldOf(key))
		d.skipSpace()
		switch d.peek() {
		case ',':
			d.pos++
		case '}':
			d.pos++
			return
		default:
			d.fail("expected ',' or '}' after object value")
			return
		}
	}
}

// fieldOf maps a raw key to a field; keys are matched case-insensitively,
// as encoding/json does. A key with escapes is decoded first.
func fieldOf(raw []byte) int {
	key := raw
	for _, c := range raw {
		if c == '\\' {
			s, _ := unquote(raw)
			key = []byte(s)
			break
		}
	}
	for f, name := range fieldNames {
		if bytes.EqualFold(key, []byte(name)) {
			return f
		}
	}
	return -1
}

func (d *decoder) field(f int) {
	if f < 0 {
		d.skipValue(1)
		return
	}
	c := d.peek()
	if c == 'n' {
		// null makes a field absent, even after an earlier value.
		d.literal("null")
		d.seen[f], d.fieldErr[f] = false, nil
		return
	}
	switch f {
	case fBatchID, fOwner, fPriority:
		if c != '"' {
			d.wrongType(f, "must be a string")
			return
		}
		raw, ok := d.rawString()
		if !ok {
			return
		}
		d.seen[f], d.fieldErr[f] = true, nil
		switch f {
		case fBatchID:
			d.t.BatchID, _ = unquote(raw)
		case fOwner:
			d.t.Owner, _ = unquote(raw)
		case fPriority:
			name := raw
			if bytes.IndexByte(raw, '\\') >= 0 {
				s, _ := unquote(raw)
				name = []byte(s)
			}
			d.t.Priority = priorityOf(name)
			if d.t.Priority == 0 {
				d.fieldErr[f] = &FieldError{Field: "priority", Problem: ErrUnknownPriority.Error()}
			}
		}
	case fID, fBatchSize:
		if c != '-' && (c < '0' || c > '9') {
			d.wrongType(f, "must be an integer")
			return
		}
		start := d.pos
		integer, ok := d.number()
		if !ok {
			return
		}
		d.seen[f], d.fieldErr[f] = true, nil
		if !integer {
			d.fieldErr[f] = &FieldError{Field: fieldNames[f], Problem: "must be an integer"}
			return
		}
		n, err := strconv.ParseInt(string(d.data[start:d.pos]), 10, 64)
		switch {
		case err != nil:
			d.fieldErr[f] = &FieldError{Field: fieldNames[f], Problem: "is out of range"}
		case n < 0 || n > MaxID:
			d.fieldErr[f] = &FieldError{Field: fieldNames[f], Problem: "must be an integer from 0 to " + strconv.FormatInt(MaxID, 10)}
		case f == fID:
			d.t.ID = n
		default:
			d.t.BatchSize = n
		}
	}
}

// wrongType records a type error and skips the value, which must still be
// well-formed JSON.
func (d *decoder) wrongType(f int, problem string) {
	d.seen[f] = true
	d.fieldErr[f] = &FieldError{Field: fieldNames[f], Problem: problem}
	d.skipValue(1)
}

func priorityOf(raw []byte) Priority {
	switch string(raw) { // no allocation: the conversion is only compared
	case "Low":
		return Low
	case "Moderate":
		return Moderate
	case "Major":
		return Major
	case "Critical":
		return Critical
	}
	return 0
}

func (d *decoder) peek() byte {
	if d.pos < len(d.data) {
		return d.data[d.pos]
	}
	return 0
}

// maxDepth bounds nesting in ignored values, as encoding/json does.
const maxDepth = 10000

// skipValue checks and skips one value; depth is the number of objects and
// arrays around it, the top-level object included.
func (d *decoder) skipValue(depth int) {
	switch c := d.peek(); {
	case c == '"':
		d.rawString()
	case c == '{' || c == '[':
		if depth+1 > maxDepth {
			d.fail("nested too deeply")
			return
		}
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		d.pos++
		d.skipSpace()
		if d.peek() == end {
			d.pos++
			return
		}
		for d.err == nil {
			d.skipSpace()
			if c == '{' {
				if d.peek() != '"' {
					d.fail("expected a string key")
					return
				}
				if _, ok := d.rawString(); !ok {
					return
				}
				d.skipSpace()
				if d.peek() != ':' {
					d.fail("expected ':' after object key")
					return
				}
				d.pos++
				d.skipSpace()
			}
			d.skipValue(depth + 1)
			d.skipSpace()
			switch d.peek() {
			case ',':
				d.pos++
			case end:
				d.pos++
				return
			default:
				d.fail("expected ',' or '" + string(end) + "'")
				return
			}
		}
	case c == '-' || ('0' <= c && c <= '9'):
		d.number()
	case c == 't':
		d.literal("true")
	case c == 'f':
		d.literal("false")
	case c == 'n':
		d.literal("null")
	case c == 0 && d.pos >= len(d.data):
		d.fail("unexpected end of input")
	default:
		d.fail("invalid character " + quoteChar(c) + " looking for a value")
	}
}

func (d *decoder) literal(lit string) {
	if len(d.data)-d.pos < len(lit) || string(d.data[d.pos:d.pos+len(lit)]) != lit {
		d.fail("invalid literal")
		return
	}
	d.pos += len(lit)
}

// number reads a JSON number and reports whether it is an integer (no
// fraction or exponent).
func (d *decoder) number() (integer, ok bool) {
	p := d.pos
	if p < len(d.data) && d.data[p] == '-' {
		p++
	}
	digits := func() int {
		start := p
		for p < len(d.data) && '0' <= d.data[p] && d.data[p] <= '9' {
			p++
		}
		return p - start
	}
	if p >= len(d.data) {
		d.pos = p
		d.fail("unexpected end of input in number")
		return false, false
	}
	if d.data[p] == '0' {
		p++
	} else if digits() == 0 {
		d.pos = p
		d.fail("invalid number")
		return false, false
	}
	integer = true
	if p < len(d.data) && d.data[p] == '.' {
		p++
		integer = false
		if digits() == 0 {
			d.pos = p
			d.fail("invalid number")
			return false, false
		}
	}
	if p < len(d.data) && (d.data[p] == 'e' || d.data[p] == 'E') {
		p++
		integer = false
		if p < len(d.data) && (d.data[p] == '+' || d.data[p] == '-') {
			p++
		}
		if digits() == 0 {
			d.pos = p
			d.fail("invalid number")
			return false, false
		}
	}
	d.pos = p
	return integer, true
}

// rawString reads a string token and returns its contents between the
// quotes, still escaped.
func (d *decoder) rawString() ([]byte, bool) {
	start := d.pos + 1
	for p := start; p < len(d.data); p++ {
		switch c := d.data[p]; {
		case c == '"':
			d.pos = p + 1
			return d.data[start:p], true
		case c == '\\':
			p++
			if p >= len(d.data) {
				break
			}
			switch d.data[p] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if p+4 >= len(d.data) || !isHex4(d.data[p+1:p+5]) {
					d.pos = p
					d.fail("invalid \\u escape in string")
					return nil, false
				}
				p += 4
			default:
				d.pos = p
				d.fail("invalid escape in string")
				return nil, false
			}
		case c < 0x20:
			d.pos = p
			d.fail("control character in string")
			return nil, false
		}
	}
	d.pos = len(d.data)
	d.fail("unexpected end of input in string")
	return nil, false
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// unquote decodes the escapes of a string token already checked by
// rawString. Invalid surrogates become U+FFFD, as with encoding/json.
func unquote(raw []byte) (string, bool) {
	esc := false
	for _, c := range raw {
		if c == '\\' {
			esc = true
			break
		}
	}
	if !esc {
		return string(raw), true
	}
	b := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			b = append(b, c)
			continue
		}
		i++
		switch raw[i] {
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r := hex4(raw[i+1:])
			i += 4
			if utf16.IsSurrogate(r) {
				if i+6 < len(raw)+0 && raw[i+1] == '\\' && raw[i+2] == 'u' {
					r2 := hex4(raw[i+3:])
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						i += 6
						b = utf8.AppendRune(b, dec)
						continue
					}
				}
				r = utf8.RuneError
			}
			b = utf8.AppendRune(b, r)
		default: // '"', '\\', '/'
			b = append(b, raw[i])
		}
	}
	return string(b), true
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case '0' <= c && c <= '9':
			r |= rune(c - '0')
		case 'a' <= c && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	return "'" + strconv.QuoteToASCII(string(rune(c)))[1:len(strconv.QuoteToASCII(string(rune(c))))-1] + "'"
}
