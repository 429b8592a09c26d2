'use strict';
// Scenario 1: azure-iothub Registry — device CRUD, list, twin get/update
// with etags, against one hubsim hub.
// Input: {hubConnectionString, deviceId}
const { Registry } = require('azure-iothub');
const { run, step, expectError } = require('./lib');

run(async (inp) => {
  const registry = Registry.fromConnectionString(inp.hubConnectionString);
  const id = inp.deviceId;
  const out = {};

  const created = await step('create', () => registry.create({ deviceId: id, status: 'enabled' }));
  const c = created.responseBody;
  out.created = {
    deviceId: c.deviceId, status: c.status, etag: c.etag,
    authType: c.authentication && c.authentication.type,
    hasPrimaryKey: !!(c.authentication && c.authentication.symmetricKey && c.authentication.symmetricKey.primaryKey),
  };
  out.createStatusCode = created.httpResponse && created.httpResponse.statusCode;

  out.duplicate = await expectError('create duplicate', () => registry.create({ deviceId: id }));

  const got = (await step('get', () => registry.get(id))).responseBody;
  out.got = { deviceId: got.deviceId, status: got.status, etag: got.etag, connectionState: got.connectionState };

  const upd = (await step('update', () => registry.update({ deviceId: id, status: 'disabled', etag: got.etag }))).responseBody;
  out.updated = { deviceId: upd.deviceId, status: upd.status, etag: upd.etag };

  const list = (await step('list', () => registry.list())).responseBody;
  out.listIds = list.map((d) => d.deviceId).sort();

  const twin = (await step('getTwin', () => registry.getTwin(id))).responseBody;
  out.twinBefore = { deviceId: twin.deviceId, etag: twin.etag, version: twin.version, tags: twin.tags || null, desired: stripMeta(twin.properties && twin.properties.desired) };

  // Twin.update sends If-Match with the etag the twin was read with.
  const patched = (await step('twin.update', () => twin.update({ tags: { site: 'lab', floor: 3 }, properties: { desired: { interval: 30, mode: 'eco' } } }))).result;
  out.twinAfter = { etag: patched.etag, version: patched.version, tags: patched.tags, desired: stripMeta(patched.properties.desired) };

  // The etag the first read returned is stale now: the hub must refuse it.
  out.staleEtag = await expectError('updateTwin stale etag', () => registry.updateTwin(id, { tags: { site: 'stale' } }, out.twinBefore.etag));

  // A fresh read reflects the update; a second update with the fresh etag works.
  const again = (await step('getTwin again', () => registry.getTwin(id))).responseBody;
  out.twinReread = { etag: again.etag, tags: again.tags, desired: stripMeta(again.properties.desired) };
  const second = (await step('updateTwin fresh etag', () => registry.updateTwin(id, { properties: { desired: { mode: null } } }, again.etag))).responseBody;
  out.twinSecond = { desired: stripMeta(second.properties.desired) };

  await step('delete', () => registry.delete(id));
  out.afterDelete = await expectError('get deleted', () => registry.get(id));
  return out;
});

function stripMeta(props) {
  if (!props) return null;
  const out = {};
  for (const k of Object.keys(props)) {
    if (!k.startsWith('$')) out[k] = props[k];
  }
  return out;
}
