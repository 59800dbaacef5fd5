// The page's behaviour: calls the service's public API (same origin) and shows what it answers.
// Plain JavaScript, no build step and no external files.
"use strict";

const KEY_STORAGE = "fgan-api-key";
const state = {
  apiKey: sessionStorage.getItem(KEY_STORAGE) || "",
  labels: [], // [{id, name}]
  selected: null, // {blob, label, description}
  checkRun: 0, // only the latest check may write its answer
  judges: [], // the models /classify can use, the default first (from /info)
  garment: null, // the last garment /translate answered: a PNG blob
  sketchRun: 0, // only the latest translation may write its answer
};

const $ = (id) => document.getElementById(id);

// API calls ---------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
  }
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.apiKey) headers.set("X-API-Key", state.apiKey);
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (err) {
    throw new ApiError(0, "network", `cannot reach the service (${err.message})`);
  }
  if (response.ok) return response;
  let code = "http_error";
  let detail = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json(); // every error of the API is {"error": code, "detail": message}
    if (body && typeof body.detail === "string") {
      code = body.error || code;
      detail = body.detail;
    }
  } catch {
    // not JSON (a proxy's page, say): keep the status line
  }
  if (response.status === 401) askForKey(detail);
  throw new ApiError(response.status, code, detail);
}

function showError(id, err) {
  const box = $(id);
  if (!err) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  const where = err.status ? ` (HTTP ${err.status}, ${err.code})` : "";
  box.textContent = `Error${where}: ${err.message}`;
  box.hidden = false;
}

// API key -------------------------------------------------------------------------------------------

function askForKey(detail) {
  const box = $("key-box");
  box.open = true;
  $("key-message").textContent = state.apiKey
    ? "The server did not accept this API key. Enter the right one."
    : "This server needs an API key. Enter it to continue.";
  $("key-message").classList.add("error-text");
  if (document.activeElement !== $("api-key")) $("api-key").focus();
  console.info("API key needed:", detail);
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.apiKey = $("api-key").value.trim();
  if (state.apiKey) sessionStorage.setItem(KEY_STORAGE, state.apiKey);
  else sessionStorage.removeItem(KEY_STORAGE);
  $("key-message").textContent = "Key saved for this tab.";
  $("key-message").classList.remove("error-text");
  loadStart();
});

// Labels and models --------------------------------------------------------------------------------

function fillSelect(select, options, keep) {
  const previous = keep ? select.value : null;
  select.replaceChildren(
    ...options.map(([value, text]) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = text;
      return option;
    }),
  );
  if (previous !== null && options.some(([value]) => value === previous)) select.value = previous;
}

async function loadLabels() {
  const body = await (await api("/labels")).json();
  state.labels = body.labels;
  const classes = state.labels.map((l) => [String(l.id), l.name]);
  fillSelect($("gen-class"), classes, true);
  fillSelect($("check-class"), [["", "unknown"], ...classes], true);
}

// The models panel: a few headline figures in words, the rest behind a "details" toggle.

const percent = (x, digits = 1) => `${(x * 100).toFixed(digits)}%`;
const count = (x) => Number(x).toLocaleString("en");
const isNumber = (x) => typeof x === "number" && Number.isFinite(x);

function formatValue(value) {
  if (isNumber(value)) {
    if (Number.isInteger(value)) return count(value);
    return Math.abs(value) >= 1000 || Math.abs(value) < 0.001 ? value.toExponential(3) : String(+value.toPrecision(4));
  }
  if (value === null || value === undefined) return "–";
  if (Array.isArray(value) && value.every((v) => typeof v !== "object" || v === null)) return value.join(", ");
  return String(value);
}

function duration(seconds) {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  const minutes = Math.round(seconds / 60);
  return minutes < 60 ? `${minutes} min` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

function parametersText(n) {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)} million` : n >= 1e4 ? `${(n / 1e3).toFixed(0)} thousand` : count(n);
}

// The figures of a checkpoint's evaluation: metrics.evaluation when recorded there, else the metrics themselves.
function evaluationOf(model) {
  const metrics = model.metrics || {};
  return metrics.evaluation && typeof metrics.evaluation === "object" ? metrics.evaluation : metrics;
}

// The detector's accuracy after JPEG on the generator it was trained against, when its training measured it.
function afterJpeg(model) {
  for (const [source, result] of Object.entries((model.metrics || {}).test || {})) {
    if (!source.startsWith("seen:")) continue;
    for (const [name, figures] of Object.entries(result || {})) {
      const quality = /^jpeg(\d+)$/.exec(name);
      const labelled = figures && (figures.labelled || figures);
      if (quality && labelled && isNumber(labelled.accuracy)) return [quality[1], labelled.accuracy];
    }
  }
  return null;
}

function headlines(model) {
  const ev = evaluationOf(model);
  const rows = [];
  if (isNumber(ev.fid)) {
    const floor = isNumber(ev.fid_train_vs_test) ? ` (real images against other real ones: ${ev.fid_train_vs_test.toFixed(2)})` : "";
    rows.push(["Image quality", `FID ${ev.fid.toFixed(1)}, lower is better${floor}`]);
  }
  if (isNumber(ev.gan_test)) rows.push(["Recognisable", `${percent(ev.gan_test)} of its images are recognised as the class asked for`]);
  if (isNumber(ev.gan_train)) rows.push(["Variety", `a classifier trained only on its images gets ${percent(ev.gan_train)} of real ones right`]);
  if (isNumber(ev.precision) && isNumber(ev.recall)) {
    rows.push(["Precision, recall", `${percent(ev.precision, 0)} of its images look like real ones; it covers ${percent(ev.recall, 0)} of the real variety`]);
  }
  if (isNumber(ev.accuracy)) {
    const sizes = isNumber(ev.n_real) && isNumber(ev.n_fake) ? ` of ${count(ev.n_real)} real and ${count(ev.n_fake)} generated images` : "";
    const split = isNumber(ev.accuracy_real) && isNumber(ev.accuracy_fake) ? ` (real ${percent(ev.accuracy_real)}, generated ${percent(ev.accuracy_fake)})` : "";
    rows.push(["Accuracy", `${percent(ev.accuracy, 2)} right${sizes}${split}`]);
  }
  const jpeg = afterJpeg(model);
  if (jpeg) rows.push([`After JPEG (quality ${jpeg[0]})`, `${percent(jpeg[1])} right`]);
  // Four decimals, or as many as it takes not to round a near-perfect score up to 1.
  if (isNumber(ev.roc_auc)) rows.push(["ROC AUC", ev.roc_auc < 0.9999 ? ev.roc_auc.toFixed(4) : String(+ev.roc_auc.toPrecision(6))]);
  if (isNumber(ev.ece)) rows.push(["Calibration", `its confidence is off by ${percent(ev.ece, 2)} on average`]);
  const t = model.training || {};
  const trained = [];
  if (isNumber(t.epochs)) trained.push(`${count(t.epochs)} epochs`);
  if (isNumber(t.steps)) trained.push(`${count(t.steps)} steps${isNumber(t.batch_size) ? ` of ${count(t.batch_size)} images` : ""}`);
  if (t.dataset) trained.push(`on ${t.dataset}`);
  if (isNumber(t.seconds)) trained.push(`in ${duration(t.seconds)}`);
  if (trained.length) rows.push(["Training", trained.join(", ")]);
  return rows;
}

// Nested facts as rows: {"a": {"b": 1}} -> ["a › b", 1].
function flatten(facts, prefix = "") {
  const rows = [];
  for (const [key, value] of Object.entries(facts || {})) {
    const name = prefix ? `${prefix} › ${key}` : key;
    const nested = value && typeof value === "object" && !(Array.isArray(value) && value.every((v) => typeof v !== "object" || v === null));
    if (nested) rows.push(...flatten(value, name));
    else rows.push([name, value]);
  }
  return rows;
}

function factsTable(caption, facts) {
  const rows = flatten(facts);
  const table = document.createElement("table");
  const cap = document.createElement("caption");
  cap.textContent = caption;
  table.append(cap);
  if (!rows.length) {
    const row = table.insertRow();
    const cell = row.insertCell();
    cell.textContent = "none recorded";
    cell.colSpan = 2;
    return table;
  }
  for (const [key, value] of rows) {
    const row = table.insertRow();
    const name = document.createElement("th");
    name.scope = "row";
    name.textContent = key;
    row.append(name);
    row.insertCell().textContent = formatValue(value);
  }
  return table;
}

function modelCard(model, isDefault) {
  const card = document.createElement("article");
  card.className = "card";
  const title = document.createElement("h3");
  title.textContent = `${model.name}${isDefault ? " (default for checks)" : ""}`;
  const summary = document.createElement("p");
  const label = { required: "needs the class", optional: "class optional", ignored: "ignores the class" }[model.label];
  summary.textContent =
    `${model.class_name}, ${parametersText(model.parameters)} parameters, ${label}` +
    (model.temperature ? `, temperature ${formatValue(model.temperature)}` : "");
  const figures = document.createElement("dl");
  figures.className = "headlines";
  for (const [name, text] of headlines(model)) {
    const term = document.createElement("dt");
    term.textContent = name;
    const value = document.createElement("dd");
    value.textContent = text;
    figures.append(term, value);
  }
  const details = document.createElement("details");
  const toggle = document.createElement("summary");
  toggle.textContent = "Details: every recorded figure and training fact";
  details.append(toggle, factsTable("Figures", model.metrics), factsTable("Training", model.training));
  card.append(title, summary, figures, details);
  return card;
}

async function loadInfo() {
  const info = await (await api("/info")).json();
  // The models that judge (older servers do not list them: every model but the generator then).
  state.judges = info.classifiers || info.models.map((m) => m.name).filter((name) => name !== "generator");
  fillSelect(
    $("check-model"),
    state.judges.map((name) => [name, name]),
    true,
  );
  if (!state.judges.includes($("check-model").value) || !state.modelChosen) {
    $("check-model").value = info.default_classifier;
  }
  sketchAvailable((info.unavailable || {})["/translate"]);
  $("models-status").textContent = `Served on ${info.device}, version ${info.version}.`;
  $("model-cards").replaceChildren(...info.models.map((m) => modelCard(m, m.name === info.default_classifier)));
}

async function loadStart() {
  for (const [load, errorId] of [
    [loadLabels, "generate-error"],
    [loadInfo, "models-error"],
  ]) {
    try {
      await load();
      showError(errorId, null);
    } catch (err) {
      showError(errorId, err);
    }
  }
}

// Generate -------------------------------------------------------------------------------------------

function base64ToBlob(data, type) {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type });
}

$("generate-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const label = $("gen-class").value;
  const seed = $("gen-seed").value.trim();
  const count = $("gen-count").value.trim() || "1";
  const truncation = $("gen-truncation").value.trim();
  const params = new URLSearchParams({ label, n: count, format: "json" });
  if (seed !== "") params.set("seed", seed);
  if (truncation !== "") params.set("truncation", truncation); // empty: the default, 1
  const button = $("generate-button");
  button.disabled = true;
  $("generate-status").textContent = "Generating…";
  try {
    const response = await api(`/generate?${params}`);
    const body = await response.json();
    showError("generate-error", null);
    showGrid(body, response.headers.get("X-Truncation"));
  } catch (err) {
    $("generate-status").textContent = "";
    showError("generate-error", err);
  } finally {
    button.disabled = false;
  }
});

function showGrid(body, truncation) {
  const name = body.label_name || "random class";
  const psi = truncation && Number(truncation) !== 1 ? `, truncation ${Number(truncation)}` : "";
  $("generate-status").textContent =
    `${body.images.length} × ${name}, seeds ${body.seed}–${body.seed + body.images.length - 1}${psi}. ` +
    "Choose one to check it.";
  const buttons = body.images.map((data, i) => {
    const seed = (body.seed + i) % 2 ** 32;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sample";
    button.setAttribute("aria-pressed", "false");
    const img = document.createElement("img");
    img.src = `data:image/png;base64,${data}`;
    img.alt = ""; // the button says what it is
    button.setAttribute("aria-label", `Check generated ${name}, seed ${seed}${psi}`);
    img.width = 84;
    img.height = 84;
    button.append(img);
    button.title = `Check this ${name} (seed ${seed}${psi}): real or fake?`;
    button.addEventListener("click", () => {
      for (const other of $("grid").querySelectorAll(".sample")) other.setAttribute("aria-pressed", "false");
      button.setAttribute("aria-pressed", "true");
      if (body.label !== null) $("check-class").value = String(body.label);
      state.selected = {
        blob: base64ToBlob(data, "image/png"),
        description: `Generated ${name}, seed ${seed}${psi}`,
      };
      check();
    });
    return button;
  });
  $("grid").replaceChildren(...buttons);
}

// Check: verdict and heatmap -----------------------------------------------------------------------

function useFile(file) {
  if (!file) return;
  state.selected = { blob: file, description: `Uploaded: ${file.name}` };
  for (const other of $("grid").querySelectorAll(".sample")) other.setAttribute("aria-pressed", "false");
  check();
}

$("upload").addEventListener("change", () => useFile($("upload").files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  useFile(event.dataTransfer.files[0]);
});
$("check-class").addEventListener("change", () => state.selected && check());
$("check-model").addEventListener("change", () => {
  state.modelChosen = true;
  if (state.selected) check();
});

async function check() {
  const run = ++state.checkRun;
  const selected = state.selected;
  const form = new FormData();
  form.append("image", selected.blob, selected.blob.name || "image.png");
  if ($("check-class").value !== "") form.append("label", $("check-class").value);
  form.append("model", $("check-model").value);
  $("verdict").textContent = "Checking…";
  try {
    const answer = await (await api("/explain?format=json&scale=8", { method: "POST", body: form })).json();
    if (run !== state.checkRun) return;
    showError("check-error", null);
    showResult(selected, answer);
  } catch (err) {
    if (run !== state.checkRun) return;
    $("result").hidden = true;
    showError("check-error", err);
  }
}

function showResult(selected, answer) {
  const input = $("result-input");
  if (input.dataset.url) URL.revokeObjectURL(input.dataset.url);
  input.dataset.url = URL.createObjectURL(selected.blob);
  input.src = input.dataset.url;
  $("result-input-caption").textContent = selected.description;
  $("result-heatmap").src = `data:image/png;base64,${answer.image}`;

  const percent = (answer.confidence * 100).toFixed(1);
  const verdict = answer.label === "real" ? "Real" : "Fake";
  $("verdict").textContent = `${verdict}: ${percent}% confident (${answer.model})`;
  $("verdict").className = `verdict ${answer.label}`;
  const fill = $("confidence-fill");
  fill.style.width = `${percent}%`;
  fill.className = `fill ${answer.label}`;
  $("confidence-bar").setAttribute("aria-label", `confidence ${percent}%`);
  $("explain-note").textContent =
    answer.peak > 0
      ? `Warm colours mark what pushed the ${answer.model} toward “fake” (GradCAM on its 14×14 layer ` +
        `${answer.layer}, scaled to its strongest point, ${formatValue(answer.peak)}).`
      : `Nothing in this image pushed the ${answer.model} toward “fake”, so the map is empty.`;
  $("result").hidden = false;
}

// Sketch to clothing ----------------------------------------------------------------------------------

const canvas = $("sketch-canvas");
const pen = canvas.getContext("2d");
const STROKE = 16; // canvas pixels: 2 pixels of the 28x28 sketch the canvas becomes
let stroke = null; // {id, x, y} while a pointer draws

function clearCanvas() {
  pen.fillStyle = "#000"; // light strokes on dark, as the model takes them
  pen.fillRect(0, 0, canvas.width, canvas.height);
}

function canvasPoint(event) {
  const box = canvas.getBoundingClientRect();
  return [((event.clientX - box.left) * canvas.width) / box.width, ((event.clientY - box.top) * canvas.height) / box.height];
}

function drawTo(x, y) {
  pen.strokeStyle = "#fff";
  pen.lineWidth = STROKE;
  pen.lineCap = "round";
  pen.lineJoin = "round";
  pen.beginPath();
  pen.moveTo(stroke.x, stroke.y);
  pen.lineTo(x, y);
  pen.stroke();
  stroke.x = x;
  stroke.y = y;
}

canvas.addEventListener("pointerdown", (event) => {
  if (event.pointerType === "mouse" && event.button !== 0) return;
  event.preventDefault();
  try {
    canvas.setPointerCapture(event.pointerId); // the stroke goes on if the pointer leaves the canvas
  } catch {
    // a pointer the browser no longer tracks: draw without capture
  }
  const [x, y] = canvasPoint(event);
  stroke = { id: event.pointerId, x, y };
  drawTo(x, y); // a dot, for a tap
});
canvas.addEventListener("pointermove", (event) => {
  if (!stroke || event.pointerId !== stroke.id) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const each of events.length ? events : [event]) drawTo(...canvasPoint(each));
});
function endStroke(event) {
  if (!stroke || event.pointerId !== stroke.id) return;
  stroke = null;
  translateDrawing();
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);

$("sketch-clear").addEventListener("click", () => {
  clearCanvas();
  state.sketchRun++; // an answer still on its way is for the old drawing
  state.garment = null;
  $("sketch-result").hidden = true;
  $("sketch-status").textContent = "";
  showError("sketch-error", null);
});
$("sketch-translate").addEventListener("click", translateDrawing);

function translateDrawing() {
  canvas.toBlob((blob) => translateSketch(blob, "your drawing", null), "image/png");
}

function useSketchFile(file) {
  if (file) translateSketch(file, file.name, file);
}
$("sketch-upload").addEventListener("change", () => useSketchFile($("sketch-upload").files[0]));
const sketchDrop = $("sketch-drop");
sketchDrop.addEventListener("dragover", (event) => {
  event.preventDefault();
  sketchDrop.classList.add("over");
});
sketchDrop.addEventListener("dragleave", () => sketchDrop.classList.remove("over"));
sketchDrop.addEventListener("drop", (event) => {
  event.preventDefault();
  sketchDrop.classList.remove("over");
  useSketchFile(event.dataTransfer.files[0]);
});

function sketchAvailable(reason) {
  const box = $("sketch-unavailable");
  box.textContent = reason ? `Not on this server: ${reason}.` : "";
  box.hidden = !reason;
  for (const id of ["sketch-translate", "sketch-upload"]) $(id).disabled = Boolean(reason);
}

function showImage(img, blob) {
  if (img.dataset.url) URL.revokeObjectURL(img.dataset.url);
  img.dataset.url = URL.createObjectURL(blob);
  img.src = img.dataset.url;
}

// Send a sketch (the canvas as a PNG, or a file as it is) to /translate and show the garment.
async function translateSketch(blob, description, file) {
  const run = ++state.sketchRun;
  const form = new FormData();
  form.append("image", blob, file ? file.name : "drawing.png");
  $("sketch-status").textContent = "Drawing the garment…";
  try {
    const response = await api("/translate", { method: "POST", body: form });
    const garment = await response.blob();
    if (run !== state.sketchRun) return;
    const inverted = response.headers.get("X-Sketch-Inverted") === "true";
    state.garment = garment;
    showError("sketch-error", null);
    $("sketch-input-figure").hidden = !file;
    if (file) {
      showImage($("sketch-input"), file);
      $("sketch-input-caption").textContent = `Sketch: ${file.name}`;
    }
    showImage($("sketch-garment"), garment);
    $("sketch-garment-caption").textContent = `Drawn by ${(response.headers.get("X-Model") || "pix2pix").split("@")[0]} from ${description}`;
    $("sketch-status").textContent = inverted
      ? "Its background was light, so it was read as dark strokes on light and inverted first."
      : "Read as light strokes on a dark background.";
    $("sketch-verdict").textContent = "";
    $("sketch-verdict").className = "verdict";
    showError("sketch-check-error", null);
    $("sketch-result").hidden = false;
  } catch (err) {
    if (run !== state.sketchRun) return;
    state.garment = null;
    $("sketch-status").textContent = "";
    $("sketch-result").hidden = true;
    showError("sketch-error", err);
  }
}

// Send the garment to /classify: the detector when the server has one (no class needed), else its default judge
// with the class chosen in "Real or fake?" (the discriminator needs one).
$("sketch-check").addEventListener("click", async () => {
  if (!state.garment) return;
  const model = state.judges.includes("detector") ? "detector" : state.judges[0];
  const form = new FormData();
  form.append("image", state.garment, "garment.png");
  if (model) form.append("model", model);
  if (model !== "detector" && $("check-class").value !== "") form.append("label", $("check-class").value);
  const garment = state.garment;
  $("sketch-verdict").textContent = "Checking…";
  $("sketch-verdict").className = "verdict";
  try {
    const answer = await (await api("/classify", { method: "POST", body: form })).json();
    if (garment !== state.garment) return;
    showError("sketch-check-error", null);
    const verdict = answer.label === "real" ? "Real" : "Fake";
    $("sketch-verdict").textContent = `${verdict}: ${(answer.confidence * 100).toFixed(1)}% confident (${model || "default model"})`;
    $("sketch-verdict").className = `verdict ${answer.label}`;
  } catch (err) {
    if (garment !== state.garment) return;
    $("sketch-verdict").textContent = "";
    showError("sketch-check-error", err);
  }
});

clearCanvas();
loadStart();
