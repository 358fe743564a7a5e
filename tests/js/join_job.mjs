// Runs the client snippet of spec/websocket.md with the official `phoenix` npm package:
//
//     node join_job.mjs BASE_URL TOKEN JOB_ID
//
// prints one JSON line per thing received ({"kind": "join" | "event" | "error", ...}) and exits 0 after
// job:completed (1 after job:failed, 2 when the join is refused, 3 on timeout).
//
// Two things a browser has and Node 20 lacks:
// * a WebSocket: Node 20 has a global WebSocket only behind the experimental --experimental-websocket
//   flag. We pass `transport` from the `ws` package instead, the usual Node implementation, which works
//   the same on every Node version (the phoenix docs name this option for non-browser clients).
// * a page URL: the snippet's "/socket" is relative to the page, and phoenix resolves it with the
//   global `location`, so the server's URL plays the page here.
import { Socket } from "phoenix";
import WebSocket from "ws";

const [base, token, jobId] = process.argv.slice(2);
globalThis.location = new URL(base);
const print = (obj) => console.log(JSON.stringify(obj));
setTimeout(() => { print({ kind: "error", reason: "timeout" }); process.exit(3); }, 60000);

// --- the snippet from the spec ---
const socket = new Socket("/socket", { params: { token }, transport: WebSocket });
socket.connect();
const channel = socket.channel("jobs:" + jobId);
channel.on("job:progress", (payload) => print({ kind: "event", event: "job:progress", payload }));
channel.on("job:completed", (payload) => {
  print({ kind: "event", event: "job:completed", payload });
  socket.disconnect(() => process.exit(0));
});
channel.on("job:failed", (payload) => {
  print({ kind: "event", event: "job:failed", payload });
  socket.disconnect(() => process.exit(1));
});
channel.join()
  .receive("ok", (response) => print({ kind: "join", response }))
  .receive("error", (response) => { print({ kind: "error", response }); process.exit(2); });
