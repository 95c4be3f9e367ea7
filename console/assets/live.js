// The console's live connection: the same WebSocket hub the app uses (/v1/ws), signed in
// by the session cookie (same origin only). Pages subscribe to staff topics or listen for
// event types; the connection resumes from "now" and reconnects with a backoff.

const listeners = new Map(); // event type -> Set(fn)
const topics = new Set();
let socket = null;
let retry = 1000;
let stateListener = () => {};
let pingTimer = null;
let stopped = false;

function send(frame) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
}

export function on(type, fn) {
  if (!listeners.has(type)) listeners.set(type, new Set());
  listeners.get(type).add(fn);
  return () => listeners.get(type).delete(fn);
}

export function watch(topic) {
  topics.add(topic);
  send({ type: 'sub', topic, ref: topic });
  return () => { topics.delete(topic); send({ type: 'unsub', topic, ref: topic }); };
}

function dispatch(frame) {
  for (const fn of listeners.get(frame.type) || []) {
    try { fn(frame.data, frame); } catch (error) { console.error(error); }
  }
}

export function start(onState) {
  stopped = false;
  stateListener = onState || stateListener;
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  socket = new WebSocket(`${scheme}://${location.host}/v1/ws`);
  socket.addEventListener('message', (message) => {
    let frame;
    try { frame = JSON.parse(message.data); } catch { return; }
    if (frame.type === 'hello') {
      retry = 1000;
      send({ type: 'resume' }); // live from now: pages load their state over REST
      for (const topic of topics) send({ type: 'sub', topic, ref: topic });
      clearInterval(pingTimer);
      pingTimer = setInterval(() => send({ type: 'ping' }), (frame.heartbeat_seconds || 25) * 1000);
      stateListener(true);
      dispatch({ type: 'live.connected' });
      return;
    }
    dispatch(frame);
  });
  socket.addEventListener('close', (event) => {
    clearInterval(pingTimer);
    stateListener(false);
    if (stopped) return;
    if (event.code === 1012) {
      // A gateway handing sockets to a lighter one (docs/realtime.md, "Rebalancing"): not an
      // error, so soon, with a jitter, and without growing the backoff.
      setTimeout(() => start(), 100 + Math.random() * 900);
      return;
    }
    setTimeout(() => start(), retry);
    retry = Math.min(retry * 2, 30000);
  });
}

export function stop() {
  stopped = true;
  if (socket) socket.close();
}
