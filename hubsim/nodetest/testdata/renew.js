'use strict';
// SAS token renewal: the device SDK signs short-lived tokens and, before
// each expires, reconnects with a fresh one (a new MQTT CONNECT on a new
// TLS connection, clean session false) and does NOT subscribe again: it
// relies on the hub keeping the subscriptions of a clean-session-0 client,
// as IoT Hub does (MicrosoftDocs/azure-docs articles/iot/iot-mqtt-connect-to-iot-hub.md,
// "Receiving cloud-to-device messages"). After two renewals the device must
// still get twin responses, receive desired updates, answer direct methods
// and send events.
// Input: {hubConnectionString, deviceConnectionString, deviceId, transport, marker,
//         tokenValidSeconds, renewalMarginSeconds, renewals}
const { Client, Message, SharedAccessKeyAuthenticationProvider } = require('azure-iot-device');
const { Mqtt, MqttWs } = require('azure-iot-device-mqtt');
const ServiceClient = require('azure-iothub').Client;
const { Registry } = require('azure-iothub');
const { run, step, waitFor, withTimeout } = require('./lib');

run(async (inp) => {
  const Transport = { Mqtt, MqttWs }[inp.transport];
  if (!Transport) throw new Error('unknown transport ' + inp.transport);
  const provider = SharedAccessKeyAuthenticationProvider.fromConnectionString(
    inp.deviceConnectionString, inp.tokenValidSeconds, inp.renewalMarginSeconds);
  let renewals = 0;
  const renewed = waitFor(inp.renewals + ' token renewals', 30000, (done) => {
    provider.on('newTokenAvailable', () => { if (++renewals === inp.renewals) done(); });
  });
  const client = Client.fromAuthenticationProvider(provider, Transport);
  const errors = [];
  client.on('error', (e) => errors.push(e.message));
  const out = { calls: [] };
  await step('open', () => client.open());
  const twin = await step('getTwin', () => client.getTwin());
  client.onDeviceMethod('ping', (req, res) => {
    out.calls.push(req.payload);
    res.send(200, { pong: req.payload }, () => {});
  });
  await step('wait for renewals', () => renewed);
  await step('reported after renewals', () => withTimeout('twin response to a reported patch', 10000, new Promise((resolve, reject) => {
    twin.properties.reported.update({ renewedAfter: inp.marker }, (err) => err ? reject(err) : resolve());
  })));
  const gotDesired = waitFor('desired update after renewals', 10000, (done) => {
    twin.on('properties.desired', (d) => { if (d.marker === inp.marker) done(d); });
  });
  const registry = Registry.fromConnectionString(inp.hubConnectionString);
  const svcTwin = (await step('service getTwin', () => registry.getTwin(inp.deviceId))).responseBody;
  await step('service desired update', () => svcTwin.update({ properties: { desired: { marker: inp.marker } } }));
  await step('receive desired', () => gotDesired);
  const service = ServiceClient.fromConnectionString(inp.hubConnectionString);
  const m = (await step('invoke after renewals', () => service.invokeDeviceMethod(inp.deviceId, { methodName: 'ping', payload: inp.marker, responseTimeoutInSeconds: 5 }))).result;
  out.method = m;
  const msg = new Message('{"renewed":true}');
  msg.properties.add('marker', inp.marker);
  await step('sendEvent after renewals', () => client.sendEvent(msg));
  await step('close', () => client.close());
  out.renewals = renewals;
  out.errors = errors;
  return out;
});
