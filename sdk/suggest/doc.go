// Package suggest finds the "did you mean …?" for a mistyped
// configuration key. The operator CLI's config check and the agent's
// config decoder both use it, so a typo is answered alike in the two
// files. (hubsim keeps its own, with its own threshold: its packages do not
// import sdk/.)
package suggest
