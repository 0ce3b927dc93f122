// A bench example (SIMULATION): the console's half of a registration, from a web page. Open the session, verify
// the SAM, read the health card, sign with it; each answer is shown as the console gave it. The HIS would then send
// the signature to the NHI's web API (on the bench, its twin; see examples/register_visit.py for the whole visit).
//
// Served by the console (/console/examples/, --sim only) the page calls its own origin. Served by any web server on
// localhost (python3 -m http.server), it calls https://localhost:<port> (?port=, 5066 by default) with fetch() in
// cors mode: the browser sends the page's Origin, which the console checks against its allow-list (`localhost` is
// on it from the start) before it runs anything. Text from the console is only ever set as textContent.
"use strict";

const ALREADY_INITIALIZED = 1001; // Initial on an open session: the session is used as it is

function consoleBase() {
  if (location.protocol === "https:" && location.pathname.startsWith("/console/examples/")) return "";
  const port = new URLSearchParams(location.search).get("port") || "5066";
  if (!/^[0-9]{1,5}$/.test(port)) throw new Error("?port= must be a port number");
  return "https://localhost:" + port;
}

const BASE = consoleBase();

async function call(method, path, body) {
  // A JSON body on every POST, as HIS code sends it; a browser's fetch() cannot send one on GET.
  const init = { method, mode: "cors", cache: "no-store" };
  if (body !== undefined) {
    init.headers = { "Content-Type": "application/json" };
    init.body = JSON.stringify(body);
  }
  const response = await fetch(BASE + path, init);
  const text = await response.text();
  let answer = null;
  try {
    answer = JSON.parse(text);
  } catch (error) {
    answer = null;
  }
  return { http: response.status, answer, text };
}

const STEPS = {
  initial: () => call("POST", "/api/common/v1/Initial", {}),
  sam: () => call("POST", "/api/sam/v1/Verification", {}),
  basic: () => call("GET", "/api/hc/v1/Basic"),
  signature: () => call("POST", "/api/hc/v1/Signature/Hc", { serviceType: document.getElementById("service-type").value }),
};
const ORDER = ["initial", "sam", "basic", "signature"];

function show(step, code, outcome, answer) {
  const item = document.getElementById("step-" + step);
  item.querySelector(".outcome").textContent = outcome;
  item.querySelector(".answer").textContent = answer;
  item.dataset.code = code; // last, so that a test waiting on it finds the text in place
}

// One step: its answer shown; true when it went through (statusCode 0, or an open session for Initial).
async function run(step) {
  show(step, "", "…", "");
  let result;
  try {
    result = await STEPS[step]();
  } catch (error) {
    // fetch() rejects with no detail when the browser blocked the call: the console's certificate is not trusted,
    // the console is not running, or it refused this page's origin (HTTP 403 before CORS headers: opaque here).
    show(step, "error", "no answer: is the console running, its CA trusted, this page's origin allowed?",
         String(error));
    return false;
  }
  const { http, answer, text } = result;
  if (http !== 200 || answer === null || typeof answer.statusCode !== "number") {
    show(step, "error", "HTTP " + http + ": the console refused the request", text);
    return false;
  }
  const code = answer.statusCode;
  let outcome = "statusCode " + code + (answer.message ? ": " + answer.message : "");
  if (step === "initial" && code === ALREADY_INITIALIZED) outcome += " (the open session is used)";
  show(step, String(code), outcome, JSON.stringify(answer, null, 2));
  return code === 0 || (step === "initial" && code === ALREADY_INITIALIZED);
}

async function runAll() {
  for (const step of ORDER) show(step, "", "", "");
  for (const step of ORDER) {
    if (!(await run(step))) return;
  }
}

document.getElementById("console-url").textContent = BASE || location.origin;
document.getElementById("api-link").href = BASE + "/api/swagger/index.html";
for (const button of document.querySelectorAll("button[data-step]")) {
  button.addEventListener("click", () => run(button.dataset.step));
}
document.getElementById("run-all").addEventListener("click", runAll);
