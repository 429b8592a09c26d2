// Package nodetest proves that hubsim serves the official Azure IoT Node.js
// SDKs: its tests run Node scripts (testdata/*.js) that use azure-iothub,
// azure-iot-device(-mqtt), azure-iot-provisioning-device(-http/-mqtt),
// azure-iot-security-symmetric-key and azure-iot-provisioning-service, unmodified,
// against a sim started in the test, and assert on the JSON each script prints.
//
// The SDKs only reach ports 443 and 8883, so the sim listens there on
// dedicated loopback addresses (hub A 127.0.0.7, hub B 127.0.0.8, DPS
// 127.0.0.9) with IP-literal host names, and the Node processes trust the
// sim's CA through NODE_EXTRA_CA_CERTS. That needs root (or
// CAP_NET_BIND_SERVICE), node and npm: without them the tests skip on a
// developer machine and fail in CI (CI=true), naming what is missing.
//
// The npm packages are pinned in testdata/package.json and
// testdata/package-lock.json. The first run installs them with `npm ci`
// into the user cache directory, keyed by the lock file's hash; later runs
// reuse that install.
package nodetest
