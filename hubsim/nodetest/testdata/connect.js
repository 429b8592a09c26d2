'use strict';
// Connection cases for azure-iot-device: open with a connection string
// (shared access key, or x509=true with a certificate and key), send one
// event, close. With expectRefusal, the open must fail and the script
// reports the SDK's error.
// Input: {connectionString, transport, certPEM, keyPEM, marker, expectRefusal}
const { Client, Message } = require('azure-iot-device');
const { Mqtt, MqttWs } = require('azure-iot-device-mqtt');
const { run, step, expectError } = require('./lib');

run(async (inp) => {
  const Transport = { Mqtt, MqttWs }[inp.transport];
  if (!Transport) throw new Error('unknown transport ' + inp.transport);
  const client = Client.fromConnectionString(inp.connectionString, Transport);
  client.on('error', () => {});
  if (inp.certPEM) {
    await step('setOptions', () => client.setOptions({ cert: inp.certPEM, key: inp.keyPEM }));
  }
  if (inp.expectRefusal) {
    const refused = await expectError('open (expected to fail)', () => client.open());
    await client.close().catch(() => {});
    return { refused };
  }
  await step('open', () => client.open());
  const msg = new Message('{"connected":true}');
  msg.properties.add('marker', inp.marker);
  await step('sendEvent', () => client.sendEvent(msg));
  await step('close', () => client.close());
  return { sent: true };
});
