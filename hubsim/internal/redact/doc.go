// Package redact keeps credentials out of hubsim's logs. Handler wraps any
// slog.Handler and rewrites every record before it is written: SAS tokens
// ("SharedAccessSignature …"), the signature and stream-token fields that
// travel inside topics, URLs and connection strings ("sig=", "$auth=",
// "SharedAccessKey=", and their percent-encoded forms) lose their values,
// and attributes whose names say they hold a secret (key, password, token,
// authorization, secret) are replaced outright.
//
// Every hubsim component wraps the logger it is given (wrapping twice is a
// no-op), so a log line cannot leak a credential whichever path wrote it.
package redact
