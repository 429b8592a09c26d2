'use strict';
// Scenario 5: azure-iot-provisioning-device with a symmetric-key security
// client over one transport (http, mqtt or mqttws), then azure-iot-device-mqtt
// connects to the hub DPS assigned and sends one event.
// Input: {provisioningHost, idScope, registrationId, key, groupKey, transport, marker}
// With groupKey set, the device key is derived from it the documented way
// (HMAC-SHA256 of the registration id keyed with the decoded group key).
const crypto = require('crypto');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { Client, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const { run, step } = require('./lib');

run(async (inp) => {
  let key = inp.key;
  if (inp.groupKey) {
    key = crypto.createHmac('sha256', Buffer.from(inp.groupKey, 'base64')).update(inp.registrationId, 'utf8').digest('base64');
  }
  let transport;
  if (inp.transport === 'http') {
    transport = new (require('azure-iot-provisioning-device-http').Http)();
  } else if (inp.transport === 'mqtt') {
    transport = new (require('azure-iot-provisioning-device-mqtt').Mqtt)();
  } else if (inp.transport === 'mqttws') {
    transport = new (require('azure-iot-provisioning-device-mqtt').MqttWs)();
  } else {
    throw new Error('unknown transport ' + inp.transport);
  }
  const security = new SymmetricKeySecurityClient(inp.registrationId, key);
  const dps = ProvisioningDeviceClient.create(inp.provisioningHost, inp.idScope, transport, security);
  const reg = await step('register', () => dps.register());
  const r = reg.registrationState || reg;
  const out = {
    assignedHub: r.assignedHub, deviceId: r.deviceId, status: r.status, substatus: r.substatus,
    registrationId: r.registrationId,
  };

  const cs = 'HostName=' + r.assignedHub + ';DeviceId=' + r.deviceId + ';SharedAccessKey=' + key;
  const client = Client.fromConnectionString(cs, Mqtt);
  client.on('error', () => {});
  await step('hub open', () => client.open());
  const twin = await step('hub getTwin', () => client.getTwin());
  out.desired = {};
  for (const k of Object.keys(twin.properties.desired)) if (!k.startsWith('$')) out.desired[k] = twin.properties.desired[k];
  const msg = new Message('{"hello":"from ' + inp.transport + '"}');
  msg.properties.add('marker', inp.marker);
  await step('hub sendEvent', () => client.sendEvent(msg));
  await step('hub close', () => client.close());
  return out;
});
