// Package auth holds the device-side credentials of porthole: Azure IoT
// shared access signature (SAS) tokens for the three principals the SDK signs
// as (a hub device or module, a DPS registration, a shared access policy),
// enrollment-group key derivation, token parsing, connection strings, and
// X.509 key pair loading with the thumbprints Azure shows.
//
// A token is
//
//	SharedAccessSignature sr=<sr>&sig=<urlenc(base64(HMAC-SHA256(key, sr+"\n"+se)))>&se=<unix seconds>[&skn=<key name>]
//
// where the HMAC covers sr exactly as it appears in the token. The builders
// here always percent-encode sr (RFC 3986 unreserved characters kept,
// upper-case hex), as the Node hub client and the C# clients do.
//
// Clients that must renew tokens hold a [Signer]; [KeySigner] mints a fresh
// token from a symmetric key and an injected clock on every call.
//
// Nothing in this package logs, and no String method prints a key or a
// signature; use [Redact] before logging a token.
package auth
