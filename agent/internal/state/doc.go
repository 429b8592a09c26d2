// Package state keeps the agent's cached DPS assignment (which hub, which
// device ID, registered when) in <state_dir>/state.json, so a rebooted device
// reconnects straight to its hub instead of asking DPS again.
//
// Writes are crash-safe and flash-friendly: Save writes only when the content
// changed, through a temporary file in the same directory that is fsynced and
// renamed over state.json, then the directory is fsynced. A crash at any
// point leaves either the old or the new file, never a torn one. A file that
// is nevertheless unreadable (bad flash, hand edits) is moved aside as
// state.json.corrupt-<time> and Load reports ErrCorrupt; the caller then
// registers with DPS again.
//
// The file holds no secrets: the credential is referenced by a fingerprint
// (see Fingerprint). It is still written 0600 in a 0700 directory.
package state
