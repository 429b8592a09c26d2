'use strict';
// Shared helpers for the scenario scripts that hubsim/nodetest runs.
//
// Every script reads its input as JSON from the NODETEST_INPUT environment
// variable and ends by printing exactly one line that starts with
// RESULT_MARKER followed by a JSON object:
//   {"ok": true,  "result": {...}}                       on success
//   {"ok": false, "step": "<name>", "error": {...}}      on failure
// Anything else the SDKs print goes to stderr or other stdout lines, which
// the Go side only shows in the test log.

const RESULT_MARKER = 'NODETEST-RESULT ';

function input() {
  const raw = process.env.NODETEST_INPUT;
  if (!raw) throw new Error('NODETEST_INPUT is not set');
  return JSON.parse(raw);
}

let currentStep = 'start';
let finished = false;

function emit(obj) {
  if (finished) return;
  finished = true;
  process.stdout.write(RESULT_MARKER + JSON.stringify(obj) + '\n');
}

// describeError keeps what is useful to diagnose a refusal by hubsim: the
// SDK error's class and message, and the HTTP status and body when the
// error came from a REST call. Tokens are never part of these.
function describeError(err) {
  if (!err) return { message: String(err) };
  const out = { name: err.name || (err.constructor && err.constructor.name), message: err.message || String(err) };
  const resp = err.response || (err.transportError && err.transportError.response);
  if (resp && resp.statusCode) out.statusCode = resp.statusCode;
  if (err.responseBody !== undefined) out.responseBody = String(err.responseBody).slice(0, 2000);
  if (err.code) out.code = err.code;
  if (err.transportError && err.transportError !== err) out.transportError = describeError(err.transportError);
  if (err.amqpError) out.amqpError = String(err.amqpError);
  // A stack only for programming errors (a script bug or an SDK tripping
  // over a response it did not expect), not for SDK-reported refusals.
  if (err instanceof TypeError || err instanceof ReferenceError || err instanceof SyntaxError || err instanceof RangeError) out.stack = String(err.stack).split('\n').slice(1, 6).map((l) => l.trim());
  return out;
}

// step runs fn under a name that a failure report carries.
async function step(name, fn) {
  currentStep = name;
  return await fn();
}

// expectError runs fn, which must fail, and returns the description of its error.
async function expectError(name, fn) {
  currentStep = name;
  try {
    const r = await fn();
    return { unexpectedSuccess: true, value: r === undefined ? null : r };
  } catch (err) {
    return describeError(err);
  }
}

// waitFor resolves with the first value register's callback is given, or
// rejects after ms.
function waitFor(what, ms, register) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timed out after ' + ms + ' ms waiting for ' + what)), ms);
    register((v) => { clearTimeout(t); resolve(v); });
  });
}

// withTimeout rejects when promise has not settled after ms: operations
// whose answer never comes (an SDK waiting on a response topic) fail fast
// with the step name instead of running into the script deadline.
function withTimeout(what, ms, promise) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no answer after ' + ms + ' ms: ' + what)), ms);
    promise.then((v) => { clearTimeout(t); resolve(v); }, (e) => { clearTimeout(t); reject(e); });
  });
}

// run executes main(input) with a hard deadline, prints the result line and
// exits (the SDKs keep timers alive, so the process would not end alone).
function run(main) {
  const deadlineMs = Number(process.env.NODETEST_DEADLINE_MS || 45000);
  const timer = setTimeout(() => {
    emit({ ok: false, step: currentStep, error: { message: 'script deadline of ' + deadlineMs + ' ms exceeded' } });
    process.exit(2);
  }, deadlineMs);
  process.on('unhandledRejection', (err) => {
    emit({ ok: false, step: currentStep, error: describeError(err), unhandled: true });
    process.exit(1);
  });
  Promise.resolve()
    .then(() => main(input()))
    .then((result) => {
      clearTimeout(timer);
      emit({ ok: true, result: result === undefined ? null : result });
      process.exit(0);
    }, (err) => {
      clearTimeout(timer);
      emit({ ok: false, step: currentStep, error: describeError(err) });
      process.exit(1);
    });
}

module.exports = { run, step, expectError, waitFor, withTimeout, describeError };
