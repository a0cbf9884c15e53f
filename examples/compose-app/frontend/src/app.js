// compose-app: asks the api for a greeting and for the worker's last heartbeat.
'use strict';

async function getJSON(path) {
  const res = await fetch(path, { cache: 'no-store' });
  const body = await res.json();
  if (!res.ok) {
    throw new Error(body.error || res.status + ' ' + res.statusText);
  }
  return body;
}

function show(id, text) {
  document.getElementById(id).textContent = text;
}

async function hello() {
  try {
    const r = await getJSON('/api/hello');
    show('hello', r.message + ' (visit ' + r.visits + ', served by ' + r.host + ')');
  } catch (e) {
    show('hello', 'the api did not answer: ' + e.message);
  }
}

async function worker() {
  try {
    const r = await getJSON('/api/worker');
    show('worker', 'beat ' + r.beats + ' at ' + r.at + ': the api said "' + r.message + '"');
  } catch (e) {
    show('worker', 'no heartbeat yet: ' + e.message);
  }
}

document.getElementById('again').addEventListener('click', hello);
hello();
worker();
setInterval(worker, 5000);
