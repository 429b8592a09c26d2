//go:build (linux && (386 || amd64 || arm || arm64 || loong64 || ppc64le || riscv64 || s390x)) || (darwin && (amd64 || arm64)) || (freebsd && (386 || amd64 || arm || arm64)) || (netbsd && amd64) || (openbsd && (amd64 || arm64)) || (windows && (386 || amd64 || arm64))

package store

// The "sqlite" database/sql driver, cgo-free. modernc.org/sqlite is
// generated for the platforms in this file's build constraint only (its
// lib/sqlite_<os>_<arch>.go files); linux/mips and mipsle, among others,
// have none.
import _ "modernc.org/sqlite"

// Available reports whether this build of hubsim has the SQLite driver.
// Without it (GOARCH=mips, mipsle, …) hubsim runs with its state in memory
// only and cannot answer twin queries; the SDK and agent tests that drive
// hubsim still build and run there (make test-cross).
const Available = true
