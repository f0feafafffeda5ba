// Pages that draw faces: recognize (every face of a photo), compare, camera (/ws/recognize) and
// photos with their unknown-face suggestions.

import { api } from "./api.js";
import { t } from "./i18n.js";
import {
  drawFaces,
  dropZone,
  errorMessage,
  faceLabel,
  h,
  loadImage,
  message,
  percent,
  table,
} from "./ui.js";

function identifiedFace(face) {
  const match = face.best_match;
  const label = faceLabel({
    name: match?.person_name || match?.person_id,
    similarity: match?.similarity,
    unknown: face.unknown || !match,
    why: face.reason,
  });
  return { bbox: face.bbox, label, known: Boolean(match) && !face.unknown };
}

function faceList(faces, id) {
  return h(
    "ul",
    { class: "faces", id },
    faces.map((face) => h("li", { class: face.known ? "known" : "unknown" }, face.label)),
  );
}

export function recognizePage(view, app) {
  const status = h("div", { class: "status" });
  const canvas = h("canvas", { id: "recognize-canvas", class: "photo" });
  const list = h("div", {});
  const zone = dropZone({
    onFiles: async ([file]) => {
      status.replaceChildren(message("info", t("common.loading")));
      list.replaceChildren();
      try {
        const [image, answer] = await Promise.all([
          loadImage(file),
          api.recognizeAll({ file, collection: app.collection() }),
        ]);
        const faces = answer.faces.map(identifiedFace);
        drawFaces(canvas, image, faces, answer.image_info);
        list.replaceChildren(faceList(faces, "recognize-faces"));
        status.replaceChildren(
          message(
            "ok",
            t("recognize.summary", {
              faces: answer.faces_detected,
              known: answer.faces_identified,
              model: answer.model_used,
              ms: Math.round(answer.processing_time * 1000),
            }),
          ),
        );
      } catch (error) {
        status.replaceChildren(errorMessage(error));
      }
    },
  });
  view.replaceChildren(
    h("h2", {}, t("recognize.title")),
    h("p", { class: "hint" }, t("recognize.help")),
    zone,
    status,
    h("div", { class: "canvas-wrap" }, canvas),
    list,
  );
}

export function comparePage(view) {
  const status = h("div", { class: "status" });
  const canvases = [h("canvas", { class: "photo half" }), h("canvas", { class: "photo half" })];
  const files = [null, null];
  const zones = [0, 1].map((index) =>
    dropZone({
      name: `file${index + 1}`,
      onFiles: ([file]) => {
        files[index] = file;
        zones[index].querySelector("span").textContent = file.name;
      },
    }),
  );
  const result = h("div", { id: "compare-result" });
  const submit = h("button", { type: "submit", class: "primary" }, t("compare.submit"));
  const form = h(
    "form",
    { class: "stack" },
    h("div", { class: "pair" }, h("div", {}, h("h3", {}, t("compare.first")), zones[0]), h("div", {}, h("h3", {}, t("compare.second")), zones[1])),
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!files[0] || !files[1]) return;
    status.replaceChildren(message("info", t("common.loading")));
    result.replaceChildren();
    try {
      const [answer, ...images] = await Promise.all([
        api.compare({ file1: files[0], file2: files[1] }),
        loadImage(files[0]),
        loadImage(files[1]),
      ]);
      [answer.face1, answer.face2].forEach((face, index) => {
        const label = `${percent(answer.similarity_score)}`;
        drawFaces(canvases[index], images[index], face ? [{ bbox: face.bbox, label, known: answer.is_same_person }] : []);
      });
      status.replaceChildren();
      result.replaceChildren(
        h("p", { class: answer.is_same_person ? "verdict same" : "verdict different" }, t(answer.is_same_person ? "compare.same" : "compare.different")),
        table(
          ["", ""],
          [
            [t("common.similarity"), percent(answer.similarity_score)],
            [t("compare.distance"), answer.distance.toFixed(4)],
            [t("compare.threshold"), answer.threshold.toFixed(4)],
            [t("compare.confidence"), percent(answer.confidence)],
            [t("compare.fmr"), answer.false_match_rate?.toExponential(2) ?? "–"],
          ].map(([name, value]) => h("tr", {}, h("th", {}, name), h("td", {}, value))),
        ),
      );
    } catch (error) {
      status.replaceChildren(errorMessage(error));
    }
  });
  view.replaceChildren(
    h("h2", {}, t("compare.title")),
    form,
    status,
    result,
    h("div", { class: "pair" }, canvases),
  );
}

export function cameraPage(view, app) {
  const status = h("div", { class: "status" });
  const video = h("video", { autoplay: true, muted: true, playsinline: true, class: "hidden" });
  const canvas = h("canvas", { class: "photo", id: "camera-canvas" });
  const grab = document.createElement("canvas");
  const start = h("button", { type: "button", class: "primary" }, t("camera.start"));
  const stop = h("button", { type: "button", disabled: true }, t("camera.stop"));
  let stream = null;
  let socket = null;
  let faces = [];
  let drawing = 0;

  function render() {
    if (!stream) return;
    if (video.videoWidth) drawFaces(canvas, video, faces);
    drawing = requestAnimationFrame(render);
  }

  function sendFrame() {
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    if (!video.videoWidth) {
      setTimeout(sendFrame, 100); // the camera has not delivered its first frame yet
      return;
    }
    grab.width = video.videoWidth;
    grab.height = video.videoHeight;
    grab.getContext("2d").drawImage(video, 0, 0);
    grab.toBlob((blob) => blob && socket?.readyState === WebSocket.OPEN && socket.send(blob), "image/jpeg", 0.8);
  }

  function close() {
    cancelAnimationFrame(drawing);
    socket?.close(1000);
    socket = null;
    for (const track of stream?.getTracks() || []) track.stop();
    stream = null;
    start.disabled = false;
    stop.disabled = true;
  }

  start.addEventListener("click", async () => {
    status.replaceChildren();
    if (!navigator.mediaDevices?.getUserMedia) {
      status.append(message("error", t("camera.unsupported")));
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640 }, audio: false });
    } catch (error) {
      status.append(message("error", `${t("camera.unsupported")} ${error}`));
      return;
    }
    video.srcObject = stream;
    start.disabled = true;
    stop.disabled = false;
    render();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/recognize`);
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ type: "config", collection: app.collection(), source: "console" }));
    });
    socket.addEventListener("message", (event) => {
      const data = JSON.parse(event.data);
      if (data.type === "ready") sendFrame();
      else if (data.type === "result") {
        faces = data.faces.map((face) => ({
          bbox: face.bbox,
          known: face.decided && !face.unknown,
          label: faceLabel({
            name: face.decided ? face.person_name || face.person_id : null,
            similarity: face.similarity,
            unknown: !face.decided || face.unknown,
            why: face.reason,
          }),
        }));
        status.replaceChildren(
          message("info", t("camera.status", { frame: data.frame, dropped: data.dropped, ms: Math.round(data.processing_time * 1000) })),
        );
        sendFrame();  // one frame in flight: the service's max_fps and our round trip pace it
      } else if (data.type === "error") {
        status.replaceChildren(errorMessage(data));
        if (data.frame) sendFrame();
      }
    });
    socket.addEventListener("close", (event) => {
      status.append(message("error", t("camera.closed", { code: event.code, reason: event.reason })));
      close();
    });
  });
  stop.addEventListener("click", close);
  app.onLeave(close);
  view.replaceChildren(
    h("h2", {}, t("camera.title")),
    message("warning", t("camera.note")),
    h("div", { class: "inline" }, start, stop),
    status,
    video,
    h("div", { class: "canvas-wrap" }, canvas),
  );
}

export async function photosPage(view, app) {
  const status = h("div", { class: "status" });
  const canvas = h("canvas", { class: "photo", id: "photo-canvas" });
  const tagged = h("div", {});
  const photoId = h("input", { name: "photo_id", maxlength: 128, required: true });
  let file = null;
  const zone = dropZone({
    onFiles: ([chosen]) => {
      file = chosen;
      zone.querySelector("span").textContent = chosen.name;
      if (!photoId.value) photoId.value = chosen.name.replace(/\.[^.]*$/, "").replace(/[^\w.-]/g, "-");
    },
  });
  const form = h(
    "form",
    { class: "stack" },
    h("label", {}, t("photos.photo_id"), photoId),
    zone,
    h("button", { type: "submit", class: "primary" }, t("photos.submit")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!file) return;
    status.replaceChildren(message("info", t("common.loading")));
    try {
      const [image, answer] = await Promise.all([
        loadImage(file),
        api.tagPhoto({ file, photo_id: photoId.value.trim(), collection: app.collection() }),
      ]);
      const faces = answer.faces.map((face) => ({
        bbox: face.bbox,
        known: !face.unknown,
        label: faceLabel({ name: face.person_name || face.person_id, similarity: face.similarity, unknown: face.unknown, why: face.reason }),
      }));
      drawFaces(canvas, image, faces, answer.image_info);
      tagged.replaceChildren(faceList(faces, "photo-faces"));
      status.replaceChildren();
      await loadSuggestions();
    } catch (error) {
      status.replaceChildren(errorMessage(error));
    }
  });

  const suggestions = h("div", { id: "suggestions" });
  async function loadSuggestions() {
    try {
      const answer = await api.suggestions(app.collection());
      if (!answer.suggestions.length) {
        suggestions.replaceChildren(message("empty", t("common.none")));
        return;
      }
      suggestions.replaceChildren(
        table(
          ["id", t("photos.size"), t("photos.cohesion"), t("photos.from"), t("common.actions")],
          answer.suggestions.map((s) => {
            const name = h("input", { placeholder: t("enroll.person_name"), maxlength: 200 });
            const accept = h("button", { type: "button" }, t("photos.accept"));
            const dismiss = h("button", { type: "button", class: "danger" }, t("photos.dismiss"));
            accept.addEventListener("click", async () => {
              if (!name.value.trim()) return name.focus();
              try {
                await api.acceptSuggestion(s.suggestion_id, name.value.trim());
                status.replaceChildren(message("ok", t("photos.accepted", { name: name.value.trim() })));
                await loadSuggestions();
              } catch (error) {
                status.replaceChildren(errorMessage(error));
              }
            });
            dismiss.addEventListener("click", async () => {
              try {
                await api.dismissSuggestion(s.suggestion_id);
                status.replaceChildren(message("ok", t("photos.dismissed")));
                await loadSuggestions();
              } catch (error) {
                status.replaceChildren(errorMessage(error));
              }
            });
            const photos = [...new Set(s.faces.map((f) => f.photo_id))].join(", ");
            return h(
              "tr",
              {},
              h("td", { class: "mono" }, s.suggestion_id),
              h("td", { class: "number" }, s.size),
              h("td", { class: "number" }, percent(s.cohesion)),
              h("td", {}, photos),
              h("td", { class: "actions" }, name, accept, dismiss),
            );
          }),
        ),
      );
    } catch (error) {
      suggestions.replaceChildren(errorMessage(error));
    }
  }
  view.replaceChildren(
    h("h2", {}, t("photos.title")),
    h("h3", {}, t("photos.store")),
    form,
    status,
    h("div", { class: "canvas-wrap" }, canvas),
    tagged,
    h("h3", {}, t("photos.suggestions")),
    suggestions,
  );
  await loadSuggestions();
}
