// Package doctor runs the checks behind `porthole-agent doctor`: the
// questions a field technician would otherwise answer by hand when a
// device does not come online.
//
//  1. Are the config and key files readable only by the agent?
//  2. Can the agent write its state directory; is the cached assignment sane?
//  3. Are the credentials usable (key decodes, certificate in date, a DPS
//     token can be signed)?
//  4. Do the DPS and hub host names resolve (or are they pinned by resolve)?
//  5. Does a TLS handshake with DPS and the hub succeed with the configured
//     trust (ca_file or the system roots)?
//  6. Is the local clock close to DPS's (HTTP Date header)?
//  7. Does DPS accept the credential (registration status lookup)?
//  8. Does something answer at each stream target, and is it dropbear?
//
// Run returns a Report; Report.Write prints it as a checklist with a
// one-line fix under every problem. Run never logs and never prints a
// secret; it changes nothing on the device except a temporary file it
// creates and removes to prove the state directory is writable.
//
// Network access goes through Options.DialContext and Options.LookupHost,
// and time through Options.Now, so tests point it at hubsim and at skewed
// clocks.
package doctor
