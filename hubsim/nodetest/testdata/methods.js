'use strict';
// Scenario 2: azure-iothub Client.invokeDeviceMethod against a device
// connected with azure-iot-device-mqtt that answers through onDeviceMethod,
// and against a device that is not connected.
// Input: {hubConnectionString, deviceConnectionString, deviceId, offlineDeviceId}
const ServiceClient = require('azure-iothub').Client;
const DeviceClient = require('azure-iot-device').Client;
const { Mqtt } = require('azure-iot-device-mqtt');
const { run, step, expectError } = require('./lib');

run(async (inp) => {
  const out = { received: [], attempts: {} };
  const device = DeviceClient.fromConnectionString(inp.deviceConnectionString, Mqtt);
  device.on('error', () => {});
  await step('device open', () => device.open());

  const answer = (status) => (req, res) => {
    out.received.push({ methodName: req.methodName, payload: req.payload === undefined ? 'undefined' : req.payload });
    res.send(status, { echo: req.payload, method: req.methodName }, () => {});
  };
  device.onDeviceMethod('reboot', answer(200));
  device.onDeviceMethod('fail', answer(503));

  const service = ServiceClient.fromConnectionString(inp.hubConnectionString);
  // onDeviceMethod subscribes in the background and offers no completion
  // callback, so a call may reach the hub before the SUBSCRIBE: retry on
  // 404 (device not listening) for a few seconds and report the attempts.
  const call = async (name, params) => {
    let last;
    for (let i = 0; i < 20; i++) {
      out.attempts[name] = i + 1;
      try {
        return await service.invokeDeviceMethod(inp.deviceId, params);
      } catch (err) {
        last = err;
        const code = err.response && err.response.statusCode;
        if (code !== 404) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    throw last;
  };

  const r1 = (await step('invoke reboot', () => call('reboot', { methodName: 'reboot', payload: { delay: 3, note: 'soon' }, responseTimeoutInSeconds: 15 }))).result;
  out.withPayload = r1;
  const r2 = (await step('invoke reboot without payload', () => call('reboot', { methodName: 'reboot', responseTimeoutInSeconds: 15 }))).result;
  out.withoutPayload = r2;
  const r3 = (await step('invoke fail', () => call('fail', { methodName: 'fail', payload: 'x', responseTimeoutInSeconds: 15 }))).result;
  out.deviceStatus503 = r3;

  out.offline = await expectError('invoke offline device', () => service.invokeDeviceMethod(inp.offlineDeviceId, { methodName: 'reboot', payload: {}, responseTimeoutInSeconds: 5, connectTimeoutInSeconds: 0 }));
  out.unknownDevice = await expectError('invoke unknown device', () => service.invokeDeviceMethod('no-such-device', { methodName: 'reboot', responseTimeoutInSeconds: 5 }));

  await step('device close', () => device.close());
  return out;
});
