// Package simconfig is hubsim's configuration: the YAML file (strict, every
// problem reported with file:line and field), its defaults, and the shared
// access keys hubsim generates on first start and keeps in its state
// directory.
//
// Use it in three steps:
//
//	cfg, err := simconfig.Load("hubsim.yaml") // or simconfig.Default()
//	cfg.Listen = ...                           // flag overrides, if any
//	err = cfg.Validate()                       // every problem at once
//	err = cfg.EnsureKeys(nil)                  // fill and persist missing keys
//
// The structs are plain data: hub, DPS and relay components read the fields
// they need. Keys are secrets; nothing in this package logs them.
package simconfig
