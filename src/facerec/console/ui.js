// Small DOM helpers shared by the pages: an element builder, messages, a confirmation dialog,
// a file drop zone and face boxes drawn on a canvas over a photo.

import { reason, t } from "./i18n.js";

// h("button", {class: "x", onclick: fn}, "text", child, ...) -> element. Text is never parsed
// as HTML, so names from the gallery cannot inject markup.
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

export function message(kind, text) {
  return h("p", { class: `message ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

export function errorText(error) {
  if (error?.status === 403 && error.details?.required) {
    return `${t("common.needs_scope", { scope: error.details.required })} (${error.code})`;
  }
  const code = error?.code ? `${reason(error.code)} (${error.code})` : "";
  return [code, error?.message].filter(Boolean).join(": ");
}

export function errorMessage(error) {
  return message("error", `${t("common.error")}: ${errorText(error)}`);
}

export function table(headings, rows, attrs = {}) {
  return h(
    "table",
    attrs,
    h("thead", {}, h("tr", {}, headings.map((heading) => h("th", {}, heading)))),
    h("tbody", {}, rows),
  );
}

export function percent(value) {
  return value === null || value === undefined ? "–" : `${(value * 100).toFixed(1)}%`;
}

export function bytes(value) {
  if (!value) return "0";
  const units = ["B", "KiB", "MiB", "GiB"];
  let index = 0;
  while (value >= 1024 && index < units.length - 1) {
    value /= 1024;
    index += 1;
  }
  return `${value.toFixed(index ? 1 : 0)} ${units[index]}`;
}

// Resolves true when the user confirms, false otherwise (one <dialog> shared by every page).
export function confirmDialog(text) {
  const dialog = document.getElementById("confirm");
  dialog.querySelector(".confirm-text").textContent = text;
  dialog.querySelector(".confirm-ok").textContent = t("common.confirm");
  dialog.querySelector(".confirm-cancel").textContent = t("common.cancel");
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

// A drop area with a visible file input; onFiles receives an array of File.
export function dropZone({ multiple = false, name = "photos", onFiles }) {
  const input = h("input", {
    type: "file",
    name,
    accept: "image/*",
    multiple,
    onchange: () => onFiles([...input.files]),
  });
  const zone = h(
    "label",
    { class: "dropzone" },
    h("span", {}, t(multiple ? "common.drop" : "common.drop_one")),
    input,
  );
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const files = [...event.dataTransfer.files].filter((file) => file.type.startsWith("image/"));
    if (files.length) onFiles(multiple ? files : files.slice(0, 1));
  });
  zone.input = input;
  return zone;
}

export function loadImage(file) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`cannot display ${file.name}`));
    image.src = URL.createObjectURL(file);
  });
}

// Draw `source` (an image or a video frame) with every face boxed and labelled. Each face:
// {bbox: {x1, y1, x2, y2}, label, known}. The labels drawn are also kept in
// canvas.dataset.labels (JSON) so that tests and screen readers can read what was drawn.
export function drawFaces(canvas, source, faces, { width, height } = {}) {
  const sourceWidth = width || source.naturalWidth || source.videoWidth || source.width;
  const sourceHeight = height || source.naturalHeight || source.videoHeight || source.height;
  canvas.width = sourceWidth;
  canvas.height = sourceHeight;
  const context = canvas.getContext("2d");
  context.drawImage(source, 0, 0, sourceWidth, sourceHeight);
  drawBoxes(context, faces, sourceWidth);
  canvas.dataset.labels = JSON.stringify(faces.map((face) => face.label));
  canvas.setAttribute("aria-label", faces.map((face) => face.label).join("; "));
}

export function drawBoxes(context, faces, scaleWidth) {
  const line = Math.max(2, Math.round(scaleWidth / 300));
  const font = Math.max(12, Math.round(scaleWidth / 40));
  context.font = `${font}px system-ui, sans-serif`;
  context.textBaseline = "top";
  for (const face of faces) {
    const { x1, y1, x2, y2 } = face.bbox;
    const colour = face.known ? "#1a9c4a" : "#e0672b";
    context.lineWidth = line;
    context.strokeStyle = colour;
    context.setLineDash(face.known ? [] : [line * 3, line * 2]);
    context.strokeRect(x1, y1, x2 - x1, y2 - y1);
    context.setLineDash([]);
    const textWidth = context.measureText(face.label).width + 8;
    const top = y1 - font - 6 >= 0 ? y1 - font - 6 : y2;
    context.fillStyle = colour;
    context.fillRect(x1, top, textWidth, font + 6);
    context.fillStyle = "#fff";
    context.fillText(face.label, x1 + 4, top + 3);
  }
}

// The label of a face identified by recognize-all (or a stream result, or a photo face).
export function faceLabel({ name, similarity, unknown, why }) {
  if (unknown || !name) {
    return why ? `${t("common.unknown")} (${reason(why)})` : t("common.unknown");
  }
  return similarity === null || similarity === undefined ? name : `${name} ${percent(similarity)}`;
}

export function qualityFactors(quality) {
  if (!quality?.factors) return "";
  return Object.entries(quality.factors)
    .map(([name, value]) => `${t(`factor.${name}`)} ${Math.round(value)}`)
    .join(" · ");
}
