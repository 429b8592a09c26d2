'use strict';
// Scenario: azure-iothub Registry.createQuery — twin queries with WHERE,
// projections, GROUP BY and paging through nextAsTwin / next, against one
// hubsim hub whose twins the Go side prepared.
// Input: {hubConnectionString, pageSize}
const { Registry } = require('azure-iothub');
const { run, step, expectError } = require('./lib');

// page wraps a Query page call (callback form, which every SDK version takes).
function page(query, method) {
  return new Promise((resolve, reject) => {
    query[method]((err, results, response) => {
      if (err) reject(err);
      else resolve({ results, response });
    });
  });
}

run(async (inp) => {
  const registry = Registry.fromConnectionString(inp.hubConnectionString);
  const out = {};

  // Whole twins, page by page, as Twin objects.
  const q = registry.createQuery("SELECT * FROM devices WHERE tags.nodeq = 'yes' AND NOT (tags.rank = 3)", inp.pageSize);
  out.twinPages = [];
  out.twinIds = [];
  out.twinsAreTwins = true;
  while (q.hasMoreResults) {
    const p = await step('nextAsTwin', () => page(q, 'nextAsTwin'));
    out.twinPages.push(p.results.length);
    for (const t of p.results) {
      out.twinIds.push(t.deviceId);
      if (typeof t.update !== 'function' || !t.tags || t.tags.nodeq !== 'yes') out.twinsAreTwins = false;
    }
    if (out.twinPages.length > 20) throw new Error('more than 20 pages');
  }

  // A projection: raw JSON objects.
  const pq = registry.createQuery("SELECT deviceId, tags.rank AS rank FROM devices WHERE tags.nodeq = 'yes' AND tags.rank >= 2");
  const pr = await step('projection', () => page(pq, 'next'));
  out.projection = pr.results;
  out.projectionItemType = pr.response && pr.response.headers ? pr.response.headers['x-ms-item-type'] : null;
  out.projectionHasMore = pq.hasMoreResults;

  // Aggregates.
  const gq = registry.createQuery('SELECT tags.nodeq AS q, COUNT() AS n FROM devices WHERE IS_DEFINED(tags.nodeq) GROUP BY tags.nodeq');
  out.groups = (await step('group by', () => page(gq, 'next'))).results;

  // Module twins.
  const mq = registry.createQuery("SELECT * FROM devices.modules WHERE tags.nodeq = 'mod'");
  out.moduleTwins = (await step('modules', () => page(mq, 'nextAsTwin'))).results.map((t) => t.deviceId + '/' + t.moduleId);

  // Invalid text: the hub refuses with 400.
  const bad = registry.createQuery('SELECT * FROM devices WHERE');
  out.invalid = await expectError('invalid query', () => page(bad, 'next'));
  return out;
});
