// Package sas verifies Azure IoT shared access signature tokens on hubsim's
// service side: device and module tokens on the hub, registration tokens on
// DPS, and shared-access-policy tokens on the service REST APIs.
//
// It is written independently of the SDK's token code (sdk/auth) and must not
// import it, so a wire mistake cannot hide by being made on both sides; only
// the external test package drives one with the other.
//
// The verifier is deliberately lenient where the official SDKs differ
// (field order; sr percent-encoded or not, in upper- or lower-case hex) and
// strict everywhere else (duplicate, unknown or missing fields, bad
// encodings). Errors say which check failed and never include a key or a
// signature.
package sas
