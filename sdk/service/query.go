package service

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// MaxQueryPageSize is the largest page a twin query may ask for.
// [doc: IoT Hub query language (iot-hub-devguide-query-language.md): "page size (up to 1000)"]
const MaxQueryPageSize = 1000

// QueryPage is one page of twin query results.
type QueryPage struct {
	// Items are the result documents: twins for SELECT *, JSON objects for
	// projections and aggregates.
	Items []json.RawMessage
	// ItemType is what the hub says the items are ("twin", "raw", …).
	ItemType string
}

// Twins decodes the items as twins.
func (p *QueryPage) Twins() ([]Twin, error) {
	out := make([]Twin, 0, len(p.Items))
	for _, it := range p.Items {
		var t Twin
		if err := json.Unmarshal(it, &t); err != nil {
			return nil, protocolError("query: decoding a twin: %v", err)
		}
		out = append(out, t)
	}
	return out, nil
}

// Query is a twin query read page by page, like azure-iothub's Query:
// call Next while HasMore.
// [Azure/azure-iot-sdk-node service/src/query.ts]
type Query struct {
	c        *Client
	text     string
	pageSize int
	token    string // guarded by the caller: a Query is not for concurrent use
	more     bool
}

// NewQuery prepares text, an IoT Hub query ("SELECT * FROM devices WHERE
// tags.site = 'lab'"), read pageSize results at a time; 0 lets the hub pick
// (hubsim: 100), larger than MaxQueryPageSize is capped. Nothing is sent
// until Next.
func (c *Client) NewQuery(text string, pageSize int) *Query {
	return &Query{c: c, text: text, pageSize: min(max(pageSize, 0), MaxQueryPageSize), more: true}
}

// HasMore reports whether Next has another page to fetch.
func (q *Query) HasMore() bool { return q.more }

// Next fetches the next page. After the last page HasMore is false; Next
// then returns an empty page.
// [Azure/azure-iot-sdk-node service/src/registry.ts (createQuery: POST /devices/query,
// x-ms-max-item-count, x-ms-continuation)]
func (q *Query) Next(ctx context.Context) (*QueryPage, error) {
	if !q.more {
		return &QueryPage{}, nil
	}
	h := http.Header{}
	if q.pageSize > 0 {
		h.Set(hdrMaxItemCount, strconv.Itoa(q.pageSize))
	}
	if q.token != "" {
		h.Set(hdrContinuation, q.token)
	}
	var items []json.RawMessage
	_, hdr, err := q.c.rest.do(ctx, request{
		method:     http.MethodPost,
		path:       pathQuery,
		apiVersion: apiVersionHub,
		header:     h,
		body: struct {
			Query string `json:"query"`
		}{q.text},
		out: &items,
	})
	if err != nil {
		return nil, fmt.Errorf("service: query: %w", err)
	}
	q.token = hdr.Get(hdrContinuation)
	q.more = q.token != ""
	if items == nil {
		items = []json.RawMessage{}
	}
	return &QueryPage{Items: items, ItemType: hdr.Get(hdrItemType)}, nil
}

// QueryAll runs text to the end and returns every item, reading pageSize
// at a time (0: the hub's default). limit > 0 stops after that many items.
func (c *Client) QueryAll(ctx context.Context, text string, pageSize, limit int) ([]json.RawMessage, error) {
	q := c.NewQuery(text, pageSize)
	var all []json.RawMessage
	for q.HasMore() {
		p, err := q.Next(ctx)
		if err != nil {
			return nil, err
		}
		all = append(all, p.Items...)
		if limit > 0 && len(all) >= limit {
			return all[:limit], nil
		}
	}
	return all, nil
}
