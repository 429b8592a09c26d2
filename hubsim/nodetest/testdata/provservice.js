'use strict';
// Scenario 4: azure-iot-provisioning-service — individual enrollment and
// enrollment group (symmetric key): create, get, query, delete; attestation
// mechanisms (the group's is asked for under /enrollmentgroups/), a bulk
// operation (POST /enrollments/), and the registration states of a device
// the Go side registered in group registeredGroupId: group query, get,
// delete.
// Input: {dpsConnectionString, registrationId, groupId, primaryKey, secondaryKey, iotHub,
//         bulkId, registeredId, registeredGroupId}
const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');
const { run, step, expectError } = require('./lib');

run(async (inp) => {
  const sc = ProvisioningServiceClient.fromConnectionString(inp.dpsConnectionString);
  const out = {};

  const enr = (await step('create individual enrollment', () => sc.createOrUpdateIndividualEnrollment({
    registrationId: inp.registrationId,
    deviceId: inp.registrationId + '-dev',
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: inp.primaryKey, secondaryKey: inp.secondaryKey } },
    provisioningStatus: 'enabled',
    iotHubs: [inp.iotHub],
    allocationPolicy: 'static',
    initialTwin: { tags: { origin: 'node' }, properties: { desired: { interval: 7 } } },
  }))).responseBody;
  out.created = pick(enr, ['registrationId', 'deviceId', 'provisioningStatus', 'etag', 'allocationPolicy', 'iotHubs']);
  out.createdKey = enr.attestation && enr.attestation.symmetricKey && enr.attestation.symmetricKey.primaryKey === inp.primaryKey;

  const got = (await step('get individual enrollment', () => sc.getIndividualEnrollment(inp.registrationId))).responseBody;
  out.got = pick(got, ['registrationId', 'deviceId', 'etag', 'provisioningStatus']);
  out.gotAttestationType = got.attestation && got.attestation.type;
  out.gotInitialTwin = got.initialTwin || null;

  // Update with the etag (createOrUpdate sends If-Match when etag is set).
  got.provisioningStatus = 'disabled';
  const upd = (await step('update individual enrollment', () => sc.createOrUpdateIndividualEnrollment(got))).responseBody;
  out.updated = pick(upd, ['registrationId', 'provisioningStatus', 'etag']);

  const grp = (await step('create enrollment group', () => sc.createOrUpdateEnrollmentGroup({
    enrollmentGroupId: inp.groupId,
    attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: inp.primaryKey, secondaryKey: inp.secondaryKey } },
    provisioningStatus: 'enabled',
  }))).responseBody;
  out.groupCreated = pick(grp, ['enrollmentGroupId', 'provisioningStatus', 'etag']);
  const ggot = (await step('get enrollment group', () => sc.getEnrollmentGroup(inp.groupId))).responseBody;
  out.groupGot = pick(ggot, ['enrollmentGroupId', 'etag']);
  out.groupAttestationType = ggot.attestation && ggot.attestation.type;

  const q = sc.createIndividualEnrollmentQuery({ query: 'SELECT * FROM enrollments' }, 100);
  const page = (await step('query enrollments', () => q.next())).responseBody;
  out.queryIds = (page || []).map((e) => e.registrationId).sort();
  out.queryHasMore = q.hasMoreResults;
  const gq = sc.createEnrollmentGroupQuery({ query: 'SELECT * FROM enrollmentGroups' }, 100);
  const gpage = (await step('query enrollment groups', () => gq.next())).responseBody;
  out.groupQueryIds = (gpage || []).map((e) => e.enrollmentGroupId).sort();

  const att = (await step('get enrollment attestation mechanism', () => sc.getIndividualEnrollmentAttestationMechanism(inp.registrationId))).responseBody;
  out.attestationMechanismType = att && att.type;
  const gatt = (await step('get group attestation mechanism', () => sc.getEnrollmentGroupAttestationMechanism(inp.groupId))).responseBody;
  out.groupAttestationMechanismType = gatt && gatt.type;

  // Callback form: in azure-iot-provisioning-service 1.11.2 the promise
  // form of runBulkEnrollmentOperation never settles (its inner callback
  // runs only when the caller passed one).
  const bulk = await step('bulk create enrollments', () => new Promise((resolve, reject) => sc.runBulkEnrollmentOperation({
    mode: 'create',
    enrollments: [{ registrationId: inp.bulkId, attestation: { type: 'symmetricKey', symmetricKey: { primaryKey: inp.primaryKey, secondaryKey: inp.secondaryKey } } }],
  }, (err, result) => (err ? reject(err) : resolve(result)))));
  out.bulkSuccessful = bulk && bulk.isSuccessful;

  const rq = sc.createEnrollmentGroupDeviceRegistrationStateQuery({ query: '*' }, inp.registeredGroupId, 100);
  const rpage = (await step('query group registration states', () => rq.next())).responseBody;
  out.groupRegistrationIds = (rpage || []).map((r) => r.registrationId).sort();
  const reg = (await step('get registration state', () => sc.getDeviceRegistrationState(inp.registeredId))).responseBody;
  out.registrationState = pick(reg, ['registrationId', 'status', 'assignedHub']);
  await step('delete registration state', () => sc.deleteDeviceRegistrationState(inp.registeredId));
  out.getDeletedRegistration = await expectError('get deleted registration state', () => sc.getDeviceRegistrationState(inp.registeredId));

  await step('delete individual enrollment', () => sc.deleteIndividualEnrollment(inp.registrationId));
  out.getDeleted = await expectError('get deleted enrollment', () => sc.getIndividualEnrollment(inp.registrationId));
  await step('delete enrollment group', () => sc.deleteEnrollmentGroup(ggot));
  out.getDeletedGroup = await expectError('get deleted group', () => sc.getEnrollmentGroup(inp.groupId));
  return out;
});

function pick(o, keys) {
  const out = {};
  for (const k of keys) out[k] = o ? o[k] : undefined;
  return out;
}
