// Package query implements the IoT Hub query language for device and module
// twins over SQLite: it parses a query into a Query, compiles it to SQL over
// SQLite's JSON functions (json_type, json_extract, ->) and runs it against a
// twin_docs table or view (hub, device_id, module_id, doc), one page at a
// time with an opaque continuation token.
//
// The language is the one the Azure docs define for twin queries
// [doc: IoT Hub query language for device and module twins, jobs, and
// message routing (iot-hub-devguide-query-language.md); Queries for IoT Hub
// device and module twins (query-twins.md)]. hubsim's grammar, in EBNF
// (keywords, collection and function names are case-insensitive):
//
//	query      = "SELECT" [ "TOP" integer ] selection "FROM" collection
//	             [ "WHERE" condition ] [ "GROUP" "BY" path { "," path } ] .
//	selection  = "*" | field { "," field } .
//	field      = ( path | aggregate ) [ "AS" ident ] .
//	aggregate  = "COUNT" "(" ")" | ( "SUM" | "AVG" | "MIN" | "MAX" ) "(" path ")" .
//	collection = "devices" [ "." "modules" ] .
//	condition  = conjunct { "OR" conjunct } .
//	conjunct   = unary { "AND" unary } .
//	unary      = "NOT" unary | primary .
//	primary    = "(" condition ")" | function | comparison | membership | path .
//	comparison = operand ( "=" | "!=" | "<>" | "<" | ">" | "<=" | ">=" ) operand .
//	membership = path ( "IN" | "NIN" ) "[" literal { "," literal } "]" .
//	function   = "IS_DEFINED" "(" path ")"
//	           | ( "STARTSWITH" | "STARTS_WITH" | "ENDSWITH" | "ENDS_WITH" ) "(" path "," string ")" .
//	operand    = path | literal .
//	literal    = string | [ "-" ] number | "true" | "false" | "null" .
//	path       = ident { "." ident } .
//	ident      = ( letter | "_" | "$" ) { letter | digit | "_" | "$" } .
//	number     = ( digits [ "." { digit } ] | "." digits ) [ ( "e" | "E" ) [ "+" | "-" ] digits ]
//	           | "0x" hexdigits .
//	string     = "'" { char | escape } "'" | `"` { char | escape } `"` .
//	escape     = `\'` | `\"` | `\\` | `\u` hex hex hex hex .
//
// A path's first segment may not be a reserved word (SELECT TOP FROM WHERE
// GROUP BY AS AND OR NOT IN NIN TRUE FALSE NULL ORDER UNDEFINED); later
// segments may. The twin's top-level properties (deviceId, status,
// connectionState, tags, properties, …) match case-insensitively, as in
// Azure's "SELECT DeviceID" examples; nested names are case-sensitive.
// A comparison needs at least one path, and IN/NIN a path on the left.
// Projections next to aggregates must be GROUP BY paths.
//
// Semantics. A comparison holds only between primitives of the same type
// (strings, numbers, Booleans; null equals null); otherwise it is undefined,
// which SQL's NULL stands for, so NOT of an undefined comparison is still
// undefined and the twin is not returned. IS_DEFINED is true for any value,
// null included. A bare path is its Boolean value, undefined when it is not
// a Boolean. x IN [..] is true when x equals an element of its own type,
// false when x is a primitive equal to none, undefined otherwise; x NIN [..]
// is its negation. STARTSWITH and ENDSWITH compare characters exactly (no
// wildcards). SUM, AVG, MIN and MAX take numeric values only.
// Result items of projections leave out undefined properties; an unnamed
// aggregate is named "$1", "$2", … by its position. Results come in
// (device id, module id) order, groups in key order.
//
// Refused, with an *Error whose Unsupported is true and whose message names
// the construct: FROM devices.jobs, arithmetic (+ - * / %), functions other
// than the three above (the routing-only ones like LOWER, CONTAINS,
// AS_NUMBER are named), the undefined constant, array and object constants
// outside IN/NIN, array indexing and bracketed names, NOT IN (write NIN),
// ORDER BY, comparisons between two constants. Invalid text gets an *Error
// with Unsupported false. Both match ErrQuery.
//
// Every path and constant reaches SQLite as a bound parameter (an IN list
// as one JSON array); the SQL text holds only fragments written in this
// package. Long AND/OR chains are emitted as balanced trees, so a query of
// MaxQueryLength bytes stays within SQLite's expression depth limit.
//
// Paging: each page returns at most the requested size (default 100, at
// most 1000); when more remain, Result.Continuation is a token for the next
// page. Plain queries resume after the last (device id, module id) returned;
// aggregate queries resume at an offset into the groups. A token carries a
// fingerprint of the hub and the canonical query and is refused
// (ErrContinuation) for any other query.
package query
