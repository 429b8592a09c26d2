package query_test

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/porthole-iot/porthole/hubsim/internal/query"
	_ "modernc.org/sqlite"
)

func ExampleParse() {
	q, err := query.Parse("select deviceId from devices where tags.site = 'lab' and not is_defined(properties.reported.fw)")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(q)

	_, err = query.Parse("SELECT * FROM devices WHERE tags.n + 1 > 2")
	fmt.Println(err)
	// Output:
	// SELECT deviceId FROM devices WHERE (tags.site = 'lab') AND (NOT (IS_DEFINED(properties.reported.fw)))
	// query unsupported by hubsim at offset 35: arithmetic operator "+" (arithmetic is not supported in twin queries)
}

func ExampleExecute() {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // ":memory:" is one database per connection
	ctx := context.Background()
	_, err = db.ExecContext(ctx, `CREATE TABLE twin_docs (hub TEXT NOT NULL, device_id TEXT NOT NULL,
		module_id TEXT NOT NULL DEFAULT '', doc TEXT NOT NULL);
		INSERT INTO twin_docs VALUES
		('hub1', 'd1', '', '{"deviceId":"d1","tags":{"site":"lab"}}'),
		('hub1', 'd2', '', '{"deviceId":"d2","tags":{"site":"field"}}'),
		('hub1', 'd3', '', '{"deviceId":"d3","tags":{"site":"lab"}}')`)
	if err != nil {
		fmt.Println(err)
		return
	}
	page := query.Page{MaxItems: 1}
	for {
		res, err := query.Execute(ctx, db, "hub1", "SELECT deviceId FROM devices WHERE tags.site = 'lab'", page)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(string(res.Items[0]), res.ItemType, res.Continuation != "")
		if res.Continuation == "" {
			break
		}
		page.Continuation = res.Continuation
	}
	// Output:
	// {"deviceId":"d1"} raw true
	// {"deviceId":"d3"} raw false
}
