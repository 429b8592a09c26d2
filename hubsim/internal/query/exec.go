package query

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strconv"
)

// Page sizes: x-ms-max-item-count asks for up to MaxPageSize items a page
// [doc: IoT Hub query language (iot-hub-devguide-query-language.md): the
// query object is created with "a page size (up to 1000)"]; without the
// header a page holds DefaultPageSize, hubsim's choice (the size the docs'
// SDK examples ask for; the sources read do not state Azure's default).
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Item types for the x-ms-item-type header: whole twins for SELECT *, raw
// JSON objects for projections and aggregates.
// [Azure/azure-iot-sdk-java service/iot-service-client/src/main/java/com/microsoft/azure/sdk/iot/service/devicetwin/QueryType.java]
const (
	ItemTypeTwin = "twin"
	ItemTypeRaw  = "raw"
)

// Page selects one page of a query's results.
type Page struct {
	// MaxItems is the page size; 0 means DefaultPageSize, values above
	// MaxPageSize are capped.
	MaxItems int
	// Continuation is the token a previous page returned; "" for the first page.
	Continuation string
}

// Result is one page of results.
type Result struct {
	// Items are the result documents: twins for SELECT *, else objects with
	// one key per projection (undefined properties left out).
	Items []json.RawMessage
	// Continuation is the token for the next page; "" on the last page.
	Continuation string
	// ItemType is ItemTypeTwin or ItemTypeRaw.
	ItemType string
}

// Table is the relation Execute reads: one row per device twin (module_id
// ”) or module twin, doc holding the twin JSON as GET /twins/{id} returns it.
const Table = "twin_docs"

// Execute parses text and runs it against hub's twins in db's twin_docs
// table (or view): hub TEXT, device_id TEXT, module_id TEXT (” for device
// twins), doc TEXT. Errors from the query text match ErrQuery, bad
// continuation tokens ErrContinuation; anything else is the database's.
func Execute(ctx context.Context, db *sql.DB, hub, text string, page Page) (Result, error) {
	q, err := Parse(text)
	if err != nil {
		return Result{}, err
	}
	return Run(ctx, db, hub, q, page)
}

// cursor is the decoded continuation token. Plain queries resume after the
// last (device_id, module_id) returned, so twins added or removed between
// pages neither repeat nor shift others; aggregate queries resume at an
// offset into the ordered groups.
type cursor struct {
	Hash   string `json:"h"` // fingerprint of the hub and the canonical query
	Served int    `json:"n"` // items returned so far (for TOP and the group offset)
	Device string `json:"d,omitempty"`
	Module string `json:"m,omitempty"`
}

func fingerprint(hub string, q *Query) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(hub + "\x00" + q.String()))
	return strconv.FormatUint(h.Sum64(), 36)
}

func decodeCursor(tok, hash string) (cursor, error) {
	var c cursor
	if tok == "" {
		return cursor{Hash: hash}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || json.Unmarshal(b, &c) != nil || c.Served < 0 {
		return c, fmt.Errorf("%w: not a token this hub issued", ErrContinuation)
	}
	if c.Hash != hash {
		return c, fmt.Errorf("%w: the token belongs to another query", ErrContinuation)
	}
	return c, nil
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Run runs a parsed query; see Execute.
func Run(ctx context.Context, db *sql.DB, hub string, q *Query, page Page) (Result, error) {
	hash := fingerprint(hub, q)
	cur, err := decodeCursor(page.Continuation, hash)
	if err != nil {
		return Result{}, err
	}
	size := page.MaxItems
	if size <= 0 {
		size = DefaultPageSize
	}
	size = min(size, MaxPageSize)
	last := false // this page reaches TOP
	if q.Top >= 0 && q.Top-cur.Served <= size {
		size, last = q.Top-cur.Served, true
	}
	res := Result{Items: []json.RawMessage{}, ItemType: ItemTypeRaw}
	if q.Star {
		res.ItemType = ItemTypeTwin
	}
	if size <= 0 {
		return res, nil
	}
	grouped := len(q.GroupBy) > 0
	for _, f := range q.Fields {
		grouped = grouped || f.Agg != AggNone
	}
	var s sqlBuilder
	if grouped {
		buildGrouped(&s, hub, q, cur, size+1)
	} else {
		buildPlain(&s, hub, q, cur, size+1)
	}
	rows, err := db.QueryContext(ctx, s.b.String(), s.args...)
	if err != nil {
		return Result{}, fmt.Errorf("query: running %s: %w", q, err)
	}
	defer rows.Close()
	var prev cursor
	for rows.Next() {
		if len(res.Items) == size {
			if last {
				break
			}
			// One row beyond the page: there is more.
			next := cursor{Hash: hash, Served: cur.Served + size, Device: prev.Device, Module: prev.Module}
			res.Continuation = next.encode()
			break
		}
		item, dev, mod, err := scanRow(rows, q, grouped)
		if err != nil {
			return Result{}, err
		}
		res.Items = append(res.Items, item)
		prev.Device, prev.Module = dev, mod
	}
	if err := rows.Err(); err != nil {
		return Result{}, fmt.Errorf("query: reading results: %w", err)
	}
	return res, nil
}

// collectionFilter writes the hub and collection conditions, hub first.
func collectionFilter(s *sqlBuilder, hub string, q *Query) {
	s.sql(" FROM " + Table + " WHERE hub = ")
	s.arg(hub)
	if q.From == Modules {
		s.sql(" AND module_id <> ''")
	} else {
		s.sql(" AND module_id = ''")
	}
	if q.Where != nil {
		// "IS TRUE" keeps SQLite's planner from analysing every OR term
		// for index use (slow for long chains; no index can serve them).
		s.sql(" AND (")
		s.cond(q.Where)
		s.sql(") IS TRUE")
	}
}

func buildPlain(s *sqlBuilder, hub string, q *Query, cur cursor, limit int) {
	s.sql("SELECT device_id, module_id")
	if q.Star {
		s.sql(", doc")
	}
	for _, f := range q.Fields {
		s.sql(", " + docCol + " -> ")
		s.arg(jsonPath(f.Path))
	}
	collectionFilter(s, hub, q)
	if cur.Served > 0 {
		s.sql(" AND (device_id, module_id) > (")
		s.arg(cur.Device)
		s.sql(", ")
		s.arg(cur.Module)
		s.sql(")")
	}
	s.sql(" ORDER BY device_id, module_id LIMIT ")
	s.arg(int64(limit))
}

func buildGrouped(s *sqlBuilder, hub string, q *Query, cur cursor, limit int) {
	s.sql("SELECT 0")
	for i := range q.GroupBy {
		s.sql(", g" + strconv.Itoa(i))
	}
	for _, f := range q.Fields {
		if f.Agg != AggNone {
			s.sql(", ")
			s.aggregate(f)
		}
	}
	s.sql(" FROM (SELECT " + docCol)
	for i, g := range q.GroupBy {
		s.sql(", " + docCol + " -> ")
		s.arg(jsonPath(g))
		s.sql(" AS g" + strconv.Itoa(i))
	}
	collectionFilter(s, hub, q)
	s.sql(")")
	if len(q.GroupBy) > 0 {
		s.sql(" GROUP BY ")
		for i := range q.GroupBy {
			if i > 0 {
				s.sql(", ")
			}
			s.sql("g" + strconv.Itoa(i))
		}
		s.sql(" ORDER BY ")
		for i := range q.GroupBy {
			if i > 0 {
				s.sql(", ")
			}
			s.sql("g" + strconv.Itoa(i) + " NULLS LAST")
		}
	}
	s.sql(" LIMIT ")
	s.arg(int64(limit))
	s.sql(" OFFSET ")
	s.arg(int64(cur.Served))
}

// scanRow turns one result row into a JSON document.
func scanRow(rows *sql.Rows, q *Query, grouped bool) (item json.RawMessage, dev, mod string, err error) {
	if q.Star {
		var doc string
		if err := rows.Scan(&dev, &mod, &doc); err != nil {
			return nil, "", "", fmt.Errorf("query: reading a twin: %w", err)
		}
		return json.RawMessage(doc), dev, mod, nil
	}
	vals := make([]any, 0, len(q.Fields)+len(q.GroupBy)+2)
	var zero int64
	if grouped {
		vals = append(vals, &zero)
	} else {
		vals = append(vals, &dev, &mod)
	}
	groups := make([]sql.NullString, len(q.GroupBy))
	for i := range groups {
		vals = append(vals, &groups[i])
	}
	fields := make([]any, len(q.Fields))
	plain := make([]sql.NullString, len(q.Fields))
	for i, f := range q.Fields {
		switch {
		case !grouped:
			vals = append(vals, &plain[i])
		case f.Agg != AggNone:
			vals = append(vals, &fields[i])
		}
	}
	if err := rows.Scan(vals...); err != nil {
		return nil, "", "", fmt.Errorf("query: reading a result row: %w", err)
	}
	var b bytes.Buffer
	b.WriteByte('{')
	n := 0
	add := func(name string, raw []byte) {
		if n > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		b.Write(k)
		b.WriteByte(':')
		b.Write(raw)
		n++
	}
	for i, f := range q.Fields {
		name := f.Name(i + 1)
		switch {
		case !grouped:
			if plain[i].Valid {
				add(name, []byte(plain[i].String))
			}
		case f.Agg == AggNone:
			for j, g := range q.GroupBy {
				if g.String() == f.Path.String() && groups[j].Valid {
					add(name, []byte(groups[j].String))
					break
				}
			}
		default:
			if fields[i] != nil {
				raw, err := json.Marshal(fields[i])
				if err != nil {
					return nil, "", "", fmt.Errorf("query: encoding %s: %w", name, err)
				}
				add(name, raw)
			}
		}
	}
	b.WriteByte('}')
	return json.RawMessage(b.Bytes()), dev, mod, nil
}
