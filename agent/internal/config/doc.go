// Package config loads and checks the porthole agent's YAML configuration
// (by default /etc/porthole/agent.yaml).
//
// The file is edited by hand by field technicians, so the loader is strict
// and talkative:
//
//  1. Decode walks the yaml.Node tree, so every problem knows its line.
//     Unknown keys (with a "did you mean" hint), duplicate keys and wrong
//     types are errors.
//  2. Defaults fill every key that is absent (see Default).
//  3. Validate checks values and reports every problem at once
//     (errors.Join of *FieldError), each formatted as
//     "<file>:<line>: <dotted.field>: <what is wrong>; <what is expected>".
//  4. LoadSecrets reads the files the config points at (key files, client
//     certificate, CA file), derives the device key from an enrollment-group
//     key, and returns warnings (not errors) for loose file permissions.
//
// Load and Parse run all four steps. Secrets are held in Secret values that
// print as "[redacted]"; Config.Redacted (also String) dumps a config with
// every secret masked. Changes compares two configs for a SIGHUP reload and
// says which parts can be applied live and which need a reconnect, a new DPS
// registration or a process restart.
//
// Relative paths in the file are resolved against the directory of the file.
package config
