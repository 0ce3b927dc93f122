// The status-light page: the 5.x floating light window, drawn from the console's live event stream.
// Everything comes from /api/events/v1/Stream (a snapshot, then changes) and, for the last calls, from
// /api/common/v1/Record on each (re)connection. Text from the console is only ever set as textContent.
"use strict";

const KINDS = {
  sam: { 0: "", 1: "雲端安全模組 cloud SAM", 2: "實體安全模組 physical SAM" },
  hpc: { 0: "", 1: "醫師卡 doctor card", 2: "醫事人員卡 staff card", 3: "行動憑證 mobile HCA" },
  hc: { 0: "", 1: "實體健保卡 physical card", 2: "虛擬健保卡 virtual card" },
};
const CARD_NAMES = { hc: "健保卡 health card", hpc: "醫事人員卡 staff card", unknown: "unknown card" };
const RECORDS_SHOWN = 20;

const view = { status: null, readers: new Map(), defaultReader: null, records: [], bench: null };

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function drawLights() {
  for (const card of ["sam", "hpc", "hc"]) {
    const light = document.getElementById("light-" + card);
    const state = view.status ? view.status[card] : { status: 0, type: 0 };
    light.querySelector(".lamp").dataset.level = String(state.status);
    light.querySelector(".level").textContent = String(state.status);
    light.querySelector(".kind").textContent = KINDS[card][state.type] || "";
  }
}

function drawSession() {
  const status = view.status || {};
  document.getElementById("session-initialized").textContent = status.initialized ? "yes" : "no";
  document.getElementById("session-name").textContent = status.name || "–";
  document.getElementById("session-reader").textContent = status.readerName || "–";
  document.getElementById("default-reader").textContent = view.defaultReader || "–";
}

function drawReaders() {
  const body = document.getElementById("readers");
  body.replaceChildren();
  for (const [name, card] of [...view.readers.entries()].sort()) {
    const row = element("tr");
    row.dataset.reader = name;
    const nameCell = element("td", name);
    if (name === view.defaultReader) nameCell.append(element("span", "default", "default-mark"));
    row.append(nameCell, element("td", card ? CARD_NAMES[card] || card : "–", "card"));
    const controls = element("td", null, "bench-only");
    if (view.bench && view.bench.readers.has(name)) controls.append(...benchControls(name));
    row.append(controls);
    body.append(row);
  }
}

function drawRecords() {
  const body = document.getElementById("records");
  body.replaceChildren();
  for (const record of view.records.slice(0, RECORDS_SHOWN)) {
    const row = element("tr");
    row.append(element("td", record.timestamp.replace("T", " ").slice(0, 23)), element("td", record.url),
               element("td", record.statusCode, record.statusCode === 0 ? "code-0" : "code-error"));
    body.append(row);
  }
}

function drawAll() {
  drawLights();
  drawSession();
  drawReaders();
  drawRecords();
}

async function loadRecords() {
  try {
    const answer = await fetch("/api/common/v1/Record?take=" + RECORDS_SHOWN);
    if (answer.ok) view.records = await answer.json();
  } catch (error) {
    return; // the stream's reconnection will try again
  }
  drawRecords();
}

// --- the bench (serve --sim): insert and remove its cards ------------------------------------------
async function loadBench() {
  try {
    const [profiles, readers] = await Promise.all([fetch("/api/sim/v1/Profiles"), fetch("/api/sim/v1/Readers")]);
    if (!profiles.ok || !readers.ok) return; // not a bench: 404
    view.bench = {
      profiles: (await profiles.json()).profiles,
      readers: new Set((await readers.json()).readers.map((reader) => reader.name)),
    };
  } catch (error) {
    return;
  }
  document.body.classList.add("bench");
  drawReaders();
}

function benchControls(reader) {
  const choice = element("select");
  choice.setAttribute("aria-label", "profile for " + reader);
  for (const profile of view.bench.profiles) {
    const option = element("option", profile.name + " (" + profile.kind + ")");
    option.value = profile.name;
    choice.append(option);
  }
  const insert = element("button", "insert");
  insert.addEventListener("click", () => benchCard(reader, "PUT", { profile: choice.value }));
  const remove = element("button", "remove");
  remove.addEventListener("click", () => benchCard(reader, "DELETE"));
  return [choice, insert, remove];
}

async function benchCard(reader, method, body) {
  const init = { method };
  if (body) {
    init.headers = { "Content-Type": "application/json" };
    init.body = JSON.stringify(body);
  }
  await fetch("/api/sim/v1/Readers/" + encodeURIComponent(reader) + "/Card", init);
  // Nothing to draw here: the card's arrival comes back through the stream like any other.
}

// --- the stream --------------------------------------------------------------------------------------
const HANDLERS = {
  "snapshot": (data) => {
    view.status = data.status;
    view.defaultReader = data.defaultReader;
    view.readers = new Map(data.readers.map((reader) => [reader.name, reader.card]));
    drawAll();
  },
  "card-inserted": (data) => { view.readers.set(data.reader, data.kind); drawReaders(); },
  "card-removed": (data) => { if (view.readers.has(data.reader)) view.readers.set(data.reader, null); drawReaders(); },
  "reader-plugged": (data) => { view.readers.set(data.reader, null); drawReaders(); if (view.bench) loadBench(); },
  "reader-unplugged": (data) => { view.readers.delete(data.reader); drawReaders(); },
  "level-changed": (data) => {
    const { card, ...state } = data;
    if (view.status) view.status[card] = state;
    drawLights();
  },
  "session-changed": (data) => { if (view.status) Object.assign(view.status, data); drawSession(); },
  "default-reader-changed": (data) => { view.defaultReader = data.reader; drawSession(); drawReaders(); },
  "record-cleared": () => { view.records = []; drawRecords(); },
  "call-recorded": (data) => { view.records.unshift(data); view.records.length = Math.min(view.records.length, RECORDS_SHOWN); drawRecords(); },
};

function connect() {
  const connection = document.getElementById("connection");
  const stream = new EventSource("/api/events/v1/Stream");
  stream.addEventListener("open", () => {
    connection.dataset.state = "live";
    connection.textContent = "live";
    loadRecords();
  });
  stream.addEventListener("error", () => {
    connection.dataset.state = "lost";
    connection.textContent = "reconnecting…";
    // EventSource retries by itself (with Last-Event-ID) after the stream ends, but gives up for good on an
    // HTTP error, such as the 503 of a console still restarting: then start a new one (a fresh snapshot).
    if (stream.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  });
  for (const [type, handle] of Object.entries(HANDLERS)) {
    stream.addEventListener(type, (message) => handle(JSON.parse(message.data)));
  }
}

drawAll();
loadBench();
connect();
