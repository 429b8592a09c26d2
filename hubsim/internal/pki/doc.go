// Package pki is hubsim's certificate authority. It creates (or reuses from
// a directory) an ECDSA P-256 CA and a TLS server certificate whose subject
// alternative names cover loopback (127.0.0.1, ::1, localhost) and every
// host name hubsim answers for, so clients can trust hubsim exactly as they
// would trust Azure: by adding one CA file.
//
// Files in the directory:
//
//	ca.pem      CA certificate (0644) — what clients trust
//	ca.key      CA private key (0600)
//	server.pem  server certificate (0644)
//	server.key  server private key (0600)
//
// The CA is created once and reused; the server certificate is issued again
// whenever the wanted name set changes, it is not signed by the CA on disk,
// or it is close to expiry. All writes are crash-safe (see atomicfile).
//
// IP-literal names go to the IPAddresses SAN: a client that dials an IP
// sends no SNI and verifies the IP SAN (PROTOCOL.md §12).
package pki
