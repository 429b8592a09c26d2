'use strict';
// Scenario 3: azure-iot-device over one MQTT transport (Mqtt or MqttWs):
// connect, get the twin, patch reported properties, receive a desired
// update made through azure-iothub, receive a cloud-to-device message,
// send an event with properties.
// Input: {hubConnectionString, deviceConnectionString, deviceId, transport, marker}
const { Client, Message } = require('azure-iot-device');
const { Mqtt, MqttWs } = require('azure-iot-device-mqtt');
const { Registry } = require('azure-iothub');
const { run, step, waitFor } = require('./lib');

run(async (inp) => {
  const transports = { Mqtt, MqttWs };
  const Transport = transports[inp.transport];
  if (!Transport) throw new Error('unknown transport ' + inp.transport);
  const out = {};
  const client = Client.fromConnectionString(inp.deviceConnectionString, Transport);
  client.on('error', () => {});
  // A cloud-to-device message was queued before the device connected: it
  // arrives once the client subscribes (on the first 'message' listener).
  const gotC2D = waitFor('cloud-to-device message', 15000, (done) => {
    client.on('message', (m) => {
      client.complete(m, () => {});
      done({
        data: m.data.toString(), messageId: m.messageId, correlationId: m.correlationId,
        contentType: m.contentType, contentEncoding: m.contentEncoding,
        properties: Object.fromEntries(m.properties.propertyList.map((p) => [p.key, p.value])),
      });
    });
  });
  await step('open', () => client.open());
  out.c2d = await step('receive c2d', () => gotC2D);

  const twin = await step('getTwin', () => client.getTwin());
  out.initialDesired = strip(twin.properties.desired);
  out.initialReported = strip(twin.properties.reported);

  await step('reported update', () => new Promise((resolve, reject) => {
    twin.properties.reported.update({ transport: inp.transport, fw: { version: '1.2.3' }, marker: inp.marker }, (err) => err ? reject(err) : resolve());
  }));

  // Wait for a desired-properties notification carrying our marker, then
  // make the change through the service SDK.
  const gotDesired = waitFor('desired property update', 15000, (done) => {
    twin.on('properties.desired', (delta) => {
      if (delta && delta.marker === inp.marker) done(delta);
    });
  });
  const registry = Registry.fromConnectionString(inp.hubConnectionString);
  const svcTwin = (await step('service getTwin', () => registry.getTwin(inp.deviceId))).responseBody;
  out.serviceSeesReported = strip(svcTwin.properties.reported);
  await step('service twin.update desired', () => svcTwin.update({ properties: { desired: { marker: inp.marker, interval: 42 } } }));
  const delta = await step('receive desired', () => gotDesired);
  out.desiredDelta = strip(delta);
  out.desiredVersion = delta.$version;
  out.twinDesiredAfter = strip(twin.properties.desired);

  const msg = new Message(JSON.stringify({ temp: 21.5, transport: inp.transport }));
  msg.properties.add('marker', inp.marker);
  msg.properties.add('kind', 'telemetry');
  msg.messageId = 'msg-' + inp.marker;
  msg.contentType = 'application/json';
  msg.contentEncoding = 'utf-8';
  await step('sendEvent', () => client.sendEvent(msg));
  await step('close', () => client.close());
  return out;
});

function strip(props) {
  if (!props) return null;
  const out = {};
  for (const k of Object.keys(props)) {
    if (!k.startsWith('$') && typeof props[k] !== 'function') out[k] = props[k];
  }
  return out;
}
